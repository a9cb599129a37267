"""What operators watch, read from the database: queue ages, outbox, checkpoints, verifications,
and whether this node is ready to serve (database, schema, institution key).

Read at each scrape or probe, so every app node reports the same figures for the shared database.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from expense_audit.errors import WorkflowError

from .migrate import alembic_config
from .models import AuditEvent, CheckpointRow, LogHead, OutboxMail, Request
from .verifications import latest_verifications


@dataclass(frozen=True)
class Queue:
    """Requests in one state, and how long the one waiting longest has waited (seconds)."""

    count: int
    oldest_age: float


@dataclass(frozen=True)
class Latest:
    """The latest checkpoint or verification: when (unix time), how many events, passed."""

    at: float
    size: int
    valid: bool = True


@dataclass
class Snapshot:
    """The operator's figures of one log at one moment."""

    origin: str
    steps: dict[str, int] = field(default_factory=dict)  # events by action
    queues: dict[str, Queue] = field(default_factory=dict)  # requests by state
    outbox: dict[str, int] = field(default_factory=dict)  # mails by status
    oldest_due_mail_age: float = 0.0
    checkpoint: Latest | None = None
    verification: Latest | None = None


def _unix(moment: datetime) -> float:
    return (moment - datetime(1970, 1, 1)).total_seconds()


def _event_time(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")


def snapshot(session: Session, *, now: datetime, waiting_states: Iterable[str]) -> Snapshot:
    """Read the figures; ages only for ``waiting_states`` (a final state waits for no one)."""
    origin = session.scalars(select(LogHead.origin).order_by(LogHead.id)).first() or ""
    figures = Snapshot(origin=origin)
    steps = select(AuditEvent.action, func.count()).group_by(AuditEvent.action)
    figures.steps = {action: int(n) for action, n in session.execute(steps)}
    waiting = set(waiting_states)
    by_state = select(Request.state, func.count(), func.min(Request.updated_at)).group_by(
        Request.state
    )
    for state, count, oldest in session.execute(by_state):
        age = (now - _event_time(oldest)).total_seconds() if oldest and state in waiting else 0.0
        figures.queues[state] = Queue(int(count), max(age, 0.0))
    by_status = select(OutboxMail.status, func.count()).group_by(OutboxMail.status)
    figures.outbox = {status: int(n) for status, n in session.execute(by_status)}
    due = session.scalar(
        select(func.min(OutboxMail.created_at)).where(OutboxMail.status.in_(("pending", "sending")))
    )
    figures.oldest_due_mail_age = max((now - due).total_seconds(), 0.0) if due else 0.0
    latest = session.scalars(select(CheckpointRow).order_by(CheckpointRow.size.desc())).first()
    if latest is not None:
        figures.checkpoint = Latest(_unix(latest.created_at), latest.size)
    verified = latest_verifications(session).get(origin)
    if verified is not None:
        figures.verification = Latest(_unix(verified.at), verified.size, verified.valid)
    return figures


@functools.cache
def _heads() -> frozenset[str]:
    """The migrations' heads (read once: the scripts do not change while the process runs)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


@dataclass(frozen=True)
class Check:
    """One readiness check: its name, whether it passed, and why not."""

    name: str
    ok: bool
    detail: str = ""


def readiness(
    engine: Engine, *, institution: Callable[[], object], schema: str | None = None
) -> list[Check]:
    """Can this node serve? 1. the database answers; 2. its schema is at the migrations' head;
    3. the institution key loads (``institution`` loads it, raising WorkflowError if it cannot).
    ``schema``: a school's schema in a multi-school deployment (its own alembic version table)."""
    checks: list[Check] = []
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
            options = {"version_table_schema": schema} if schema else {}
            context = MigrationContext.configure(connection, opts=options)
            current = set(context.get_current_heads())
        checks.append(Check("database", True))
        heads = _heads()
        behind = "" if current == heads else f"at {sorted(current)}, head is {sorted(heads)}"
        checks.append(Check("migrations", not behind, behind))
    except SQLAlchemyError as exc:
        reason = (str(getattr(exc, "orig", None) or exc).splitlines() or ["unreachable"])[0][:200]
        checks.append(Check("database", False, reason))
        checks.append(Check("migrations", False, "the database cannot be read"))
    try:
        institution()
        checks.append(Check("institution_key", True))
    except WorkflowError as exc:
        checks.append(Check("institution_key", False, exc.message))
    return checks
