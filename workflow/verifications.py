"""The record of live verifications: when each log was last verified, how far, and the result."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from expense_audit.verify import Report

from .models import VerificationRow

SOURCES = ("cli", "web")


def record_verification(
    session: Session, report: Report, *, origin: str, now: datetime, source: str
) -> VerificationRow:
    """Keep one verification's outcome (the caller's transaction commits it)."""
    if source not in SOURCES:
        raise ValueError(f"verification source must be one of {SOURCES}, not {source!r}")
    row = VerificationRow(
        origin=origin,
        at=now,
        size=report.event_count,
        valid=report.valid,
        problems=len(report.problems),
        source=source,
    )
    session.add(row)
    session.flush()
    return row


def latest_verification(session: Session, *, origin: str | None = None) -> VerificationRow | None:
    """The latest verification of the log ``origin`` (of any log when None), or None."""
    query = select(VerificationRow)
    if origin is not None:
        query = query.where(VerificationRow.origin == origin)
    return session.scalars(
        query.order_by(VerificationRow.at.desc(), VerificationRow.id.desc()).limit(1)
    ).first()


def latest_verifications(session: Session) -> dict[str, VerificationRow]:
    """The latest verification of every log that was ever verified, by origin."""
    newest = select(func.max(VerificationRow.id)).group_by(VerificationRow.origin)
    rows = session.scalars(select(VerificationRow).where(VerificationRow.id.in_(newest)))
    return {row.origin: row for row in rows}
