"""The signed, hash-chained event log: append (serialized on the head) and checkpoints."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from expense_audit.canonical import GENESIS_PREV, canonical_json, event_hash, signing_message
from expense_audit.checkpoint import Checkpoint, sign_checkpoint
from expense_audit.decision import make_log_body
from expense_audit.merkle import leaf_hash, root_from_leaf_hashes

from .errors import LogNotInitialised
from .keys import INSTITUTION_ACTOR, InstitutionKey, Signer
from .models import AuditEvent, CheckpointRow, LogHead
from .step_writes import Head, locked_head_row

EVENT_VERSION = 1


def format_ts(moment: datetime) -> str:
    """UTC timestamp as stored in events: 2026-11-22T09:15:03Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# pg_advisory_xact_lock's first key for "append to the log" (any constant: 'expn'); the second is
# the hash of the schema, so the schools of a district, one schema each, do not queue together.
APPEND_LOCK = 0x6578_706E


def lock_head(session: Session) -> LogHead:
    """Lock the log head for this transaction, first come, first served.

    SQLite: the transaction is IMMEDIATE and its writers queue (workflow.db.WriteQueue).
    PostgreSQL: an advisory lock, whose waiters are granted in the order they came, then the
    row lock. NOTE: the row lock alone is not fair: each append writes a new version of the
    head row, and waiters that followed the update chain race for the new version.
    """
    _queue_for_append(session)
    head = session.scalars(select(LogHead).where(LogHead.id == 1).with_for_update()).first()
    if head is None:
        raise LogNotInitialised("The audit log is not initialised: run `flask --app wsgi init-db`.")
    return head


def locked_head(session: Session) -> Head:
    """lock_head() for the step's Core statements: the head's number and hash, locked."""
    _queue_for_append(session)
    row = locked_head_row(session)
    if row is None:
        raise LogNotInitialised("The audit log is not initialised: run `flask --app wsgi init-db`.")
    return Head(int(row.seq), str(row.hash))


def _queue_for_append(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(func.pg_advisory_xact_lock(APPEND_LOCK, func.hashtext(func.current_schema())))
        )


def append_event(
    session: Session,
    *,
    signer: Signer,
    ts: datetime,
    action: str,
    actor: str,
    role: str,
    request: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    definition: str | None = None,
    data: Mapping[str, Any] | None = None,
    comment: str | None = None,
    head: LogHead | None = None,
) -> AuditEvent:
    """Append one signed event after the current head; the caller's transaction commits it.

    ``head`` is the head row the caller already locked in this transaction, if any.
    """
    head = head or lock_head(session)
    body = {
        "v": EVENT_VERSION,
        "origin": head.origin,
        "seq": head.seq + 1,
        "prev": head.hash,
        "ts": format_ts(ts),
        "request": request,
        "action": action,
        "from": from_state,
        "to": to_state,
        "actor": actor,
        "role": role,
        "key": signer.key_id,
        "definition": definition,
        "data": dict(data or {}),
        "comment": comment,
    }
    body_bytes = canonical_json(body)
    row = AuditEvent(
        seq=body["seq"],
        hash=event_hash(body_bytes),
        prev=head.hash,
        request=request,
        action=action,
        actor=actor,
        key_id=signer.key_id,
        ts=body["ts"],
        body=body_bytes,
        sig=signer.sign(signing_message(body_bytes)),
    )
    session.add(row)
    head.seq, head.hash = row.seq, row.hash
    session.flush()
    return row


def append_decision(
    session: Session,
    *,
    decision: Mapping[str, Any],
    signature: Mapping[str, Any],
    ts: datetime,
    head: LogHead | None = None,
) -> AuditEvent:
    """Append a v2 event: a decision the person signed on their device, wrapped by the log."""
    head = head or lock_head(session)
    values, _body = decision_row(
        decision, signature, seq=head.seq + 1, prev=head.hash, ts=format_ts(ts)
    )
    row = AuditEvent(**values)
    session.add(row)
    head.seq, head.hash = row.seq, row.hash
    session.flush()
    return row


