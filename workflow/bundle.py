"""Export the audit bundle an auditor receives (streamed: constant memory on large logs)."""

from __future__ import annotations

import json
import zipfile
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from expense_audit.verify.format import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    CHECKPOINTS,
    DEFINITIONS_DIR,
    EVENTS,
    KEYS,
    MANIFEST,
    check_member_name,
)
from expense_audit.verify.format import event_line as format_line

from .audit import format_ts, iter_events, lock_head, make_checkpoint
from .keys import INSTITUTION_ACTOR, InstitutionKey
from .models import AuditEvent, CheckpointRow, DefinitionFile, SigningKey


def event_line(event: AuditEvent) -> bytes:
    """One events.jsonl line, embedding the exact signed body bytes."""
    return format_line(event.body, event.hash, event.sig)


def export_bundle(
    session: Session, target: str | Path | IO[bytes], *, institution: InstitutionKey, now: datetime
) -> dict[str, Any]:
    """Write the bundle zip (a fresh checkpoint always covers every event) and return its manifest."""
    make_checkpoint(session, institution=institution, now=now)
    head = lock_head(session)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        count = 0
        with bundle.open(EVENTS, "w", force_zip64=True) as events:
            for event in iter_events(session):
                events.write(event_line(event))
                count += 1
        checkpoints = session.scalars(select(CheckpointRow).order_by(CheckpointRow.size)).all()
        bundle.writestr(
            CHECKPOINTS,
            "".join(
                json.dumps({"size": c.size, "root": c.root, "note": c.note}, ensure_ascii=False)
                + "\n"
                for c in checkpoints
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
        manifest = {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "origin": head.origin,
            "institution": {"key_id": institution.key_id, "fingerprint": institution.fingerprint},
            "event_count": count,
            "head_hash": head.hash,
            "exported_at": format_ts(now),
            "definitions": definitions,
        }
        bundle.writestr(MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False))
    return manifest
