"""Every definition file loads; every path through the workflow runs; bad files name the key at fault."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from expense_audit.definitions import DefinitionSet, TransitionDef, load_catalogue, load_workflow
from expense_audit.errors import DefinitionError
from expense_audit.guards import GUARDS
from expense_audit.vocabulary import GUARD_NAMES
from workflow.audit import event_view
from workflow.livecheck import verify_live
from workflow.runtime import Runtime, Settings

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
            body = event_view(json.loads(event.body))
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


def _renamed_definitions(tmp_path: Path) -> Path:
    """The shipped definitions with the triggers renamed (the effects stay as data)."""
    target = tmp_path / "renamed"
    (target / "budgets").mkdir(parents=True)
    (target / "budgets" / "2024-2025.toml").write_bytes(CATALOGUE)
    for name in ("expense_approval.toml", "expense_approval_district.toml"):
        text = (Path("definitions") / name).read_text(encoding="utf-8")
        for old, new in (
            ("submit", "gui"),
            ("forward", "trinh"),
            ("approve", "duyet"),
            ("pay", "chi"),
        ):
            text = text.replace(f'trigger = "{old}"', f'trigger = "{new}"')
        (target / name).write_text(text, encoding="utf-8")
    return target


def test_renaming_triggers_keeps_recording_forwarder_approval_and_payment(
    settings: Settings, clock: object, tmp_path: Path
) -> None:
    renamed = replace(settings, definitions_dir=_renamed_definitions(tmp_path))
    runtime = Runtime(renamed, clock=clock)  # type: ignore[arg-type]
    runtime.init_db()
    try:
        school = School.create(runtime)
        number = school.draft()
        for trigger, login in (("gui", "hanh"), ("trinh", "long"), ("duyet", "toan")):
            school.act(number, trigger, login)
        # The approver is still not the reviewer who forwarded it: the forwarder was recorded.
        assert school.request(number).forwarded_by == "long"  # type: ignore[union-attr]
        assert school.request(number).approved_by == "toan"  # type: ignore[union-attr]
        school.act(number, "chi", "mai", data=pay_data())
        paid = school.request(number)
        assert paid is not None and paid.state == "paid" and paid.voucher == "PC-2025-0031"
        with runtime.transaction() as session:
            assert verify_live(session, institution=runtime.institution, now=runtime.now()).valid
    finally:
        runtime.dispose()


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ('effects = ["record_forwarder"]', 'effects = ["record_everything"]'),
        ('tone = "danger"', 'tone = "red"'),
        ('trigger = "approve"\nrole = "approver"', 'trigger = "approve"\nrole = "reviewer"'),
        (
            '[states.draft]\nlabel = { vi = "Nháp", en = "Draft" }\neditable = true',
            '[states.draft]\nlabel = { vi = "Nháp", en = "Draft" }\neditable = "yes"',
        ),
    ],
    ids=["unknown-effect", "unknown-tone", "queue-role-cannot-fire", "editable-not-boolean"],
)
def test_bad_effects_tones_queues_and_flags_name_the_key(change: str, key: str) -> None:
    text = WORKFLOW.decode()
    assert change in text
    with pytest.raises(DefinitionError) as refused:
        load_workflow(text.replace(change, key, 1).encode(), "expense_approval.toml")
    assert refused.value.key.startswith(("transitions[", "queues.", "states."))


@pytest.mark.parametrize(
    ("day", "school_year"),
    [
        (date(2024, 9, 1), "2024-2025"),
        (date(2025, 5, 31), "2024-2025"),
        (date(2025, 8, 31), "2024-2025"),
        (date(2026, 11, 26), "2024-2025"),  # no newer plan yet: the last adopted stays in force
    ],
)
def test_the_plan_in_force_comes_from_the_date(day: date, school_year: str) -> None:
    definitions = DefinitionSet.from_directory(DEFINITIONS)
    assert definitions.catalogue_on(day).school_year == school_year


def test_no_plan_before_the_first_school_year() -> None:
    definitions = DefinitionSet.from_directory(DEFINITIONS)
    with pytest.raises(DefinitionError, match="no budget plan is in force on 2024-08-31"):
        definitions.catalogue_on(date(2024, 8, 31))
