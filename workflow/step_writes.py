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

from sqlalchemy import Connection, Table, bindparam, insert, inspect, select, update
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
from .signatures import CounterUse

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
    counter: CounterUse | None  # a passkey's new counter and batch (None: unchanged)
    reset_failures: bool  # the key's count of wrong secrets starts again
    # sha256, path, content of the definition files the event names that the database did
    # not hold before the lock (usually none)
    definitions: Sequence[tuple[str, str, bytes]]
    mails: list[dict[str, Any]] = field(default_factory=list)  # outbox rows


# NOTE: built once: building a statement costs more than running it (about 35 us against 15 us
# on SQLite), and these run at every step.
_SEEN_HEAD = select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1)
_LOCKED_HEAD = _SEEN_HEAD.with_for_update()
_EVENTS_SINCE = (
    select(EVENTS.c.request, EVENTS.c.actor, REQUESTS.c.line)
    .outerjoin(REQUESTS, REQUESTS.c.number == EVENTS.c.request)
    .where(EVENTS.c.seq > bindparam("seq"))
)
# NOTE: locked: an edit of the draft appends no event, and on PostgreSQL it holds the draft's row
# (not the head) until it commits; read unlocked, a submission would bind the content before
# the edit and the edit would then be saved into a request already sent.
_LOCKED_DRAFT = select(DRAFTS).where(DRAFTS.c.number == bindparam("number")).with_for_update()
_KNOWN_DEFINITIONS = select(DEFINITIONS.c.sha256).where(
    DEFINITIONS.c.sha256.in_(bindparam("hashes", expanding=True))
)
_INSERT_EVENT = insert(EVENTS)
_ADVANCE_HEAD = update(HEAD).where(HEAD.c.id == 1)
_INSERT_REQUEST = insert(REQUESTS)
_UPDATE_REQUEST = update(REQUESTS).where(REQUESTS.c.number == bindparam("row_number"))
_UPDATE_KEY = update(KEYS).where(KEYS.c.key_id == bindparam("row_key_id"))
_INSERT_MAIL = insert(OUTBOX)
_INSERT_DEFINITION = insert(DEFINITIONS)


def seen_head(session: Session) -> Head:
    """The head in this transaction's snapshot, without locking it."""
    row = session.connection().execute(_SEEN_HEAD).one()
    return Head(int(row.seq), str(row.hash))


def locked_head_row(session: Session) -> Any:
    """The head's row, locked for this transaction (None before the log's genesis)."""
    return session.connection().execute(_LOCKED_HEAD).first()


def events_since(session: Session, seq: int) -> Sequence[Any]:
    """The events after ``seq``: request, actor and the request's budget line (under the lock:
    those appended since a step's snapshot, usually a few)."""
    return list(session.connection().execute(_EVENTS_SINCE, {"seq": seq}))


def draft_row(session: Session, number: str) -> Any:
    """A draft's row as it is now, locked for this transaction (Core: no ORM object to go
    stale), or None."""
    return session.connection().execute(_LOCKED_DRAFT, {"number": number}).first()


def unrecorded_definitions(session: Session, hashes: Sequence[str]) -> list[str]:
    """Which of these definition files the database does not hold yet (read before the lock)."""
    known = set(session.connection().execute(_KNOWN_DEFINITIONS, {"hashes": hashes}).scalars())
    return [sha256 for sha256 in hashes if sha256 not in known]


def write_step(session: Session, step: StepWrites) -> AuditEvent:
    """Run the step's statements in the caller's transaction, which holds the write lock and has
    checked that the log head is still ``step.head``. Returns the event (not in the session)."""
    if session.new or session.dirty or session.deleted:
        session.flush()  # what the caller changed through the ORM goes first, in order
    connection = session.connection()
    if step.definitions:
        _record_definitions(session, step.definitions)
    connection.execute(_INSERT_EVENT, step.event)
    connection.execute(_ADVANCE_HEAD, {"seq": step.event["seq"], "hash": step.event["hash"]})
    _store_projection(connection, step.before, step.after)
    budget_totals.move_commitment(connection, step.before, step.after)
    values: dict[str, Any] = {"failed_attempts": 0} if step.reset_failures else {}
    if step.counter is not None:
        values["sign_count"] = step.counter.sign_count
        values["last_batch"] = step.counter.batch
    if values:
        connection.execute(_UPDATE_KEY, {"row_key_id": step.key_id, **values})
    if step.mails:
        connection.execute(_INSERT_MAIL, step.mails)
    forget_written(session, step)
    return AuditEvent(**step.event)


def _record_definitions(session: Session, definitions: Sequence[tuple[str, str, bytes]]) -> None:
    """Keep every definition file an event names that the read before the lock did not find
    (read again under the lock: another step may have recorded it meanwhile)."""
    missing = set(unrecorded_definitions(session, [sha256 for sha256, _p, _c in definitions]))
    rows = [
        {"sha256": sha256, "path": path, "content": content}
        for sha256, path, content in definitions
        if sha256 in missing
    ]
    if rows:
        session.connection().execute(_INSERT_DEFINITION, rows)


def _store_projection(
    connection: Connection, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> None:
    if before is None:
        connection.execute(_INSERT_REQUEST, {name: after[name] for name in PROJECTION_FIELDS})
        return
    changed = {name: after[name] for name in PROJECTION_FIELDS if after[name] != before.get(name)}
    if changed:
        connection.execute(_UPDATE_REQUEST, {"row_number": after["number"], **changed})


def forget_written(session: Session, step: StepWrites) -> None:
    """Expire the ORM objects of rows written here, so the session reads them again if asked."""
    written = {(Request, (step.after["number"],)), (SigningKey, (step.key_id,))}
    # NOTE: judged by identity keys, not attributes: reading an attribute of an object already
    # expired (the full path expires everything) would load its row again, under the lock.
    for instance in list(session.identity_map.values()):
        key = inspect(instance).identity_key
        if key is not None and (key[0] in (LogHead, BudgetTotal) or key[:2] in written):
            session.expire(instance)
