"""Thresholds as dated data: the quote rule in force on the submission date applies."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest

from expense_audit.definitions import DefinitionSet, load_catalogue
from expense_audit.errors import DefinitionError, GuardRefused
from workflow import journeys
from workflow.livecheck import verify_live
from workflow.runtime import Runtime, Settings

from .conftest import SteppingClock
from .factories import QUOTE, SECRET

# A hypothetical new limit from 01/03/2025: two quotes above 5,000,000 ₫ instead of 10,000,000 ₫.
NEW_RULE = """
[[quote_rules]]
effective = 2025-03-01
above_vnd = 5_000_000
min_quotes = 2
"""


@pytest.fixture
def changing_runtime(
    settings: Settings, clock: SteppingClock, tmp_path: Path, school: object
) -> Iterator[Runtime]:
    """The test's database with a catalogue whose quote limit changes on 01/03/2025."""
    folder = tmp_path / "definitions"
    shutil.copytree(settings.definitions_dir, folder)
    catalogue = folder / "budgets" / "2024-2025.toml"
    text = catalogue.read_text(encoding="utf-8")
    head, lines = text.split("[sources.NSNN-TX]", 1)
    catalogue.write_text(head + NEW_RULE + "\n[sources.NSNN-TX]" + lines, encoding="utf-8")
    runtime = Runtime(replace(settings, definitions_dir=folder), clock=clock)
    yield runtime
    runtime.dispose()


def _submit_on(runtime: Runtime, clock: SteppingClock, day: date) -> str:
    """A 6,000,000 ₫ request with one quote, submitted at 09:00 local time on ``day``."""
    clock.now = datetime(day.year, day.month, day.day, 2, 0)
    number = journeys.propose(
        runtime,
        "hanh",
        title="Phần mềm kiểm định chất lượng",
        line="SW-KDCL",
        source="NSNN-TX",
        budget_year=2025,
        amount="6.000.000",
        attachments=[QUOTE],
    )
    journeys.take_step(runtime, number, "submit", "hanh", SECRET)
    return number


def test_submitted_the_day_before_a_new_limit_follows_the_old_rule(
    changing_runtime: Runtime, clock: SteppingClock
) -> None:
    """28/02 one quote is enough for 6,000,000 ₫; on 01/03 the same request needs two."""
    before = _submit_on(changing_runtime, clock, date(2025, 2, 28))
    with pytest.raises(GuardRefused, match="5.000.000") as refused:
        _submit_on(changing_runtime, clock, date(2025, 3, 1))
    assert refused.value.rule == "quotes_attached"
    assert refused.value.effective == "2025-03-01"
    # The verifier replays the rule of each submission date: the 28/02 request stays valid.
    with changing_runtime.transaction() as session:
        report = verify_live(
            session, institution=changing_runtime.institution, now=changing_runtime.now()
        )
    assert report.problems == [] and report.requests[before]["state"] == "submitted"


def test_submission_at_local_midnight_uses_the_local_date(
    changing_runtime: Runtime, clock: SteppingClock
) -> None:
    """00:30 on 01/03 in Vietnam is still 28/02 in UTC: the new rule already applies."""
    clock.now = datetime(2025, 2, 28, 17, 30)
    number = journeys.propose(
        changing_runtime,
        "hanh",
        title="Phần mềm kiểm định chất lượng",
        line="SW-KDCL",
        source="NSNN-TX",
        budget_year=2025,
        amount="6.000.000",
        attachments=[QUOTE],
    )
    with pytest.raises(GuardRefused, match="báo giá"):
        journeys.take_step(changing_runtime, number, "submit", "hanh", SECRET)


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        ("[[quote_rules]]\neffective = 2025-03-01\nabove_vnd = 1\n", "exactly"),
        ("[[quote_rules]]\neffective = '2025-03-01'\nabove_vnd = 1\nmin_quotes = 2\n", "date"),
        (
            "[[quote_rules]]\neffective = 2025-03-01\nabove_vnd = 1\nmin_quotes = 2\n"
            "[[quote_rules]]\neffective = 2025-02-01\nabove_vnd = 1\nmin_quotes = 3\n",
            "rise",
        ),
        ("[[quote_rules]]\neffective = 2025-03-01\nabove_vnd = -5\nmin_quotes = 2\n", "positive"),
    ],
)
def test_malformed_quote_rules_are_refused_when_loaded(rules: str, problem: str) -> None:
    """A dated rule without its fields, with a text date or out of order is a definition error."""
    base = Path("definitions/budgets/2024-2025.toml").read_text(encoding="utf-8")
    head, lines = base.split("[sources.NSNN-TX]", 1)
    broken = (head + rules + "\n[sources.NSNN-TX]" + lines).encode()
    with pytest.raises(DefinitionError, match=problem):
        load_catalogue(broken, "2024-2025.toml")


def test_shipped_catalogue_keeps_its_quote_rule() -> None:
    """The shipped plan: two quotes above 10,000,000 ₫ from the start of the school year."""
    catalogue = DefinitionSet.from_directory("definitions").catalogue("2024-2025")
    rule = catalogue.quote_rule_on(date(2025, 5, 1))
    assert (rule.above_vnd, rule.min_quotes) == (10_000_000, 2)
