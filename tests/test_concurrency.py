"""Races and many writers against the real database: one winner, one chain, nothing half-written."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from expense_audit.errors import WorkflowError
from workflow.audit import event_view
from workflow.errors import ConcurrentChange
from workflow.livecheck import verify_live
from workflow.models import AuditEvent

from .factories import School

RACES = 120


def _race(*actions: Callable[[], Any]) -> list[Any]:
    """Run the actions at the same moment in threads; return each result or exception."""
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def run(index: int, action: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = action()
        except WorkflowError as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def _second_reviewer(school: School) -> None:
    with school.runtime.transaction() as session:
        school.runtime.directory(session).create_user(
            login="lan",
            name="Phạm Thị Lan",
            email="lan@th-demo.edu.vn",
            roles=["reviewer"],
            password="mat-khau-lan",
            signing_secret="ky-demo-2024",
        )


def test_two_reviewers_at_the_same_moment_exactly_one_wins(school: School) -> None:
    _second_reviewer(school)
    outcomes = {"long": 0, "lan": 0}
    for _ in range(RACES):
        number = school.to_state(
            "submitted", line="ENETVIET", quantity=10, unit_price_vnd="15.000", source="THU-DL"
        )
        seen = school.request(number).last_seq  # type: ignore[union-attr]
        results = _race(
            lambda number=number, seen=seen: school.act(
                number, "forward", "long", expected_seq=seen
            ),
            lambda number=number, seen=seen: school.act(
                number, "return", "lan", comment="Thiếu báo giá.", expected_seq=seen
            ),
        )
        winners = [r for r in results if isinstance(r, AuditEvent)]
        losers = [r for r in results if isinstance(r, ConcurrentChange)]
        assert len(winners) == 1 and len(losers) == 1, results
        winner = event_view(json.loads(winners[0].body))["actor"]
        outcomes[winner] += 1
        assert losers[0].actor == winner  # the loser is told who acted first
        with school.runtime.transaction() as session:
            decisions = session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.request == number, AuditEvent.action.in_(["forward", "return"]))
            )
        assert decisions == 1
    assert sum(outcomes.values()) == RACES
    _assert_log_sound(school)


def test_same_person_double_tap_records_one_decision(school: School) -> None:
    for _ in range(RACES // 2):
        number = school.to_state(
            "forwarded", line="ENETVIET", quantity=10, unit_price_vnd="15.000", source="THU-DL"
        )
        results = _race(
            lambda number=number: school.act(number, "reject", "toan", comment="Chưa cần."),
            lambda number=number: school.act(number, "reject", "toan", comment="Chưa cần."),
        )
        assert sum(isinstance(r, AuditEvent) for r in results) == 1, results
        assert sum(isinstance(r, WorkflowError) for r in results) == 1
    _assert_log_sound(school)


def test_many_writers_keep_one_chain(school: School) -> None:
    numbers = [
        school.draft(
            owner=owner, line="ENETVIET", quantity=5, unit_price_vnd="15.000", source="THU-DL"
        )
        for owner in ("hanh", "nga")
        for _ in range(12)
    ]

    def walk(number: str, owner: str) -> Callable[[], None]:
        def run() -> None:
            school.act(number, "submit", owner)
            school.act(number, "forward", "long")
            school.act(number, "approve", "toan")

        return run

    owners = ["hanh"] * 12 + ["nga"] * 12
    results = _race(*[walk(n, o) for n, o in zip(numbers, owners, strict=True)])
    assert all(r is None for r in results), [r for r in results if r is not None]
    with school.runtime.transaction() as session:
        seqs = session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
    assert seqs == list(range(1, len(seqs) + 1))
    _assert_log_sound(school)


def _assert_log_sound(school: School) -> None:
    runtime = school.runtime
    with runtime.transaction() as session:
        report = verify_live(session, institution=runtime.institution, now=runtime.now())
    assert report.valid, report.problems[:5]
