"""Export the audit bundle an auditor receives (streamed: constant memory on large logs).

Also the delta export (only the events after a checkpoint the auditor kept), the attached files
(--with-attachments) and the RFC 9162 consistency proof from a kept checkpoint to the head.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from expense_audit.checkpoint import Checkpoint, CheckpointInvalid, open_checkpoint, sign_checkpoint
from expense_audit.errors import WorkflowError
from expense_audit.merkle import consistency_proof, root_from_leaf_hashes
from expense_audit.verify.checkpoints import proof_document
from expense_audit.verify.format import (
    ATTACHMENTS_DIR,
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    CHECKPOINTS,
    DEFINITIONS_DIR,
    EVENTS,
    KEYS,
    MANIFEST,
    MAX_ATTACHMENT,
    MAX_SIGNED_FORM,
    SIGNED_FORMS_DIR,
    check_member_name,
)
from expense_audit.verify.format import event_line as format_line

from .audit import event_leaf, event_view, format_ts, iter_events, lock_head, make_checkpoint
from .cosigning import cosigned_notes
from .keys import INSTITUTION_ACTOR, InstitutionKey
from .models import AuditEvent, CheckpointRow, DefinitionFile, SigningKey


def event_line(event: AuditEvent) -> bytes:
    """One events.jsonl line, embedding the exact signed body bytes."""
    return format_line(event.body, event.hash, event.sig)


class ExportRefused(WorkflowError):
    """A delta or a proof was asked from a checkpoint this log did not sign (or not as a prefix)."""

    code = "export_refused"


def attachment_path(directory: Path, sha256: str) -> Path:
    """Where the web layer stores an attached file: <directory>/<sha256[:2]>/<sha256>."""
    return directory / sha256[:2] / sha256


def head_checkpoint(session: Session, *, institution: InstitutionKey, now: datetime) -> Checkpoint:
    """A checkpoint over the whole log that carries the signed time line.

    NOTE: a database whose latest checkpoint predates the time line would hand that one out again
    while the log has not moved, and the verifier refuses a final checkpoint without a time; the
    row is then re-signed over the same size and root, with the time.
    """
    checkpoint = make_checkpoint(session, institution=institution, now=now)
    row = session.get(CheckpointRow, checkpoint.size)
    opened = open_checkpoint(checkpoint.note, institution.public_raw)
    if opened.time is not None or row is None:
        return opened
    fresh = sign_checkpoint(opened.origin, opened.size, opened.root, institution.private, now=now)
    row.note, row.created_at = fresh.note, now
    session.flush()
    return fresh


def open_kept(note: str, *, institution: InstitutionKey, origin: str) -> Checkpoint:
    """A checkpoint an auditor kept, verified with the institution key (ExportRefused if not)."""
    try:
        return open_checkpoint(note.replace("\r\n", "\n"), institution.public_raw, origin=origin)
    except CheckpointInvalid as exc:
        raise ExportRefused(
            f"the checkpoint given is not one this log signed: {exc.message}"
        ) from None


def _leaves(session: Session) -> list[bytes]:
    return [event_leaf(e.hash, e.sig) for e in iter_events(session)]


def prove_consistency(
    session: Session, old_note: str, *, institution: InstitutionKey, now: datetime
) -> dict[str, Any]:
    """The consistency-proof file from a kept checkpoint to a fresh one over the whole log."""
    head = head_checkpoint(session, institution=institution, now=now)
    old = open_kept(old_note, institution=institution, origin=head.origin)
    leaves = _leaves(session)
    if old.size > len(leaves) or root_from_leaf_hashes(leaves[: old.size]) != old.root:
        raise ExportRefused(
            f"the checkpoint of size {old.size} is not a prefix of this log of {len(leaves)} events"
        )
    return proof_document(old, head, consistency_proof(leaves, old.size))


def export_bundle(
    session: Session,
    target: str | Path | IO[bytes],
    *,
    institution: InstitutionKey,
    now: datetime,
    since: str | None = None,
    attachments_dir: Path | None = None,
    cosign: Callable[[Session, Checkpoint], object] | None = None,
) -> dict[str, Any]:
    """Write the bundle zip (a fresh checkpoint always covers every event) and return its manifest.

    ``since``: a checkpoint note the auditor kept; only the events after it are written (a delta).
    ``attachments_dir``: where attached files are stored; every file an exported event binds is
    written under attachments/<sha256>, every signed form a form.sign records under
    signed-forms/<sha256>.pdf (a file missing there is left out and listed in the
    manifest's return value under "missing_attachments", not in the zip's manifest).
    ``cosign``: submits the final checkpoint to the district's witness (Runtime.cosign) before it
    is written; every cosignature kept is appended to its checkpoint's note (C2SP signed note).
    """
    final = head_checkpoint(session, institution=institution, now=now)
    if cosign is not None:
        cosign(session, final)
    head = lock_head(session)
    after = 0
    if since is not None:
        kept = open_kept(since, institution=institution, origin=head.origin)
        if (
            kept.size > head.seq
            or root_from_leaf_hashes(_leaves(session)[: kept.size]) != kept.root
        ):
            raise ExportRefused(f"the checkpoint of size {kept.size} is not a prefix of this log")
        after = kept.size
    bound: dict[str, int | None] = {}
    signed: list[str] = []  # the PAdES-signed forms (form.sign), stored like attachments
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        count = 0
        with bundle.open(EVENTS, "w", force_zip64=True) as events:
            for event in iter_events(session, after=after):
                events.write(event_line(event))
                count += 1
                if attachments_dir is not None and event.actor != INSTITUTION_ACTOR:
                    bound.update(_bound_files(event.body))
                elif attachments_dir is not None and event.action == "form.sign":
                    signed.append(str(json.loads(event.body)["data"]["pdf_sha256"]))
        checkpoints = session.scalars(
            select(CheckpointRow).where(CheckpointRow.size > after).order_by(CheckpointRow.size)
        ).all()
        notes = cosigned_notes(session, checkpoints)  # the witnesses' lines appended
        bundle.writestr(
            CHECKPOINTS,
            "".join(
                json.dumps({"size": c.size, "root": c.root, "note": note}, ensure_ascii=False)
                + "\n"
                for c, note in zip(checkpoints, notes, strict=True)
            ),
        )
        keys: list[dict[str, Any]] = [
            {
                "key_id": institution.key_id,
                "owner": INSTITUTION_ACTOR,
                "public_key": institution.public_raw.hex(),
                "fingerprint": institution.fingerprint,
                "registered_seq": 1,
                "revoked_seq": None,
            }
        ]
        for key in session.scalars(select(SigningKey).order_by(SigningKey.registered_seq)):
            keys.append(
                {
                    "key_id": key.key_id,
                    "owner": key.login,
                    "public_key": key.public_key,
                    "registered_seq": key.registered_seq,
                    "revoked_seq": key.revoked_seq,
                }
            )
        bundle.writestr(KEYS, json.dumps(keys, indent=1))
        definitions = {}
        for definition in session.scalars(select(DefinitionFile)):
            name = f"{DEFINITIONS_DIR}{definition.sha256}/{definition.path}"
            check_member_name(name)
            bundle.writestr(name, definition.content)
            definitions[definition.sha256] = definition.path
        missing = []
        if attachments_dir is not None:
            missing = _write_attachments(bundle, attachments_dir, bound)
            missing += write_signed_forms(bundle, attachments_dir, signed)
        manifest: dict[str, Any] = {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "origin": head.origin,
            "institution": {"key_id": institution.key_id, "fingerprint": institution.fingerprint},
            "event_count": count,
            "head_hash": head.hash,
            "exported_at": format_ts(now),
            "definitions": definitions,
        }
        if after:
            manifest["since"] = after
        if attachments_dir is not None:
            manifest["with_attachments"] = True
        bundle.writestr(MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False))
    return {**manifest, "missing_attachments": missing}


def _bound_files(body: bytes) -> Iterator[tuple[str, int | None]]:
    """(sha256, size) of each attachment record an event body binds."""
    data = event_view(json.loads(body)).get("data")
    content = data.get("content") if isinstance(data, dict) else None
    for record in (content or {}).get("attachments") or ():
        yield str(record["sha256"]), record.get("size")


def write_signed_forms(bundle: zipfile.ZipFile, directory: Path, hashes: list[str]) -> list[str]:
    """Copy each signed form into signed-forms/<sha256>.pdf; return the ones not found."""
    missing = []
    for sha in sorted(set(hashes)):
        name = f"{SIGNED_FORMS_DIR}{sha}.pdf"
        check_member_name(name)
        source = attachment_path(directory, sha)
        if not source.is_file() or source.stat().st_size > MAX_SIGNED_FORM:
            missing.append(sha)
            continue
        bundle.write(source, name)
    return missing


def _write_attachments(
    bundle: zipfile.ZipFile, directory: Path, bound: dict[str, int | None]
) -> list[str]:
    """Copy each bound file into the zip (streamed); return the ones that could not be written."""
    missing = []
    for sha in sorted(bound):
        name = f"{ATTACHMENTS_DIR}{sha}"
        check_member_name(name)
        source = attachment_path(directory, sha)
        if not source.is_file() or source.stat().st_size > MAX_ATTACHMENT:
            missing.append(sha)
            continue
        with source.open("rb") as handle, bundle.open(name, "w") as member:
            shutil.copyfileobj(handle, member, 1 << 20)
    return missing
