"""Every definition file loads; every path through the workflow runs; bad files name the key at fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from expense_audit.definitions import DefinitionSet, TransitionDef, load_catalogue, load_workflow
from expense_audit.errors import DefinitionError
from expense_audit.guards import GUARDS
from expense_audit.vocabulary import GUARD_NAMES

from .factories import School, pay_data

DEFINITIONS = Path(__file__).resolve().parent.parent / "definitions"
WORKFLOW = (DEFINITIONS / "expense_approval.toml").read_bytes()
CATALOGUE = (DEFINITIONS / "budgets" / "2024-2025.toml").read_bytes()
ACTOR_FOR_ROLE = {"proposer": "hanh", "reviewer": "long", "approver": "toan", "accountant": "mai"}


def test_every_file_in_definitions_loads() -> None:
    files = sorted(DEFINITIONS.rglob("*.toml"))
    definitions = DefinitionSet.from_directory(DEFINITIONS)
    assert len(definitions.by_hash) == len(files) >= 2
    assert set(GUARDS) == set(GUARD_NAMES)


def _paths(
    transitions: tuple[TransitionDef, ...], state: str, used: frozenset[tuple[str, str]]
) -> list[list[TransitionDef]]:
    """Every path from ``state`` to a final state, each (trigger, source) at most once."""
    outgoing = [t for t in transitions if state in t.sources and (t.trigger, state) not in used]
    if not outgoing:
        return [[]]
    result = []
    for transition in outgoing:
        for rest in _paths(transitions, transition.dest, used | {(transition.trigger, state)}):
            result.append([transition, *rest])
    return result


def test_walk_every_path_through_the_engine(school: School) -> None:
    definition = school.runtime.definitions.workflow()
    paths = _paths(definition.transitions, definition.initial, frozenset())
    assert len(paths) > 10
    for path in paths:
        number = school.draft(
            line="ENETVIET", quantity=10, unit_price_vnd="15.000", source="THU-DL", title="EnetViet"
        )
        state = definition.initial
        for transition in path:
            before = len(school.mails())
            actor = ACTOR_FOR_ROLE[transition.roles[0]]
            kwargs: dict[str, object] = {"comment": "Ý kiến."}
            if transition.trigger == "pay":
                kwargs["data"] = pay_data(amount=150_000)
            event = school.act(number, transition.trigger, actor, **kwargs)
            body = json.loads(event.body)
            assert (body["from"], body["to"], body["action"]) == (
                state,
                transition.dest,
                transition.trigger,
            )
            state = transition.dest
            assert school.request(number).state == state  # type: ignore[union-attr]
            new_mails = school.mails()[before:]
            assert bool(new_mails) == bool(transition.notify)
            assert all(m.recipient != actor for m in new_mails)
        assert definition.states[state].final


BAD_WORKFLOWS = [
    (b'dest = "submitted"', b'dest = "limbo"', "unknown state 'limbo'", "transitions[0]"),
    (
        b"[states.paid]",
        b'[states.orphan]\nlabel = { vi = "M", en = "O" }\nfinal = true\n\n[states.paid]',
        "unreachable",
        "states.orphan",
    ),
    (
        b'guards = ["actor_is_owner"]',
        b'guards = ["is_friend"]',
        "unknown guard 'is_friend'",
        "transitions[1].guards",
    ),
    (
        b'trigger = "withdraw"',
        b'trigger = "submit"',
        "duplicate trigger 'submit'",
        "transitions[1]",
    ),
    (b'roles = ["accountant"]', b'roles = ["janitor"]', "unknown role 'janitor'", "roles"),
    (b'notify = ["approvers"]', b'notify = ["everyone"]', "unknown recipient", "notify"),
    (b'initial = "draft"', b'initial = "start"', "unknown state 'start'", "workflow.initial"),
    (
        b'label = { vi = "Nh\xc3\xa1p", en = "Draft" }',
        b'label = { vi = "Nh\xc3\xa1p" }',
        "Vietnamese (vi) and English (en)",
        "states.draft.label",
    ),
    (b"[workflow]", b"[workflow", "not valid UTF-8 TOML", "-"),
]


@pytest.mark.parametrize(("old", "new", "problem", "key"), BAD_WORKFLOWS)
def test_invalid_workflow_names_file_and_key(
    old: bytes, new: bytes, problem: str, key: str
) -> None:
    assert old in WORKFLOW
    with pytest.raises(DefinitionError) as error:
        load_workflow(WORKFLOW.replace(old, new, 1), "definitions/broken.toml")
    assert error.value.path == "definitions/broken.toml"
    assert key in error.value.key and problem in error.value.problem
    assert str(error.value).startswith("definitions/broken.toml: [")


BAD_CATALOGUES = [
    (
        b', unit = { vi = "bu\xe1\xbb\x95i", en = "session" }',
        b"",
        "needs a unit",
        "lines.TRAINER.norm.unit",
    ),
    (b'kind = "per_time"', b'kind = "per_moon"', "must be one of", "lines.PRINT.norm.kind"),
    (
        b'sources = ["NSNN-TX", "XHH"]',
        b'sources = ["NSNN-TX", "LOTTO"]',
        "unknown funding source 'LOTTO'",
        "lines.SW-LIB.sources",
    ),
    (
        b'allocation_vnd = 6_000_000\nsources = ["NSNN-TX", "THU-DL"]\n\n[lines.PRINT]',
        b'allocation_vnd = -5\nsources = ["NSNN-TX", "THU-DL"]\n\n[lines.PRINT]',
        "non-negative integer",
        "lines.TRAINER.allocation_vnd",
    ),
    (
        b'kind = "per_years", years = 3,',
        b'kind = "per_years",',
        "needs years",
        "lines.SW-KDCL.norm.years",
    ),
    (
        b'school_year = "2024-2025"',
        b'school_year = "2024-2026"',
        "consecutive",
        "catalogue.school_year",
    ),
]


@pytest.mark.parametrize(("old", "new", "problem", "key"), BAD_CATALOGUES)
def test_invalid_catalogue_names_file_and_key(
    old: bytes, new: bytes, problem: str, key: str
) -> None:
    assert old in CATALOGUE
    with pytest.raises(DefinitionError) as error:
        load_catalogue(CATALOGUE.replace(old, new, 1), "definitions/budgets/2024-2025.toml")
    assert key in error.value.key and problem in error.value.problem


def test_empty_definitions_directory_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="no definition files"):
        DefinitionSet.from_directory(tmp_path)
