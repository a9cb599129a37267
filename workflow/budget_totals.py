"""Running totals of what each budget line holds, kept with every step (a projection of the log,
like the request rows), so budget guards read a few rows instead of summing the whole table."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, case, delete, func, insert, select, update
from sqlalchemy.orm import Session

from expense_audit.budget import COMMITTED_STATES, BudgetBook, commitment_of

from .models import BudgetTotal, Request

Key = tuple[str, str, int]  # school year, line, budget year
_TOTALS = cast(Table, BudgetTotal.__table__)
# Built once: read at every step (see workflow/step_writes.py).
_LINE_TOTALS = select(
    _TOTALS.c.school_year, _TOTALS.c.line, _TOTALS.c.budget_year, _TOTALS.c.amount_vnd
).where(_TOTALS.c.line == bindparam("line"))
_MOVE = (
    update(_TOTALS)
    .where(
        _TOTALS.c.school_year == bindparam("key_school_year"),
        _TOTALS.c.line == bindparam("key_line"),
        _TOTALS.c.budget_year == bindparam("key_budget_year"),
    )
    .values(amount_vnd=_TOTALS.c.amount_vnd + bindparam("amount"))
)
_INSERT = insert(_TOTALS)


def move_commitment(
    connection: Connection, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> None:
    """Move the request's commitment on its budget line: an increment, no read."""
    old = commitment_of(dict(before)) if before is not None else None
    new = commitment_of(dict(after))
    if old == new:
        return
    for commitment, sign in ((old, -1), (new, 1)):
        if commitment is None:
            continue
        amount = sign * commitment.amount_vnd
        moved = connection.execute(
            _MOVE,
            {
                "key_school_year": commitment.school_year,
                "key_line": commitment.line,
                "key_budget_year": commitment.budget_year,
                "amount": amount,
            },
        )
        if moved.rowcount == 0:
            connection.execute(
                _INSERT,
                {
                    "school_year": commitment.school_year,
                    "line": commitment.line,
                    "budget_year": commitment.budget_year,
                    "amount_vnd": amount,
                },
            )


def line_totals(session: Session, line: str) -> list[tuple[Any, ...]]:
    """One line's totals as rows (school year, line, budget year, amount), in a fixed order: two
    reads compare equal when nothing moved on the line in between."""
    rows = session.connection().execute(_LINE_TOTALS, {"line": line})
    return sorted(tuple(row) for row in rows)


def book_for_line(session: Session, line: str) -> BudgetBook:
    """What the norm and allocation guards need about one line, across plans and years."""
    return book_of(line_totals(session, line))


def book_of(rows: Iterable[tuple[Any, ...]]) -> BudgetBook:
    """The book of a line's totals as line_totals() reads them."""
    book = BudgetBook()
    for school_year, code, budget_year, amount_vnd in rows:
        book.add_total(school_year, code, budget_year, amount_vnd)
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
