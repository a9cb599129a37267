"""Large amounts take a second workflow (issue 15): above the dated limit of the budget plan's
[[workflow_rules]], a request waits after the principal's approval for the district's finance
officer; the engine chooses at submission and the verifier replays the choice the same way."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from expense_audit.definitions import DefinitionSet, load_catalogue
from expense_audit.errors import (
    ActorNotAllowed,
    DefinitionError,
    RoleNotAllowed,
    TransitionNotAllowed,
)
from expense_audit.verify import Kind
from workflow.audit import event_view
from workflow.demo import create_history
from workflow.livecheck import verify_live
from workflow.models import AuditEvent, Request
from workflow.runtime import Runtime, Settings
from workflow.service import ApprovalService, Current

from .conftest import SteppingClock
from .factories import QUOTE, QUOTE2, School, pay_data

DISTRICT = "expense_approval_district"
# 2,700 student-months of EnetViet at 15,000 ₫: 40,500,000 ₫, above the 30,000,000 ₫ limit.
LARGE = {
    "title": "Sổ liên lạc điện tử EnetViet cả năm, toàn trường",
    "line": "ENETVIET",
    "source": "THU-DL",
    "quantity": 2_700,
    "unit_price_vnd": "15.000",
    "attachments": [QUOTE, QUOTE2],
}
# 25 LMS accounts at 1,200,000 ₫: exactly 30,000,000 ₫, not above the limit.
AT_LIMIT = {
    "title": "Tài khoản LMS cho giáo viên",
    "line": "LMS",
    "source": "NSNN-TX",
    "quantity": 25,
    "unit_price_vnd": "1.200.000",
    "attachments": [QUOTE, QUOTE2],
}


def verify(runtime: Runtime) -> list[tuple[str, str]]:
    with runtime.transaction() as session:
        report = verify_live(session, institution=runtime.institution, now=runtime.now())
    return [(str(p.kind), p.detail) for p in report.problems]


def definition_of(runtime: Runtime, number: str) -> str:
    """The name of the workflow the request's latest event was decided under."""
    with runtime.transaction() as session:
        row = session.get(Request, number)
        assert row is not None
        found = runtime.definitions.by_hash[str(row.definition)]
        return str(getattr(found, "name", ""))


def to_district(school: School, content: dict[str, Any] = LARGE) -> str:
    number = school.draft(**content)
    for trigger, login in (("submit", "hanh"), ("forward", "long"), ("approve", "toan")):
        school.act(number, trigger, login)
    return number


def test_amount_above_the_limit_waits_for_the_district_after_the_principal(
    school: School,
) -> None:
    """40,500,000 ₫: after Toàn approves, Mai cannot pay until Thành approves for the district."""
    number = to_district(school)
    row = school.request(number)
    assert row is not None and row.state == "district_review" and row.approved_by == "toan"
    assert definition_of(school.runtime, number) == DISTRICT
    # The district officer is told; the accountant is not yet.
    told = {m.recipient for m in school.mails() if m.request == number and m.kind == "event"}
    assert "thanh" in told and "mai" not in told
    with pytest.raises(TransitionNotAllowed):
        school.act(number, "pay", "mai", data=pay_data(40_500_000))
    school.act(number, "district_approve", "thanh")
    assert (school.request(number) or Request()).state == "approved"
    school.act(number, "pay", "mai", data=pay_data(40_500_000))
    assert (school.request(number) or Request()).state == "paid"
    assert verify(school.runtime) == []


def test_amount_at_the_limit_follows_the_ordinary_chain(school: School) -> None:
    """30,000,000 ₫ is not above the limit: approved by the principal, no district step."""
    number = to_district(school, AT_LIMIT)
    assert (school.request(number) or Request()).state == "approved"
    assert definition_of(school.runtime, number) == "expense_approval"
    with pytest.raises(TransitionNotAllowed):
        school.act(number, "district_approve", "thanh")
    assert verify(school.runtime) == []