def decision_row(
    decision: Mapping[str, Any], signature: Mapping[str, Any], *, seq: int, prev: str, ts: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The audit_events row of a v2 event at ``seq`` after ``prev``, and its log body.

    The body carries the signature, so the row's ``sig`` is empty and the Merkle leaf input is
    the hash alone (event_leaf of an empty signature).
    """
    body = make_log_body(seq=seq, prev=prev, ts=ts, decision=decision, signature=signature)
    body_bytes = canonical_json(body)  # make_log_body checked it: its JCS as log_body_bytes
    row = {
        "seq": seq,
        "hash": event_hash(body_bytes),
        "prev": prev,
        "request": decision["request"],
        "action": decision["action"],
        "actor": decision["actor"],
        "key_id": decision["key"],
        "ts": ts,
        "body": body_bytes,
        "sig": b"",
    }
    return row, body


def event_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an event as v1 named them, for either version (a v2 decision is flattened)."""
    if body.get("v") == 2:
        decision = body["decision"]
        return {**decision, "v": 2, "seq": body["seq"], "ts": body["ts"], "prev": body["prev"]}
    return dict(body)


def append_institution_event(
    session: Session,
    *,
    signer: Signer,
    ts: datetime,
    action: str,
    data: Mapping[str, Any],
) -> AuditEvent:
    """An event the institution key signs about the log's people, keys and certificates."""
    return append_event(
        session,
        signer=signer,
        ts=ts,
        action=action,
        actor=INSTITUTION_ACTOR,
        role=INSTITUTION_ACTOR,
        data=data,
    )


def init_log(
    session: Session, *, origin: str, institution: InstitutionKey, ts: datetime
) -> AuditEvent:
    """Create the head and the genesis event that names the institution key."""
    session.add(LogHead(id=1, origin=origin, seq=0, hash=GENESIS_PREV))
    session.flush()
    return append_institution_event(
        session,
        signer=institution,
        ts=ts,
        action="log.init",
        data={
            "institution_key": institution.public_raw.hex(),
            "fingerprint": institution.fingerprint,
        },
    )


def event_leaf(event_hash_hex: str, sig: bytes) -> bytes:
    """Merkle leaf of an event: its hash followed by its signature, so checkpoints bind both."""
    return leaf_hash(bytes.fromhex(event_hash_hex) + sig)


def iter_events(session: Session, *, after: int = 0, batch: int = 2000) -> Iterator[AuditEvent]:
    """Events in order, fetched in batches (constant memory on large logs)."""
    last = after
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def make_checkpoint(session: Session, *, institution: InstitutionKey, now: datetime) -> Checkpoint:
    """Sign a checkpoint over the whole log now (re-using the latest if nothing is new)."""
    head = lock_head(session)
    latest = session.get(CheckpointRow, head.seq)
    if latest is not None:
        return Checkpoint(head.origin, latest.size, bytes.fromhex(latest.root), latest.note)
    leaves = [event_leaf(e.hash, e.sig) for e in iter_events(session)]
    root = root_from_leaf_hashes(leaves)
    checkpoint = sign_checkpoint(head.origin, len(leaves), root, institution.private, now=now)
    session.add(
        CheckpointRow(size=checkpoint.size, root=root.hex(), note=checkpoint.note, created_at=now)
    )
    session.flush()
    return checkpoint


def checkpoint_if_due(
    session: Session, *, institution: InstitutionKey, now: datetime, every: timedelta
) -> Checkpoint | None:
    """The scheduled checkpoint: sign one when the log grew and the latest is ``every`` old.

    NOTE: decided under the head lock, so when several app nodes run the schedule at once the
    first makes it and the others, waiting on the lock, find it fresh and do nothing (no second
    checkpoint, no second round of witness mails).
    """
    head = lock_head(session)
    latest = session.scalars(select(CheckpointRow).order_by(CheckpointRow.size.desc())).first()
    if latest is not None and (latest.size >= head.seq or now - latest.created_at < every):
        return None
    return make_checkpoint(session, institution=institution, now=now)
