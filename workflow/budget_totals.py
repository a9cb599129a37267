"""Running totals of what each budget line holds, kept with every step (a projection of the log,
like the request rows), so budget guards read a few rows instead of summing the whole table."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session

from expense_audit.budget import COMMITTED_STATES, BudgetBook, Commitment, commitment_of

from .models import BudgetTotal, Request

Key = tuple[str, str, int]  # school year, line, budget year


def record_change(
    session: Session, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> None:
    """Move a request's commitment from what it held before this step to what it holds now."""
    old = commitment_of(dict(before)) if before is not None else None
    new = commitment_of(dict(after))
    if old == new:
        return
    for commitment, sign in ((old, -1), (new, 1)):
        if commitment is not None:
            _add(session, commitment, sign * commitment.amount_vnd)


def _add(session: Session, commitment: Commitment, amount: int) -> None:
    key = (commitment.school_year, commitment.line, commitment.budget_year)
    row = session.get(BudgetTotal, key, with_for_update=True)
    if row is None:
        session.add(
            BudgetTotal(school_year=key[0], line=key[1], budget_year=key[2], amount_vnd=amount)
        )
        session.flush()
    else:
        row.amount_vnd += amount


def book_for_line(session: Session, line: str) -> BudgetBook:
    """What the norm and allocation guards need about one line, across plans and years."""
    book = BudgetBook()
    for row in session.scalars(select(BudgetTotal).where(BudgetTotal.line == line)):
        book.add_total(row.school_year, row.line, row.budget_year, row.amount_vnd)
    return book


def expected_totals(projections: Iterable[Mapping[str, Any]]) -> dict[Key, int]:
    """The totals a replay of the log implies (zero totals left out)."""
    totals: dict[Key, int] = defaultdict(int)
    for projection in projections:
        commitment = commitment_of(dict(projection))
        if commitment is not None:
            totals[(commitment.school_year, commitment.line, commitment.budget_year)] += (
                commitment.amount_vnd
            )
    return {key: amount for key, amount in totals.items() if amount}


def stored_totals(session: Session) -> dict[Key, int]:
    return {
        (row.school_year, row.line, row.budget_year): row.amount_vnd
        for row in session.scalars(select(BudgetTotal))
        if row.amount_vnd
    }


def rebuild(session: Session) -> None:
    """Recompute every total from the request rows (after bulk loads; migrations)."""
    session.execute(delete(BudgetTotal))
    held = case((Request.state == "paid", Request.amount_paid_vnd), else_=Request.amount_vnd)
    rows = session.execute(
        select(Request.school_year, Request.line, Request.budget_year, func.sum(held))
        .where(Request.state.in_(COMMITTED_STATES), Request.line.is_not(None))
        .group_by(Request.school_year, Request.line, Request.budget_year)
    ).all()
    for school_year, line, budget_year, total in rows:
        session.add(
            BudgetTotal(
                school_year=school_year,
                line=line,
                budget_year=int(budget_year),
                amount_vnd=int(total or 0),
            )
        )
    session.flush()
