"""The payment dossier (hồ sơ thanh toán): one zip per paid request, verifiable on its own.

It holds the form PDF, every attached file, the forms signed with a CA certificate (PAdES, with
the form.sign events and the certificates' cert.register / cert.revoke), the request's signed events, the key events of the
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
from expense_audit.verify.format import SIGNED_FORMS_DIR, event_line

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
    signed, signed_events = _signed_form_events(events, number)
    chosen = sorted(
        {e.seq: e for e in (*key_events, *steps, *signed_events)}.values(), key=lambda e: e.seq
    )
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
    missing_signed = []
    for sha in signed:
        path = attachment_path(attachments_dir, sha) if attachments_dir else None
        if path is not None and path.is_file():
            files[f"{SIGNED_FORMS_DIR}{sha}.pdf"] = path.read_bytes()
        else:
            missing_signed.append(sha)
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
        "missing_signed_forms": missing_signed,
    }
    raw = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode()
    signature = base64.b64encode(institution.sign(manifest_message(raw)))
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, raw)
        archive.writestr(SIGNATURE, signature + b"\n")
        for name, data in files.items():
            archive.writestr(name, data)
    return manifest


def _signed_form_events(
    events: list[AuditEvent], number: str
) -> tuple[list[str], list[AuditEvent]]:
    """The request's form.sign events with the cert.register/cert.revoke of their certificates.

    Returns the signed PDFs' sha256 and the events; the dossier verifier checks the PDFs against
    them (and, with the pdf extra, their PAdES signatures).
    """
    data = {e.seq: json.loads(e.body).get("data") or {} for e in events if e.request is None}
    forms = [e for e in events if e.action == "form.sign" and data[e.seq].get("request") == number]
    certificates = {data[e.seq]["certificate"] for e in forms}
    about = [
        e
        for e in events
        if (e.action == "cert.register" and data[e.seq].get("sha256") in certificates)
        or (e.action == "cert.revoke" and data[e.seq].get("certificate") in certificates)
    ]
    return [str(data[e.seq]["pdf_sha256"]) for e in forms], [*about, *forms]


def steps_of(session: Session, number: str) -> list[AuditEvent]:
    """The request's events in order (for callers that show what a dossier will hold)."""
    return list(
        session.scalars(
            select(AuditEvent).where(AuditEvent.request == number).order_by(AuditEvent.seq)
        )
    )
