"""The inspector's dashboard of one school, and the district's over many: read-only figures.

From one school's read-only session and its definitions: per budget line of the plan in force,
the allocation, what requests in flight ask (committed), what was paid (spent) and what would be
left if every request in flight went through (remaining); the requests waiting in each state, how
many, the oldest and the median wait; the time finished requests spent in each state (from the
signed events' times); the latest checkpoint; the last verification of the log when the deployment
records one. Nothing here writes.

A district sees many schools: each is a ``SchoolSource`` (code, name, a read-only session factory,
its definitions), so the same functions serve one school today and every granted school of the
district deployment.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from expense_audit.definitions import BudgetCatalogue, DefinitionSet, Labels, StateDef
from expense_audit.mandates import local_date

from . import ledger, queries
from .audit import event_view
from .models import AuditEvent, Request
from .verifications import latest_verification

DAY = 86400.0


def _moment(ts: str) -> datetime:
    """An event time ("2025-01-14T03:15:00Z") as a naive UTC datetime.

    NOTE: fromisoformat, not strptime: a dashboard reads thousands of these, and strptime costs
    about forty times as much.
    """
    return datetime.fromisoformat(ts.removesuffix("Z"))


@dataclass(frozen=True)
class States:
    """Every state a request may be in, whichever workflow it follows (the default one's first,
    then the states only another has, such as the district's review of large amounts)."""

    of: Mapping[str, StateDef]
    in_flight: tuple[str, ...]  # a submitted request waits here: neither a draft nor final
    final: tuple[str, ...]


def states_of(definitions: DefinitionSet) -> States:
    """The states of every workflow of ``definitions``."""
    default = definitions.workflow()
    merged = dict(default.states)
    for other in definitions.workflows.values():
        for name, state in other.states.items():
            merged.setdefault(name, state)
    initials = {w.initial for w in definitions.workflows.values()}
    return States(
        of=merged,
        in_flight=tuple(n for n, st in merged.items() if not st.final and n not in initials),
        final=tuple(n for n, st in merged.items() if st.final),
    )


def action_labels(definitions: DefinitionSet) -> dict[str, Labels]:
    """The label of every trigger of every workflow (the default one's first)."""
    labels: dict[str, Labels] = {}
    for workflow in (definitions.workflow(), *definitions.workflows.values()):
        for transition in workflow.transitions:
            labels.setdefault(transition.trigger, transition.label)
    return labels


@dataclass(frozen=True)
class LineFigures:
    """One budget line of the plan in force: allocation, committed, spent, remaining (đồng)."""

    code: str
    name: Labels
    allocation_vnd: int
    committed_vnd: int  # asked by requests in flight (submitted, returned, forwarded, approved)
    spent_vnd: int  # paid: the amounts actually paid
    in_flight: int  # how many requests the committed amount sums
    paid: int  # how many requests the spent amount sums

    @property
    def remaining_vnd(self) -> int:
        """What is left if every request in flight goes through (negative: over-committed)."""
        return self.allocation_vnd - self.spent_vnd - self.committed_vnd


@dataclass(frozen=True)
class Waiting:
    """Requests waiting in one state now: how many, the oldest and the median wait (seconds)."""

    state: str
    label: Labels
    count: int
    oldest_seconds: float
    median_seconds: float | None  # None in a district's overview (aggregates only)
    overdue: int  # waiting longer than the state's wait_days in the definition
    wait_days: int | None
    oldest_number: str | None


@dataclass(frozen=True)
class StateTime:
    """How long finished requests stayed in one state (each stay counted once)."""

    state: str
    label: Labels
    stays: int
    median_seconds: float
    mean_seconds: float


@dataclass(frozen=True)
class CheckpointFigures:
    size: int
    created_at: datetime
    root: str


@dataclass(frozen=True)
class Verification:
    """A recorded verification of the log: when, whether it passed, how many events it covered."""

    at: datetime
    valid: bool
    events: int
    problems: int = 0


# Where the deployment's last verification comes from: a function of the session, or nothing
# (the deployment keeps no record of its verifications).
VerificationSource = Callable[[Session], Verification | None]


def recorded_verification(origin: str) -> VerificationSource:
    """The latest verification of the log ``origin`` kept by workflow.verifications (audit
    verify on the command line, "Verify now" on the audit page)."""

    def read(session: Session) -> Verification | None:
        row = latest_verification(session, origin=origin)
        if row is None:
            return None
        return Verification(at=row.at, valid=row.valid, events=row.size, problems=row.problems)

    return read


@dataclass(frozen=True)
class SchoolReport:
    """Everything the dashboard of one school shows."""

    school: Labels
    school_year: str  # the plan in force
    lines: tuple[LineFigures, ...]
    waiting: tuple[Waiting, ...]
    time_in_state: tuple[StateTime, ...]
    finished: int  # requests whose time in each state is measured
    checkpoint: CheckpointFigures | None
    events: int
    verification: Verification | None
    verification_recorded: bool  # False: this deployment does not record verifications yet

    @property
    def allocation_vnd(self) -> int:
        return sum(line.allocation_vnd for line in self.lines)

    @property
    def committed_vnd(self) -> int:
        return sum(line.committed_vnd for line in self.lines)

    @property
    def spent_vnd(self) -> int:
        return sum(line.spent_vnd for line in self.lines)

    @property
    def remaining_vnd(self) -> int:
        return self.allocation_vnd - self.spent_vnd - self.committed_vnd

    @property
    def stuck(self) -> int:
        """Requests waiting longer than their state allows."""
        return sum(w.overdue for w in self.waiting)

    def line(self, code: str) -> LineFigures | None:
        return next((line for line in self.lines if line.code == code), None)


def plan_in_force(definitions: DefinitionSet, now: datetime) -> BudgetCatalogue:
    """The budget plan in force on the school's calendar date of ``now``."""
    return definitions.catalogue_on(local_date(now))


def school_report(
    session: Session,
    definitions: DefinitionSet,
    *,
    now: datetime,
    last_verification: VerificationSource | None = None,
    detail: bool = True,
) -> SchoolReport:
    """The dashboard figures of one school, read from its session (which is only read).

    ``detail=False`` is the overview a district reads for each of many schools: aggregates only,
    no median wait and no time per state (the one figure that reads every event of the plan's
    finished requests).
    """
    catalogue = plan_in_force(definitions, now)
    states = states_of(definitions)
    checkpoint = queries.latest_checkpoint(session)
    times, finished = (
        time_in_state(session, states, school_year=catalogue.school_year) if detail else ([], 0)
    )
    return SchoolReport(
        school=catalogue.school,
        school_year=catalogue.school_year,
        lines=tuple(line_figures(session, catalogue, states)),
        waiting=tuple(
            waiting(session, states, now=now)
            if detail
            else waiting_summary(session, states, now=now)
        ),
        time_in_state=tuple(times),
        finished=finished,
        checkpoint=(
            CheckpointFigures(checkpoint.size, checkpoint.created_at, checkpoint.root)
            if checkpoint is not None
            else None
        ),
        events=queries.event_count(session),
        verification=last_verification(session) if last_verification is not None else None,
        verification_recorded=last_verification is not None,
    )


def line_figures(session: Session, catalogue: BudgetCatalogue, states: States) -> list[LineFigures]:
    """Allocation, committed and spent of every line of ``catalogue``, in the plan's order."""
    flying = states.in_flight
    rows = session.execute(
        select(
            Request.line,
            Request.state,
            func.count(),
            func.sum(Request.amount_vnd),
            func.sum(Request.amount_paid_vnd),
        )
        .where(Request.school_year == catalogue.school_year)
        .where(Request.state.in_((*flying, "paid")))
        .group_by(Request.line, Request.state)
    ).all()
    committed: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    spent: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for line, state, count, asked, paid in rows:
        if line is None:
            continue
        if state == "paid":
            spent[line][0] += int(count)
            spent[line][1] += int(paid or 0)
        else:
            committed[line][0] += int(count)
            committed[line][1] += int(asked or 0)
    return [
        LineFigures(
            code=code,
            name=line.name,
            allocation_vnd=line.allocation_vnd,
            committed_vnd=committed[code][1],
            spent_vnd=spent[code][1],
            in_flight=committed[code][0],
            paid=spent[code][0],
        )
        for code, line in catalogue.lines.items()
    ]


def waiting(session: Session, states: States, *, now: datetime) -> list[Waiting]:
    """Requests in each in-flight state now, with the oldest and median wait, in workflow order."""
    flying = states.in_flight
    ages: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for state, updated_at, number in session.execute(
        select(Request.state, Request.updated_at, Request.number).where(Request.state.in_(flying))
    ):
        if updated_at:
            ages[state].append(((now - _moment(updated_at)).total_seconds(), number))
    result = []
    for state in flying:
        definition = states.of[state]
        found = sorted(
            ages.get(state, []), key=lambda item: (-item[0], item[1])
        )  # ties: lowest number
        limit = definition.wait_days * DAY if definition.wait_days else None
        result.append(
            Waiting(
                state=state,
                label=definition.label,
                count=len(found),
                oldest_seconds=found[0][0] if found else 0.0,
                median_seconds=float(median(age for age, _ in found)) if found else 0.0,
                overdue=sum(1 for age, _ in found if limit is not None and age > limit),
                wait_days=definition.wait_days,
                oldest_number=found[0][1] if found else None,
            )
        )
    return result


def waiting_summary(session: Session, states: States, *, now: datetime) -> list[Waiting]:
    """``waiting`` without the median, from indexed aggregates (state, updated_at): what a
    district's overview of many schools reads."""
    result = []
    for state in states.in_flight:
        definition = states.of[state]
        here = Request.state == state
        late = _ts(now - timedelta(days=definition.wait_days)) if definition.wait_days else None
        count, overdue = session.execute(
            select(
                func.count(),
                func.sum(case((Request.updated_at < late, 1), else_=0)) if late else literal(0),
            ).where(here)
        ).one()
        oldest = session.execute(
            select(Request.number, Request.updated_at)
            .where(here, Request.updated_at.is_not(None))
            .order_by(Request.updated_at, Request.number)
            .limit(1)
        ).first()
        result.append(
            Waiting(
                state=state,
                label=definition.label,
                count=int(count or 0),
                oldest_seconds=(now - _moment(str(oldest[1]))).total_seconds() if oldest else 0.0,
                median_seconds=None,
                overdue=int(overdue or 0),
                wait_days=definition.wait_days,
                oldest_number=oldest[0] if oldest else None,
            )
        )
    return result


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def time_in_state(
    session: Session, states: States, *, school_year: str
) -> tuple[list[StateTime], int]:
    """Time finished requests of a plan spent in each state, from their events' signed times.

    A request's stay in a state runs from the event that brought it there to the next one; a
    final state has no next event, so only the states a request passes through are measured.
    Returns the figures in workflow order and the number of finished requests measured.
    """
    finals = states.final
    query = (
        select(AuditEvent.request, AuditEvent.ts, AuditEvent.body)
        .join(Request, Request.number == AuditEvent.request)
        .where(Request.state.in_(finals), Request.school_year == school_year)
        .order_by(AuditEvent.request, AuditEvent.seq)
    )
    stays: dict[str, list[float]] = defaultdict(list)
    requests: set[str] = set()
    previous: tuple[str, str, datetime] | None = None  # request, state entered, when
    for request, ts, body in session.execute(query.execution_options(yield_per=1000)):
        number = str(request)
        to_state = event_view(json.loads(body)).get("to")
        if not isinstance(to_state, str):
            continue  # NOTE: not a step of the request's workflow: it moves no state
        moment = _moment(ts)
        requests.add(number)
        if previous is not None and previous[0] == number:
            stays[previous[1]].append((moment - previous[2]).total_seconds())
        previous = (number, to_state, moment)
    figures = [
        StateTime(
            state=state,
            label=states.of[state].label,
            stays=len(stays[state]),
            median_seconds=float(median(stays[state])),
            mean_seconds=sum(stays[state]) / len(stays[state]),
        )
        for state in states.of
        if stays.get(state)
    ]
    return figures, len(requests)


@dataclass(frozen=True)
class LineRequest:
    """A request on a budget line, as the line's page lists it."""

    number: str
    title: str | None
    state: str
    amount_vnd: int | None
    amount_paid_vnd: int | None
    updated_at: str | None


def line_requests(session: Session, school_year: str, line: str) -> list[LineRequest]:
    """Every request on ``line`` of the plan ``school_year``, newest number first."""
    rows = session.execute(
        select(
            Request.number,
            Request.title,
            Request.state,
            Request.amount_vnd,
            Request.amount_paid_vnd,
            Request.updated_at,
        )
        .where(Request.school_year == school_year, Request.line == line)
        .order_by(Request.number.desc())
    ).all()
    return [LineRequest(*row) for row in rows]


# --- many schools -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchoolSource:
    """One school a district user may read: its code, name, read-only sessions and definitions."""

    code: str
    name: str
    sessions: Callable[[], Session]
    definitions: DefinitionSet
    last_verification: VerificationSource | None = None


def district_report(
    schools: Iterable[SchoolSource], *, now: datetime
) -> list[tuple[SchoolSource, SchoolReport]]:
    """The overview figures of every school (no time per state), each read in its own
    read-only session."""
    reports = []
    for school in schools:
        with school.sessions() as session:
            reports.append(
                (
                    school,
                    school_report(
                        session,
                        school.definitions,
                        now=now,
                        last_verification=school.last_verification,
                        detail=False,
                    ),
                )
            )
    return reports


def find_school(schools: Sequence[SchoolSource], code: str) -> SchoolSource | None:
    """The granted school with this code, or None (not granted or unknown: the same answer)."""
    return next((school for school in schools if school.code == code), None)


DISTRICT_COLUMNS = (("school", "Mã trường"), ("school_name", "Trường"), *ledger.COLUMNS)


def district_ledger_rows(
    schools: Iterable[SchoolSource], selection: ledger.LedgerFilter
) -> Iterator[dict[str, Any]]:
    """The ledger rows of every school, school by school, each row naming its school."""
    for school in schools:
        with school.sessions() as session:
            for row in ledger.rows_from_database(session, selection, school.definitions):
                yield {"school": school.code, "school_name": school.name, **row}
