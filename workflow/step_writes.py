"""What a signed step writes, in SQLAlchemy Core: the event, the head, the request row, the budget
totals, the key's counter and the mails, each one statement.

ApprovalService.commit() works out everything a step writes before it takes the write lock
(StepWrites); under the lock only the head is read (and a draft that is being submitted) and
these statements run. They bypass the ORM's unit of work, which cost most of a step (about 60%
of its time in the profile of bench/engine_rate.py), so ORM objects of the rows written here
are expired afterwards (forget_written).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.orm import Session

from expense_audit.projection import PROJECTION_FIELDS, Projection

from . import budget_totals
from .models import (
    AuditEvent,
    BudgetTotal,
    DefinitionFile,
    Draft,
    LogHead,
    OutboxMail,
    Request,
    SigningKey,
)

EVENTS = cast(Table, AuditEvent.__table__)
HEAD = cast(Table, LogHead.__table__)
REQUESTS = cast(Table, Request.__table__)
KEYS = cast(Table, SigningKey.__table__)
OUTBOX = cast(Table, OutboxMail.__table__)
DEFINITIONS = cast(Table, DefinitionFile.__table__)
DRAFTS = cast(Table, Draft.__table__)


@dataclass(frozen=True)
class Head:
    """The log head as a step saw it: the last event's number and hash."""

    seq: int
    hash: str


@dataclass
class StepWrites:
    """Everything one signed step writes, computed before the write lock."""

    head: Head  # the head the event was chained to
    event: dict[str, Any]  # the audit_events row
    before: Projection | None  # the request's projection before the step (None: first event)
    after: Projection
    key_id: str
    sign_count: int | None  # a passkey's new counter (None: unchanged)
    reset_failures: bool  # the key's count of wrong secrets starts again
    definitions: Sequence[tuple[str, str, bytes]]  # sha256, path, content the event names
    mails: list[dict[str, Any]] = field(default_factory=list)  # outbox rows


def seen_head(session: Session) -> Head:
    """The head in this transaction's snapshot, without locking it."""
    row = session.connection().execute(select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1)).one()
    return Head(int(row.seq), str(row.hash))


def draft_row(session: Session, number: str) -> Any:
    """A draft's row as it is now (Core: no ORM object to go stale), or None."""
    return session.connection().execute(select(DRAFTS).where(DRAFTS.c.number == number)).first()


def write_step(session: Session, step: StepWrites) -> AuditEvent:
    """Run the step's statements in the caller's transaction, which holds the write lock and has
    checked that the log head is still ``step.head``. Returns the event (not in the session)."""
    if session.new or session.dirty or session.deleted:
        session.flush()  # what the caller changed through the ORM goes first, in order
    connection = session.connection()
    _record_definitions(connection, step.definitions)
    connection.execute(insert(EVENTS), step.event)
    connection.execute(
        update(HEAD).where(HEAD.c.id == 1).values(seq=step.event["seq"], hash=step.event["hash"])
    )
    _store_projection(connection, step.before, step.after)
    budget_totals.move_commitment(connection, step.before, step.after)
    values: dict[str, Any] = {"failed_attempts": 0} if step.reset_failures else {}
    if step.sign_count is not None:
        values["sign_count"] = step.sign_count
    if values:
        connection.execute(update(KEYS).where(KEYS.c.key_id == step.key_id).values(**values))
    if step.mails:
        connection.execute(insert(OUTBOX), step.mails)
    forget_written(session, step)
    return AuditEvent(**step.event)


def _record_definitions(
    connection: Connection, definitions: Sequence[tuple[str, str, bytes]]
) -> None:
    """Keep every definition file an event names (one query; inserted in this transaction)."""
    hashes = [sha256 for sha256, _path, _content in definitions]
    known = set(
        connection.execute(
            select(DEFINITIONS.c.sha256).where(DEFINITIONS.c.sha256.in_(hashes))
        ).scalars()
    )
    missing = [
        {"sha256": sha256, "path": path, "content": content}
        for sha256, path, content in definitions
        if sha256 not in known
    ]
    if missing:
        connection.execute(insert(DEFINITIONS), missing)


def _store_projection(
    connection: Connection, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> None:
    if before is None:
        connection.execute(insert(REQUESTS), {name: after[name] for name in PROJECTION_FIELDS})
        return
    changed = {name: after[name] for name in PROJECTION_FIELDS if after[name] != before.get(name)}
    if changed:
        connection.execute(
            update(REQUESTS).where(REQUESTS.c.number == after["number"]).values(**changed)
        )


def forget_written(session: Session, step: StepWrites) -> None:
    """Expire the ORM objects of rows written here, so the session reads them again if asked."""
    number = step.after["number"]
    for instance in list(session.identity_map.values()):
        if (
            isinstance(instance, (LogHead, BudgetTotal))
            or (isinstance(instance, Request) and instance.number == number)
            or (isinstance(instance, SigningKey) and instance.key_id == step.key_id)
        ):
            session.expire(instance)
