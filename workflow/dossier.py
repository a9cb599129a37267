"""The payment dossier (hồ sơ thanh toán): one zip per paid request, verifiable on its own.

It holds the form PDF, every attached file, the request's signed events, the key events of the
people who signed them, the definition files the events name, the latest signed checkpoint and
an RFC 6962 inclusion proof of each event against it. The manifest lists every file's sha256 and
is signed by the institution key. `audit-verify DOSSIER.zip --institution-key FP` checks it all
without the rest of the log (expense_audit.verify.dossier).
"""

from __future__ import annotations

import base64
import json
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from expense_audit.canonical import sha256_hex
from expense_audit.merkle import inclusion_proof
from expense_audit.verify.dossier import (
    ATTACHMENTS,
    DEFINITIONS,
    DOSSIER_FORMAT,
    EVENTS,
    FORM,
    MANIFEST,
    SIGNATURE,
    manifest_message,
)
from expense_audit.verify.format import event_line

from .audit import event_leaf, event_view, format_ts, iter_events, make_checkpoint
from .bundle import attachment_path
from .errors import RequestNotFound
from .keys import InstitutionKey
from .models import AuditEvent, DefinitionFile, Request


def write_dossier(
    session: Session,
    number: str,
    target: str | Path,
    *,
    form_pdf: bytes,
    institution: InstitutionKey,
    now: datetime,
    attachments_dir: Path | None = None,
) -> dict[str, Any]:
    """Write the dossier of request ``number`` and return its manifest."""
    request = session.get(Request, number)
    if request is None:
        raise RequestNotFound(
            f"Không tìm thấy đề xuất {number}.", en=f"No request {number}.", number=number
        )
    checkpoint = make_checkpoint(session, institution=institution, now=now)
    events = list(iter_events(session))[: checkpoint.size]
    leaves = [event_leaf(e.hash, e.sig) for e in events]
    steps = [e for e in events if e.request == number]
    views = [event_view(json.loads(e.body)) for e in steps]
    signers = {view["key"] for view in views}
    key_events = [
        e
        for e in events
        if e.request is None
        and e.action in ("key.register", "key.enroll")
        and json.loads(e.body).get("data", {}).get("key_id") in signers
    ]
    chosen = sorted({e.seq: e for e in (*key_events, *steps)}.values(), key=lambda e: e.seq)
    files: dict[str, bytes] = {
        FORM: form_pdf,
        EVENTS: b"".join(event_line(e.body, e.hash, e.sig) for e in chosen),
    }
    named = {h for v in views for h in (v.get("definition"), v.get("budget")) if h}
    for row in session.scalars(select(DefinitionFile).where(DefinitionFile.sha256.in_(named))):
        files[f"{DEFINITIONS}{row.path}"] = row.content
    missing = []
    for item in request.attachments or []:
        path = attachment_path(attachments_dir, item["sha256"]) if attachments_dir else None
        if path is not None and path.is_file():
            files[f"{ATTACHMENTS}{item['sha256']}"] = path.read_bytes()
        else:
            missing.append(item["sha256"])
    manifest: dict[str, Any] = {
        "format": DOSSIER_FORMAT,
        "request": number,
        "origin": checkpoint.origin,
        "institution_key": institution.public_raw.hex(),
        "checkpoint": checkpoint.note,
        "created": format_ts(now),
        "proofs": {
            str(e.seq): [p.hex() for p in inclusion_proof(leaves, e.seq - 1)] for e in chosen
        },
        "files": {name: sha256_hex(data) for name, data in sorted(files.items())},
        "missing_attachments": missing,
    }
    raw = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode()
    signature = base64.b64encode(institution.sign(manifest_message(raw)))
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, raw)
        archive.writestr(SIGNATURE, signature + b"\n")
        for name, data in files.items():
            archive.writestr(name, data)
    return manifest


def steps_of(session: Session, number: str) -> list[AuditEvent]:
    """The request's events in order (for callers that show what a dossier will hold)."""
    return list(
        session.scalars(
            select(AuditEvent).where(AuditEvent.request == number).order_by(AuditEvent.seq)
        )
    )