def test_district_officer_is_not_school_staff_and_duties_stay_apart(school: School) -> None:
    """Thành only approves for the district; whoever proposed, forwarded or approved a request
    never gives its district approval, even when an account holds both roles."""
    number = school.draft(**LARGE)
    school.act(number, "submit", "hanh")
    with pytest.raises(RoleNotAllowed):
        school.act(number, "forward", "thanh")
    school.act(number, "forward", "long")
    with pytest.raises(RoleNotAllowed):
        school.act(number, "approve", "thanh")
    school.act(number, "approve", "toan")
    with pytest.raises(RoleNotAllowed):
        school.act(number, "district_approve", "toan")
    with school.runtime.transaction() as session:
        directory = school.runtime.directory(session)
        for login, roles in (
            ("toan", ("approver", "proposer", "district_finance")),
            ("long", ("reviewer", "proposer", "district_finance")),
            ("hanh", ("proposer", "district_finance")),
        ):
            user = directory.get_user(login)
            assert user is not None
            directory.set_roles(user, roles, by="admin")
    for login, rule in (
        ("toan", "actor_not_approver"),
        ("long", "actor_not_forwarder"),
        ("hanh", "actor_not_owner"),
    ):
        with pytest.raises(ActorNotAllowed) as refused:
            school.act(number, "district_approve", login)
        assert refused.value.details["rule"] == rule
    school.act(number, "district_approve", "thanh")
    assert verify(school.runtime) == []


# --- A limit that changes mid-year ---------------------------------------------------------------

# A hypothetical new limit from 01/03/2025: the district approves everything above 5,000,000 ₫.
NEW_LIMIT = """
[[workflow_rules]]
effective = 2025-03-01
above_vnd = 5_000_000
workflow = "expense_approval_district"
"""


@pytest.fixture
def changing_runtime(
    settings: Settings, clock: SteppingClock, tmp_path: Path, school: School
) -> Iterator[Runtime]:
    """The test's database with a plan whose district limit falls to 5,000,000 ₫ on 01/03/2025."""
    folder = tmp_path / "definitions"
    shutil.copytree(settings.definitions_dir, folder)
    catalogue = folder / "budgets" / "2024-2025.toml"
    text = catalogue.read_text(encoding="utf-8")
    head, lines = text.split("[sources.NSNN-TX]", 1)
    catalogue.write_text(head + NEW_LIMIT + "\n[sources.NSNN-TX]" + lines, encoding="utf-8")
    runtime = Runtime(replace(settings, definitions_dir=folder), clock=clock)
    yield runtime
    runtime.dispose()


def test_submitted_the_day_before_a_new_limit_follows_the_old_rule(
    changing_runtime: Runtime, clock: SteppingClock
) -> None:
    """6,000,000 ₫ on 28/02 goes straight to payment after the principal; on 01/03 it waits for
    the district. The verifier replays each submission under its own day's rule."""
    school = School(changing_runtime)
    numbers = {}
    for day in (date(2025, 2, 28), date(2025, 3, 1)):
        clock.now = datetime(day.year, day.month, day.day, 2, 0)
        numbers[day] = to_district(
            school,
            {
                "title": "Phần mềm kiểm định chất lượng (3 năm)",
                "line": "SW-KDCL" if day.month == 2 else "SW-LIB",
                "source": "NSNN-TX",
                "amount": "6.000.000",
                "attachments": [QUOTE],
            },
        )
    before, after = numbers[date(2025, 2, 28)], numbers[date(2025, 3, 1)]
    assert (school.request(before) or Request()).state == "approved"
    assert (school.request(after) or Request()).state == "district_review"
    assert verify(changing_runtime) == []


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        ("[[workflow_rules]]\neffective = 2025-03-01\nabove_vnd = 1\n", "exactly"),
        (
            "[[workflow_rules]]\neffective = '2025-03-01'\nabove_vnd = 1\nworkflow = 'x'\n",
            "date",
        ),
        (
            "[[workflow_rules]]\neffective = 2024-08-01\nabove_vnd = 1\nworkflow = 'x'\n",
            "rise",
        ),
        ("[[workflow_rules]]\neffective = 2025-03-01\nabove_vnd = 1\nworkflow = 'X!'\n", "name"),
    ],
)
def test_malformed_workflow_rules_are_refused_when_loaded(rules: str, problem: str) -> None:
    """A rule without its fields, with a text date, out of order or naming no workflow."""
    base = Path("definitions/budgets/2024-2025.toml").read_text(encoding="utf-8")
    head, lines = base.split("[sources.NSNN-TX]", 1)
    broken = (head + rules + "\n[sources.NSNN-TX]" + lines).encode()
    with pytest.raises(DefinitionError, match=problem):
        load_catalogue(broken, "2024-2025.toml")


