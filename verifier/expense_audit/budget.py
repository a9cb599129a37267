"""Budget arithmetic: what is committed on each line, shared by the engine and the verifier."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

COMMITTED_STATES = ("approved", "paid")


@dataclass(frozen=True)
class Commitment:
    """Money a request holds against its line: approved (amount asked) or paid (amount paid)."""

    school_year: str
    line: str
    budget_year: int
    amount_vnd: int


class BudgetBook:
    """Running totals of commitments per request; updated incrementally during a replay."""

    def __init__(self, commitments: Iterable[tuple[str, Commitment]] = ()) -> None:
        self._by_request: dict[str, Commitment] = {}
        self._allocation: dict[tuple[str, str], int] = defaultdict(int)
        self._year: dict[tuple[str, int], int] = defaultdict(int)
        for number, commitment in commitments:
            self.set(number, commitment)

    def set(self, number: str, commitment: Commitment | None) -> None:
        """Record (or with None, release) the commitment of one request."""
        old = self._by_request.pop(number, None)
        if old is not None:
            self._allocation[(old.school_year, old.line)] -= old.amount_vnd
            self._year[(old.line, old.budget_year)] -= old.amount_vnd
        if commitment is not None:
            self._by_request[number] = commitment
            self._allocation[(commitment.school_year, commitment.line)] += commitment.amount_vnd
            self._year[(commitment.line, commitment.budget_year)] += commitment.amount_vnd

    def add_total(self, school_year: str, line: str, budget_year: int, amount_vnd: int) -> None:
        """Add an aggregated commitment (from a SUM in the database) that no single request owns."""
        self._allocation[(school_year, line)] += amount_vnd
        self._year[(line, budget_year)] += amount_vnd

    def used_of_allocation(self, school_year: str, line: str) -> int:
        """Committed on a line of one school year's plan."""
        return self._allocation.get((school_year, line), 0)

    def used_in_years(self, line: str, first_year: int, last_year: int) -> int:
        """Committed on a line in budget years first_year..last_year, across plans."""
        return sum(self._year.get((line, year), 0) for year in range(first_year, last_year + 1))


def commitment_of(projection: dict[str, object]) -> Commitment | None:
    """The commitment a projected request holds, or None when it holds no money."""
    state = projection.get("state")
    if state not in COMMITTED_STATES or projection.get("line") is None:
        return None
    amount = projection.get("amount_paid_vnd") if state == "paid" else projection.get("amount_vnd")
    return Commitment(
        school_year=str(projection["school_year"]),
        line=str(projection["line"]),
        budget_year=int(str(projection["budget_year"])),
        amount_vnd=int(str(amount)),
    )
