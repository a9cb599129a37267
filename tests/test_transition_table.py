"""The verifier's compiled transition table answers every step exactly as the engine's machine.

The verifier replays logs through expense_audit.table (a dict and the guard functions); the
engine fires the `transitions` machine. If the two ever disagreed, a step the engine refused could
pass the audit, or a lawful log could fail it. Random walks through every definition, with
random actors, contents, budgets and payments, must give the same new state or the same refusal
(same class, same Vietnamese and English text, same details) at every step.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expense_audit.budget import BudgetBook
from expense_audit.definitions import DefinitionSet, WorkflowDefinition
from expense_audit.errors import WorkflowError
from expense_audit.guards import GuardContext
from expense_audit.machine import WorkflowMachine
from expense_audit.table import TransitionTable

DEFINITIONS = DefinitionSet.from_directory(Path(__file__).resolve().parent.parent / "definitions")
WORKFLOWS = sorted(DEFINITIONS.workflows.values(), key=lambda w: w.sha256)
CATALOGUES = sorted(DEFINITIONS.catalogues.values(), key=lambda c: c.sha256)
PEOPLE = ["hanh", "nga", "long", "toan", "mai"]
LINES = sorted({code for c in CATALOGUES for code in c.lines}) + ["NO-SUCH-LINE"]
SOURCES = ["NSNN-TX", "NSNN-DTPT", "THU-DL", "XHH", "KHAC", "NOPE"]
AMOUNTS = [0, 1, 15_000, 999_999, 1_000_000, 1_000_001, 10_000_000, 10_000_001, 2**40]


def _outcome(fire: Any, state: str, trigger: str, ctx: GuardContext) -> tuple[Any, ...]:
    """The new state, or the refusal as everything a caller can see of it."""
    try:
        return ("state", fire(state, trigger, ctx))
    except WorkflowError as exc:
        return ("refused", type(exc), exc.message, getattr(exc, "message_en", None), exc.details)
    except (TypeError, ValueError, KeyError, ArithmeticError) as exc:
        return ("error", type(exc), str(exc))


@st.composite
def contexts(draw: st.DrawFn) -> GuardContext:
    """A guard context with owners, forwarders, lines, amounts, spent budgets and payments."""
    book = BudgetBook()
    catalogue = draw(st.sampled_from([None, *CATALOGUES]))
    line = draw(st.sampled_from(LINES))
    budget_year = draw(st.sampled_from([2024, 2025]))
    if catalogue is not None and draw(st.booleans()):
        spent = draw(st.sampled_from(AMOUNTS))
        book.add_total(catalogue.school_year, line, budget_year, spent)
    amount = draw(st.sampled_from(AMOUNTS))
    content = {
        "line": line,
        "source": draw(st.sampled_from(SOURCES)),
        "amount_vnd": amount,
        "quantity": draw(st.sampled_from([0, 1, 2, 5, 50])),
        "unit_price_vnd": draw(st.sampled_from(AMOUNTS)),
        "budget_year": budget_year,
        "attachments": [{"name": f"q{i}.pdf"} for i in range(draw(st.integers(0, 3)))],
    }
    payment = draw(
        st.sampled_from(
            [
                {},
                {"voucher": "PC-1", "paid_on": "2024-10-02", "amount_paid_vnd": amount},
                {"voucher": "PC-1", "paid_on": "2024-10-02", "amount_paid_vnd": amount + 1},
                {"voucher": "bad voucher!", "paid_on": "2024-10-02", "amount_paid_vnd": 1},
                {"voucher": "PC-2", "paid_on": "1900-01-01", "amount_paid_vnd": 1},
            ]
        )
    )
    actor, owner = draw(st.sampled_from(PEOPLE)), draw(st.sampled_from(PEOPLE))
    return GuardContext(
        actor=actor,
        owner=owner,
        forwarded_by=draw(st.sampled_from([None, *PEOPLE])),
        content=content,
        catalogue=catalogue,
        book=book,
        data=payment,
        today=date(2024, 10, 2),
        local_day=draw(st.sampled_from([date(2024, 8, 1), date(2024, 10, 2)])),
        requested_on=draw(st.sampled_from([None, date(2024, 8, 1), date(2024, 9, 30)])),
    )


def _triggers(workflow: WorkflowDefinition) -> list[str]:
    return sorted({t.trigger for t in workflow.transitions}) + ["no_such_trigger"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.sha256[:12])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_replayed_step_is_judged_as_the_engine_judges_it(
    workflow: WorkflowDefinition, data: st.DataObject
) -> None:
    machine, table = WorkflowMachine(workflow), TransitionTable(workflow)
    state = workflow.initial
    for _ in range(data.draw(st.integers(1, 12))):
        trigger = data.draw(st.sampled_from(_triggers(workflow)))
        # NOTE: mostly triggers that exist from here, so walks go deep into the workflow.
        if data.draw(st.booleans()):
            possible = [t.trigger for t in workflow.triggers_from(state)]
            trigger = data.draw(st.sampled_from(possible)) if possible else trigger
        ctx = data.draw(contexts())
        expected = _outcome(machine.fire, state, trigger, ctx)
        assert _outcome(table.fire, state, trigger, ctx) == expected
        assert table.find(state, trigger) == workflow.find(state, trigger)
        if expected[0] == "state":
            state = expected[1]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.sha256[:12])
def test_the_table_has_every_step_of_the_definition_and_no_other(
    workflow: WorkflowDefinition,
) -> None:
    table = TransitionTable(workflow)
    for state in workflow.states:
        for trigger in _triggers(workflow):
            assert table.find(state, trigger) == workflow.find(state, trigger)