def test_a_rule_naming_a_missing_workflow_stops_the_deployment(tmp_path: Path) -> None:
    """Without expense_approval_district.toml the shipped plan names a workflow nobody has."""
    shutil.copytree("definitions", tmp_path / "definitions")
    (tmp_path / "definitions" / "expense_approval_district.toml").unlink()
    with pytest.raises(DefinitionError, match="no workflow named"):
        DefinitionSet.from_directory(tmp_path / "definitions")


# --- The verifier: a server that routes around the rule is caught --------------------------------


def _problems_of_kind(runtime: Runtime, kind: Kind) -> list[str]:
    return [detail for k, detail in verify(runtime) if k == kind.value]


def test_verifier_flags_a_large_request_that_skipped_the_district_step(
    school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that keeps a 40,500,000 ₫ request in the ordinary chain: every step is signed by
    its person, the principal's approval is final, the payment goes out; the verifier names it."""
    monkeypatch.setattr(
        ApprovalService, "chosen_workflow", lambda self, current, content: self.workflow
    )
    number = to_district(school)
    assert (school.request(number) or Request()).state == "approved"
    school.act(number, "pay", "mai", data=pay_data(40_500_000))
    problems = _problems_of_kind(school.runtime, Kind.WRONG_WORKFLOW)
    assert len(problems) == 1 and "expense_approval_district" in problems[0]
    assert "30,000,000" in problems[0]


def test_verifier_flags_a_small_request_routed_through_the_district(
    school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1,800,000 ₫ request sent to the district officer all the same is named too."""
    monkeypatch.setattr(
        ApprovalService,
        "chosen_workflow",
        lambda self, current, content: self.definitions.workflow(DISTRICT),
    )
    number = to_district(school, {})
    school.act(number, "district_approve", "thanh")
    problems = _problems_of_kind(school.runtime, Kind.WRONG_WORKFLOW)
    assert len(problems) == 1 and "sends it to 'expense_approval'" in problems[0]


def test_verifier_flags_a_request_switched_out_of_the_district_workflow(
    school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submitted into the district workflow, then approved under the ordinary one (no district
    step): the approval is named."""
    number = school.draft(**LARGE)
    school.act(number, "submit", "hanh")
    school.act(number, "forward", "long")

    def ordinary(self: ApprovalService, current: Current) -> Any:
        return self.workflow

    monkeypatch.setattr(ApprovalService, "workflow_of", ordinary)
    school.act(number, "approve", "toan")
    assert (school.request(number) or Request()).state == "approved"
    problems = _problems_of_kind(school.runtime, Kind.WRONG_WORKFLOW)
    assert len(problems) == 1 and "submitted into 'expense_approval_district'" in problems[0]


# --- The demo ------------------------------------------------------------------------------------


def test_demo_history_shows_one_large_request_through_the_district(school: School) -> None:
    """The demo's history ends with a large request Thành approved for the district, then paid;
    it still holds as many requests as asked."""
    tally = create_history(school.runtime, 20, seed=7)
    assert sum(tally.values()) == 20
    with school.runtime.transaction() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "district_approve")
        ).all()
        assert [e.actor for e in events] == ["thanh"]
        number = event_view(json.loads(events[0].body))["request"]
        row = session.get(Request, number)
        assert row is not None and row.state == "paid" and (row.amount_vnd or 0) > 30_000_000
    assert verify(school.runtime) == []


def test_returned_request_raised_above_the_limit_is_resubmitted_into_the_district_workflow(
    school: School,
) -> None:
    """Submitted at the limit (ordinary chain), returned, raised to 40,500,000 ₫ and sent again:
    the new submission chooses again, so the principal's approval is not the last word."""
    number = school.draft(**AT_LIMIT)
    school.act(number, "submit", "hanh")
    assert definition_of(school.runtime, number) == "expense_approval"
    school.act(number, "return", "long", comment="Thiếu số lượng")
    raised = {k: v for k, v in LARGE.items() if k != "attachments"}
    with school.runtime.transaction() as session:
        service = school.runtime.service(session)
        service.update_draft(number, school.user("hanh"), **raised)
    for trigger, login in (("submit", "hanh"), ("forward", "long"), ("approve", "toan")):
        school.act(number, trigger, login)
    row = school.request(number)
    assert row is not None and row.state == "district_review"
    assert definition_of(school.runtime, number) == DISTRICT
    with pytest.raises(TransitionNotAllowed):
        school.act(number, "pay", "mai", data=pay_data(40_500_000))
    assert verify(school.runtime) == []
