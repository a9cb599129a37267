"""The dashboard's figures on the demo school's history, as an inspector would check them by hand:
a line's spent and committed amounts are the sums of its paid and in-flight requests, the waiting
requests are the ones in each state, the time per state is what the timelines show."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from statistics import median

import pytest
from sqlalchemy import select

from workflow import queries
from workflow.demo import create_history
from workflow.district_report import Verification, school_report
from workflow.models import Request

from .conftest import SteppingClock
from .factories import School, pay_data

# decided on or paid: not yet (district_review: a large amount awaits the district's approval)
IN_FLIGHT = {"submitted", "returned", "forwarded", "district_review", "approved"}


@pytest.fixture
def history(school: School, clock: SteppingClock) -> School:
    """The demo school with a signed history of requests in every state, spread over three
    months, read twelve days after its last step (so some requests wait too long)."""
    clock.now += timedelta(days=90)
    create_history(school.runtime, 40)
    clock.now += timedelta(days=12)
    return school


def test_a_lines_spent_and_committed_are_the_sums_of_its_paid_and_in_flight_requests(
    history: School,
) -> None:
    rt = history.runtime
    with rt.read_sessions() as session:
        report = school_report(session, rt.definitions, now=rt.now())
        rows = session.scalars(select(Request)).all()
    catalogue = rt.definitions.catalogue("2024-2025")
    assert report.school_year == "2024-2025"
    assert [line.code for line in report.lines] == list(catalogue.lines)
    for line in report.lines:
        mine = [r for r in rows if r.line == line.code and r.school_year == "2024-2025"]
        paid = [r for r in mine if r.state == "paid"]
        flying = [r for r in mine if r.state in IN_FLIGHT]
        assert line.spent_vnd == sum(r.amount_paid_vnd or 0 for r in paid), line.code
        assert line.committed_vnd == sum(r.amount_vnd or 0 for r in flying), line.code
        assert (line.paid, line.in_flight) == (len(paid), len(flying))
        assert line.allocation_vnd == catalogue.lines[line.code].allocation_vnd
        assert line.remaining_vnd == line.allocation_vnd - line.spent_vnd - line.committed_vnd
    # the demo history has money in both columns, or the test above proved little
    assert report.spent_vnd > 0 and report.committed_vnd > 0
    assert report.spent_vnd == sum(r.amount_paid_vnd or 0 for r in rows if r.state == "paid")


def test_requests_waiting_per_state_with_their_oldest_and_median_wait(history: School) -> None:
    rt = history.runtime
    now = rt.now()
    with rt.read_sessions() as session:
        report = school_report(session, rt.definitions, now=now)
        rows = session.scalars(select(Request).where(Request.state.in_(IN_FLIGHT))).all()
    assert {w.state for w in report.waiting} == IN_FLIGHT
    for waiting in report.waiting:
        here = [r for r in rows if r.state == waiting.state]
        assert waiting.count == len(here)
        if not here:
            continue
        ages = [queries.seconds_since(r.updated_at or "", now) for r in here]
        oldest = min(here, key=lambda r: (r.updated_at or "", r.number))
        assert waiting.oldest_number == oldest.number
        assert waiting.oldest_seconds == pytest.approx(max(ages))
        assert waiting.median_seconds == pytest.approx(median(ages))
        limit = (rt.definitions.workflow().states[waiting.state].wait_days or 0) * 86400
        assert waiting.overdue == sum(1 for age in ages if limit and age > limit)
    assert report.stuck == sum(w.overdue for w in report.waiting) > 0
    # a district's overview counts the same from aggregates, without the median
    with rt.read_sessions() as session:
        overview = school_report(session, rt.definitions, now=now, detail=False)
    for brief, full in zip(overview.waiting, report.waiting, strict=True):
        assert (brief.count, brief.oldest_number, brief.overdue) == (
            full.count,
            full.oldest_number,
            full.overdue,
        )
        assert brief.oldest_seconds == pytest.approx(full.oldest_seconds)
        assert brief.median_seconds is None
    assert overview.lines == report.lines and overview.time_in_state == ()


def test_time_per_state_is_what_the_finished_requests_timelines_show(history: School) -> None:
    rt = history.runtime
    finals = ["paid", "rejected", "withdrawn"]
    with rt.read_sessions() as session:
        report = school_report(session, rt.definitions, now=rt.now())
        numbers = session.scalars(select(Request.number).where(Request.state.in_(finals))).all()
        stays: dict[str, list[float]] = defaultdict(list)
        for number in numbers:
            for step in queries.timeline(session, number):
                if step.waited is not None:
                    stays[step.from_state].append(step.waited)
    assert report.finished == len(numbers) > 0
    assert {t.state for t in report.time_in_state} == set(stays)
    for figure in report.time_in_state:
        assert figure.stays == len(stays[figure.state])
        assert figure.median_seconds == pytest.approx(median(stays[figure.state]))
        assert figure.mean_seconds == pytest.approx(
            sum(stays[figure.state]) / len(stays[figure.state])
        )


def test_the_latest_checkpoint_and_the_last_verification_or_its_absence(school: School) -> None:
    rt = school.runtime
    number = school.to_state("approved")
    school.act(number, "pay", "mai", data=pay_data(1_800_000))
    with rt.transaction() as session:
        made = rt.checkpoint(session)
    checked = Verification(at=datetime(2025, 1, 14, 3, 0), valid=True, events=made.size)
    with rt.read_sessions() as session:
        unrecorded = school_report(session, rt.definitions, now=rt.now())
        recorded = school_report(
            session, rt.definitions, now=rt.now(), last_verification=lambda _: checked
        )
        never = school_report(
            session, rt.definitions, now=rt.now(), last_verification=lambda _: None
        )
    assert unrecorded.checkpoint is not None
    assert unrecorded.checkpoint.size == made.size == unrecorded.events
    assert (unrecorded.verification_recorded, unrecorded.verification) == (False, None)
    assert (recorded.verification_recorded, recorded.verification) == (True, checked)
    assert (never.verification_recorded, never.verification) == (True, None)
