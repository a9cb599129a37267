"""Load and validate definitions (workflows and budget catalogues) from TOML data."""

from __future__ import annotations

import re
import tomllib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from .canonical import sha256_hex
from .errors import DefinitionError
from .mandates import DELEGABLE_ROLES
from .vocabulary import EFFECTS, GUARD_NAMES, LANGUAGES, NORM_KINDS, RECIPIENTS, ROLES, TONES

Labels = Mapping[str, str]
SCHOOL_YEAR_START_MONTH = 9  # a school year (năm học) runs September to May
# The workflow a request follows unless a catalogue's [[workflow_rules]] sends it elsewhere.
DEFAULT_WORKFLOW = "expense_approval"


@dataclass(frozen=True)
class StateDef:
    name: str
    label: Labels
    final: bool = False
    wait_days: int | None = None
    remind: tuple[str, ...] = ()
    editable: bool = False  # the proposer may still change the content here
    # after this many reminders in the state, `escalate` (the next role up) is told, once
    escalate_after: int | None = None
    escalate: tuple[str, ...] = ()


@dataclass(frozen=True)
class TransitionDef:
    trigger: str
    sources: tuple[str, ...]
    dest: str
    roles: tuple[str, ...]
    guards: tuple[str, ...]
    label: Labels
    comment_required: bool = False
    binds_content: bool = False
    checks_content: bool = False
    notify: tuple[str, ...] = ()
    effects: tuple[str, ...] = ()
    tone: str = "plain"
    mail: Labels | None = None
    # separation of duties under a mandate: whoever acts today for one of these roles (a live
    # KT./TUQ. mandate) does not take this step; another holder of `roles` does, or it waits
    not_while_acting_for: tuple[str, ...] = ()

    def has(self, effect: str) -> bool:
        """Whether this step records ``effect`` (one of vocabulary.EFFECTS)."""
        return effect in self.effects


@dataclass(frozen=True)
class QueueDef:
    """Requests waiting in ``state`` for ``role``, checked against ``trigger``."""

    name: str
    state: str
    trigger: str
    role: str


@dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    version: int
    initial: str
    title: Labels
    states: Mapping[str, StateDef]
    transitions: tuple[TransitionDef, ...]
    path: str
    sha256: str
    queues: Mapping[str, QueueDef] = field(default_factory=dict)
    # [mandates] receivers: a mandate goes only to someone holding one of these roles (and never
    # to an admin or an auditor); empty: any role that takes steps in this workflow
    mandate_receivers: tuple[str, ...] = ()

    def find(self, state: str, trigger: str) -> TransitionDef | None:
        """Return the transition fired by ``trigger`` from ``state``, if any."""
        for transition in self.transitions:
            if transition.trigger == trigger and state in transition.sources:
                return transition
        return None

    def triggers_from(self, state: str) -> list[TransitionDef]:
        """Transitions leaving ``state``, in definition order."""
        return [t for t in self.transitions if state in t.sources]

    def label_of(self, trigger: str) -> Labels:
        """The label of a trigger (the same from every state), or the trigger itself."""
        for transition in self.transitions:
            if transition.trigger == trigger:
                return transition.label
        return {lang: trigger for lang in LANGUAGES}

    def roles_for(self, trigger: str) -> frozenset[str]:
        """Every role that may fire ``trigger`` from some state."""
        return frozenset(r for t in self.transitions if t.trigger == trigger for r in t.roles)

    @property
    def signing_roles(self) -> frozenset[str]:
        """Roles that take signed steps in this workflow (and so need a signing key)."""
        return frozenset(r for t in self.transitions for r in t.roles)

    def is_editable(self, state: str) -> bool:
        """Whether the proposer may still change a request's content in ``state``."""
        return state in self.states and self.states[state].editable

    def queue(self, name: str) -> QueueDef:
        """A queue by name (review, approvals, payments)."""
        try:
            return self.queues[name]
        except KeyError:
            raise DefinitionError(self.path, f"queues.{name}", "no such queue") from None


@dataclass(frozen=True)
class Norm:
    kind: str
    amount_vnd: int
    years: int = 1
    unit: Labels | None = None
    max_quantity: int | None = None


@dataclass(frozen=True)
class Mlns:
    """State budget classification (mục lục ngân sách) of a line: chương, loại–khoản, mục–tiểu mục."""

    chuong: str  # e.g. 622
    loai: str  # e.g. 070
    khoan: str  # e.g. 072
    muc: str  # e.g. 6650
    tieu_muc: str  # e.g. 6652


@dataclass(frozen=True)
class BudgetLine:
    code: str
    name: Labels
    norm: Norm
    allocation_vnd: int
    sources: tuple[str, ...]
    mlns: Mlns | None = None
    payee_required: bool = False


@dataclass(frozen=True)
class QuoteRule:
    """From ``effective`` on, a request above ``above_vnd`` carries ``min_quotes`` quotes."""

    effective: date
    above_vnd: int
    min_quotes: int


@dataclass(frozen=True)
class WorkflowRule:
    """From ``effective`` on, a request above ``above_vnd`` follows the workflow ``workflow``."""

    effective: date
    above_vnd: int
    workflow: str


@dataclass(frozen=True)
class BudgetCatalogue:
    school_year: str
    budget_years: tuple[int, ...]
    school: Labels
    quotes_above_vnd: int
    min_quotes: int
    sources: Mapping[str, Labels]
    lines: Mapping[str, BudgetLine]
    path: str
    sha256: str
    # dated quote rules, oldest first; without [[quote_rules]] the catalogue's own pair applies
    quote_rules: tuple[QuoteRule, ...] = ()
    unit_code: str | None = None  # mã ĐVQHNS: the school's budget-unit code (7 digits)
    # dated workflow rules, oldest first; without [[workflow_rules]] every request takes the
    # default workflow
    workflow_rules: tuple[WorkflowRule, ...] = ()

    def workflow_rule_on(self, day: date | None) -> WorkflowRule | None:
        """The workflow rule in force on ``day`` (the submission's local date), if any."""
        in_force = [r for r in self.workflow_rules if day is None or r.effective <= day]
        return in_force[-1] if in_force else None

    def workflow_for(self, day: date | None, amount_vnd: int) -> str:
        """The workflow a request of ``amount_vnd`` submitted on ``day`` follows."""
        rule = self.workflow_rule_on(day)
        if rule is not None and amount_vnd > rule.above_vnd:
            return rule.workflow
        return DEFAULT_WORKFLOW

    def quote_rule_on(self, day: date | None) -> QuoteRule:
        """The quote rule in force on ``day`` (the request's submission date, local time)."""
        in_force = [r for r in self.quote_rules if day is None or r.effective <= day]
        if in_force:
            return in_force[-1]
        return QuoteRule(date.min, self.quotes_above_vnd, self.min_quotes)

    def default_budget_year(self, day: date) -> int:
        """The budget year a new request is for: the calendar year if the plan covers it."""
        return day.year if day.year in self.budget_years else self.budget_years[-1]


@dataclass
class DefinitionSet:
    """Every definition file of a deployment (or of a bundle), addressable by content hash."""

    workflows: dict[str, WorkflowDefinition] = field(default_factory=dict)
    catalogues: dict[str, BudgetCatalogue] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # sha256 -> exact bytes
    paths: dict[str, str] = field(default_factory=dict)  # sha256 -> relative path
    by_hash: dict[str, WorkflowDefinition | BudgetCatalogue] = field(default_factory=dict)

    @classmethod
    def from_directory(cls, root: str | Path) -> DefinitionSet:
        """Load every *.toml under ``root``: top level = workflows, budgets/ = catalogues."""
        base = Path(root)
        files = {
            p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*.toml"))
        }
        if not files:
            raise DefinitionError(str(base), "-", "no definition files found")
        loaded = cls.from_files(files, label=str(base))
        loaded.check_workflow_rules()
        return loaded

    def check_workflow_rules(self) -> None:
        """Every workflow a catalogue's rules name is loaded (a deployment's own definitions;
        a bundle holds only the files its events name)."""
        for catalogue in self.catalogues.values():
            for index, rule in enumerate(catalogue.workflow_rules):
                if rule.workflow not in self.workflows:
                    raise DefinitionError(
                        catalogue.path,
                        f"workflow_rules[{index}].workflow",
                        f"no workflow named {rule.workflow!r}",
                    )

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], *, label: str = "") -> DefinitionSet:
        """Load definitions from a mapping of relative path to bytes (used by the verifier)."""
        result = cls()
        for rel, data in files.items():
            display = f"{label}/{rel}" if label else rel
            name = rel.rsplit("/", 1)[-1]
            if "budgets/" in rel or rel.startswith("budgets"):
                result._add(load_catalogue(data, display, rel_name=name), rel, data)
            else:
                result._add(load_workflow(data, display), rel, data)
        return result

    def _add(self, item: WorkflowDefinition | BudgetCatalogue, rel: str, data: bytes) -> None:
        self.files[item.sha256] = data
        self.paths[item.sha256] = rel
        self.by_hash[item.sha256] = item
        if isinstance(item, WorkflowDefinition):
            self.workflows[item.name] = item
        else:
            self.catalogues[item.school_year] = item

    def workflow(self, name: str = DEFAULT_WORKFLOW) -> WorkflowDefinition:
        """The workflow in force with this name."""
        try:
            return self.workflows[name]
        except KeyError:
            raise DefinitionError("definitions/", name, "no such workflow") from None

    def catalogue_on(self, day: date) -> BudgetCatalogue:
        """The budget plan in force on ``day``.

        A school year runs from September to August. The plan of the school year that contains
        ``day`` is in force; when none was loaded yet, the latest plan that has begun stays in
        force until the next one is adopted. Before the first plan there is none.
        """
        year = day.year if day.month >= SCHOOL_YEAR_START_MONTH else day.year - 1
        wanted = f"{year}-{year + 1}"
        if wanted in self.catalogues:
            return self.catalogues[wanted]
        begun = [sy for sy in self.catalogues if sy <= wanted]
        if not begun:
            raise DefinitionError(
                "definitions/budgets/", wanted, f"no budget plan is in force on {day.isoformat()}"
            )
        return self.catalogues[max(begun)]

    def catalogue(self, school_year: str) -> BudgetCatalogue:
        """The budget catalogue of a school year."""
        try:
            return self.catalogues[school_year]
        except KeyError:
            raise DefinitionError(
                "definitions/budgets/", school_year, "no such catalogue"
            ) from None


# --- parsing helpers -------------------------------------------------------------------------


def _parse_toml(data: bytes, path: str) -> dict[str, Any]:
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DefinitionError(path, "-", f"not valid UTF-8 TOML: {exc}") from None


def _table(doc: Mapping[str, Any], key: str, path: str, where: str = "") -> dict[str, Any]:
    value = doc.get(key)
    if not isinstance(value, dict):
        raise DefinitionError(path, f"{where}{key}", "missing table")
    return value


def _labels(value: Any, path: str, key: str) -> Labels:
    if not isinstance(value, dict) or any(
        not isinstance(value.get(lang), str) or not value[lang].strip() for lang in LANGUAGES
    ):
        raise DefinitionError(path, key, "needs a name in Vietnamese (vi) and English (en)")
    return {lang: value[lang] for lang in LANGUAGES}


def _positive_int(value: Any, path: str, key: str, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise DefinitionError(
            path,
            key,
            f"must be a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}",
        )
    return value


def _names(value: Any, path: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DefinitionError(path, key, "must be a list of names")
    return tuple(value)


# --- workflows -------------------------------------------------------------------------------


def load_workflow(data: bytes, path: str) -> WorkflowDefinition:
    """Parse and validate one workflow definition file."""
    doc = _parse_toml(data, path)
    head = _table(doc, "workflow", path)
    name = head.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise DefinitionError(path, "workflow.name", "must be a lower-case identifier")
    version = _positive_int(head.get("version"), path, "workflow.version")
    states = _load_states(_table(doc, "states", path), path)
    initial = head.get("initial")
    if initial not in states:
        raise DefinitionError(path, "workflow.initial", f"unknown state {initial!r}")
    raw_transitions = doc.get("transitions")
    if not isinstance(raw_transitions, list) or not raw_transitions:
        raise DefinitionError(path, "transitions", "at least one transition is needed")
    transitions = tuple(
        _load_transition(raw, path, f"transitions[{i}]", states)
        for i, raw in enumerate(raw_transitions)
    )
    definition = WorkflowDefinition(
        name=name,
        version=version,
        initial=str(initial),
        title=_labels(head.get("title"), path, "workflow.title"),
        states=states,
        transitions=transitions,
        path=path,
        sha256=sha256_hex(data),
        queues=_load_queues(doc.get("queues", {}), path, states, transitions),
        mandate_receivers=_load_receivers(doc.get("mandates", {}), path),
    )
    _check_graph(definition)
    return definition


def _load_receivers(table: Any, path: str) -> tuple[str, ...]:
    """[mandates] receivers = [roles]: who may receive a mandate (never an admin or auditor)."""
    if not isinstance(table, dict) or set(table) - {"receivers"}:
        raise DefinitionError(path, "mandates", "a table with only `receivers`")
    receivers = _known(table, "receivers", ROLES, "role", path, "mandates")
    for role in receivers:
        if role in ("admin", "auditor"):
            raise DefinitionError(path, "mandates.receivers", f"{role!r} never receives a mandate")
    return receivers


def _load_states(table: dict[str, Any], path: str) -> dict[str, StateDef]:
    states: dict[str, StateDef] = {}
    for name, raw in table.items():
        key = f"states.{name}"
        if not isinstance(raw, dict):
            raise DefinitionError(path, key, "must be a table")
        unknown = set(raw) - {
            "label",
            "final",
            "wait_days",
            "remind",
            "editable",
            "escalate_after",
            "escalate",
        }
        if unknown:
            raise DefinitionError(path, key, f"unknown keys {sorted(unknown)}")
        wait = raw.get("wait_days")
        remind = _names(raw.get("remind", []), path, f"{key}.remind")
        for recipient in remind:
            if recipient not in RECIPIENTS:
                raise DefinitionError(path, f"{key}.remind", f"unknown recipient {recipient!r}")
        if remind and wait is None:
            raise DefinitionError(path, f"{key}.remind", "reminders need wait_days")
        escalate = _names(raw.get("escalate", []), path, f"{key}.escalate")
        for recipient in escalate:
            if recipient not in RECIPIENTS:
                raise DefinitionError(path, f"{key}.escalate", f"unknown recipient {recipient!r}")
        after = raw.get("escalate_after")
        if bool(escalate) != (after is not None) or (escalate and not remind):
            raise DefinitionError(
                path, f"{key}.escalate", "escalate and escalate_after go together, after remind"
            )
        states[name] = StateDef(
            name=name,
            label=_labels(raw.get("label"), path, f"{key}.label"),
            final=_flag(raw, "final", path, key),
            wait_days=None if wait is None else _positive_int(wait, path, f"{key}.wait_days"),
            remind=remind,
            editable=_flag(raw, "editable", path, key),
            escalate_after=None
            if after is None
            else _positive_int(after, path, f"{key}.escalate_after"),
            escalate=escalate,
        )
    if not states:
        raise DefinitionError(path, "states", "no states defined")
    return states


_TRANSITION_KEYS = {
    "trigger",
    "source",
    "dest",
    "roles",
    "guards",
    "label",
    "comment_required",
    "binds_content",
    "checks_content",
    "notify",
    "effects",
    "tone",
    "mail",
    "not_while_acting_for",
}


def _load_transition(
    raw: Any, path: str, key: str, states: Mapping[str, StateDef]
) -> TransitionDef:
    if not isinstance(raw, dict):
        raise DefinitionError(path, key, "must be a table")
    unknown = set(raw) - _TRANSITION_KEYS
    if unknown:
        raise DefinitionError(path, key, f"unknown keys {sorted(unknown)}")
    trigger = raw.get("trigger")
    if not isinstance(trigger, str) or not re.fullmatch(r"[a-z][a-z_]*", trigger):
        raise DefinitionError(path, f"{key}.trigger", "must be a lower-case verb")
    sources = _names(raw.get("source"), path, f"{key}.source")
    for state in (*sources, raw.get("dest")):
        if state not in states:
            raise DefinitionError(path, f"{key} ({trigger})", f"unknown state {state!r}")
    roles = _known(raw, "roles", ROLES, "role", path, key, required=True)
    if not roles:
        raise DefinitionError(path, f"{key}.roles", "at least one role is needed")
    guards = _known(raw, "guards", GUARD_NAMES, "guard", path, key)
    notify = _known(raw, "notify", RECIPIENTS, "recipient", path, key)
    effects = _known(raw, "effects", EFFECTS, "effect", path, key)
    acting = _names(raw.get("not_while_acting_for", []), path, f"{key}.not_while_acting_for")
    for role in acting:
        if role not in DELEGABLE_ROLES or role in roles:
            raise DefinitionError(
                path,
                f"{key}.not_while_acting_for",
                f"{role!r} is not a role that can be delegated, or is the step's own role",
            )
    tone = raw.get("tone", "plain")
    if tone not in TONES:
        raise DefinitionError(path, f"{key}.tone", f"must be one of {list(TONES)}")
    return TransitionDef(
        trigger=trigger,
        sources=sources,
        dest=str(raw["dest"]),
        roles=roles,
        guards=guards,
        label=_labels(raw.get("label"), path, f"{key}.label"),
        comment_required=_flag(raw, "comment_required", path, key),
        binds_content=_flag(raw, "binds_content", path, key),
        checks_content=_flag(raw, "checks_content", path, key),
        notify=notify,
        effects=effects,
        tone=str(tone),
        mail=None if raw.get("mail") is None else _labels(raw["mail"], path, f"{key}.mail"),
        not_while_acting_for=acting,
    )


def _known(
    raw: Mapping[str, Any],
    name: str,
    vocabulary: tuple[str, ...],
    what: str,
    path: str,
    key: str,
    *,
    required: bool = False,
) -> tuple[str, ...]:
    """A list of names under ``name`` (empty if absent and not ``required``), each one of the
    closed ``vocabulary``."""
    names = _names(raw.get(name) if required else raw.get(name, []), path, f"{key}.{name}")
    for item in names:
        if item not in vocabulary:
            raise DefinitionError(path, f"{key}.{name}", f"unknown {what} {item!r}")
    return names


def _flag(raw: Mapping[str, Any], name: str, path: str, key: str) -> bool:
    value = raw.get(name, False)
    if not isinstance(value, bool):
        raise DefinitionError(path, f"{key}.{name}", f"must be true or false, got {value!r}")
    return value


def _load_queues(
    table: Any,
    path: str,
    states: Mapping[str, StateDef],
    transitions: tuple[TransitionDef, ...],
) -> dict[str, QueueDef]:
    if not isinstance(table, dict):
        raise DefinitionError(path, "queues", "must be a table of queues")
    queues: dict[str, QueueDef] = {}
    for name, raw in table.items():
        key = f"queues.{name}"
        if not isinstance(raw, dict) or set(raw) != {"state", "trigger", "role"}:
            raise DefinitionError(path, key, "needs exactly state, trigger and role")
        state, trigger, role = raw["state"], raw["trigger"], raw["role"]
        if state not in states:
            raise DefinitionError(path, f"{key}.state", f"unknown state {state!r}")
        moving = [t for t in transitions if t.trigger == trigger and state in t.sources]
        if not moving:
            raise DefinitionError(path, f"{key}.trigger", f"{trigger!r} does not leave {state!r}")
        if role not in moving[0].roles:
            raise DefinitionError(path, f"{key}.role", f"{role!r} cannot fire {trigger!r}")
        queues[name] = QueueDef(name=name, state=state, trigger=trigger, role=role)
    return queues


def _check_graph(definition: WorkflowDefinition) -> None:
    path = definition.path
    seen: set[tuple[str, str]] = set()
    for i, t in enumerate(definition.transitions):
        for source in t.sources:
            if (t.trigger, source) in seen:
                raise DefinitionError(
                    path, f"transitions[{i}]", f"duplicate trigger {t.trigger!r} from {source!r}"
                )
            seen.add((t.trigger, source))
            if definition.states[source].final:
                raise DefinitionError(
                    path, f"transitions[{i}]", f"final state {source!r} cannot have a way out"
                )
    reachable = {definition.initial}
    queue = deque([definition.initial])
    while queue:
        current = queue.popleft()
        for t in definition.triggers_from(current):
            if t.dest not in reachable:
                reachable.add(t.dest)
                queue.append(t.dest)
    for name, state in definition.states.items():
        if name not in reachable:
            raise DefinitionError(path, f"states.{name}", "unreachable from the initial state")
        if not state.final and not definition.triggers_from(name):
            raise DefinitionError(path, f"states.{name}", "not final but has no way out")


# --- budget catalogues ---------------------------------------------------------------------


def load_catalogue(data: bytes, path: str, *, rel_name: str = "") -> BudgetCatalogue:
    """Parse and validate one budget catalogue (budget lines, norms, allocations, sources)."""
    doc = _parse_toml(data, path)
    head = _table(doc, "catalogue", path)
    school_year = head.get("school_year")
    if not isinstance(school_year, str) or not re.fullmatch(r"\d{4}-\d{4}", school_year):
        raise DefinitionError(path, "catalogue.school_year", "must look like 2024-2025")
    first, second = (int(y) for y in school_year.split("-"))
    if second != first + 1:
        raise DefinitionError(path, "catalogue.school_year", "years must be consecutive")
    if rel_name and rel_name != f"{school_year}.toml":
        raise DefinitionError(
            path, "catalogue.school_year", f"file must be named {school_year}.toml"
        )
    budget_years = head.get("budget_years", [first, second])
    if not isinstance(budget_years, list) or not budget_years:
        raise DefinitionError(path, "catalogue.budget_years", "must list the budget years")
    years = tuple(_positive_int(y, path, "catalogue.budget_years") for y in budget_years)
    sources_table = _table(doc, "sources", path)
    sources = {
        code: _labels(
            raw.get("name") if isinstance(raw, dict) else None, path, f"sources.{code}.name"
        )
        for code, raw in sources_table.items()
    }
    lines_table = _table(doc, "lines", path)
    payee_required = head.get("payee_required", False)
    if not isinstance(payee_required, bool):
        raise DefinitionError(path, "catalogue.payee_required", "must be true or false")
    lines = {
        code: _load_line(code, raw, path, sources, payee_required=payee_required)
        for code, raw in lines_table.items()
    }
    unit_code = head.get("unit_code")
    if unit_code is not None and (
        not isinstance(unit_code, str) or not re.fullmatch(r"[0-9]{7}", unit_code)
    ):
        raise DefinitionError(
            path, "catalogue.unit_code", "the budget-unit code (mã ĐVQHNS) is 7 digits"
        )
    if not lines:
        raise DefinitionError(path, "lines", "no budget lines defined")
    return BudgetCatalogue(
        quote_rules=_load_quote_rules(doc.get("quote_rules", []), path),
        workflow_rules=_load_workflow_rules(doc.get("workflow_rules", []), path),
        school_year=school_year,
        budget_years=years,
        school=_labels(head.get("school"), path, "catalogue.school"),
        quotes_above_vnd=_positive_int(
            head.get("quotes_above_vnd"), path, "catalogue.quotes_above_vnd"
        ),
        min_quotes=_positive_int(head.get("min_quotes"), path, "catalogue.min_quotes"),
        sources=sources,
        lines=lines,
        path=path,
        sha256=sha256_hex(data),
        unit_code=unit_code,
    )


def _load_quote_rules(raw: Any, path: str) -> tuple[QuoteRule, ...]:
    """[[quote_rules]]: effective (a TOML date), above_vnd, min_quotes; dates strictly rising."""
    if not isinstance(raw, list):
        raise DefinitionError(path, "quote_rules", "must be an array of tables [[quote_rules]]")
    rules: list[QuoteRule] = []
    for index, item in enumerate(raw):
        key = f"quote_rules[{index}]"
        if not isinstance(item, dict) or set(item) != {"effective", "above_vnd", "min_quotes"}:
            raise DefinitionError(path, key, "needs exactly effective, above_vnd and min_quotes")
        effective = item["effective"]
        # NOTE: tomllib reads 2025-07-01 as a date; a datetime is also a date, so refuse it.
        if not isinstance(effective, date) or isinstance(effective, datetime):
            raise DefinitionError(path, f"{key}.effective", "must be a date like 2025-07-01")
        if rules and effective <= rules[-1].effective:
            raise DefinitionError(path, f"{key}.effective", "dates must rise from rule to rule")
        rules.append(
            QuoteRule(
                effective=effective,
                above_vnd=_positive_int(item["above_vnd"], path, f"{key}.above_vnd"),
                min_quotes=_positive_int(item["min_quotes"], path, f"{key}.min_quotes"),
            )
        )
    return tuple(rules)


def _load_workflow_rules(raw: Any, path: str) -> tuple[WorkflowRule, ...]:
    """[[workflow_rules]]: effective (a TOML date), above_vnd, workflow; dates strictly rising."""
    if not isinstance(raw, list):
        raise DefinitionError(
            path, "workflow_rules", "must be an array of tables [[workflow_rules]]"
        )
    rules: list[WorkflowRule] = []
    for index, item in enumerate(raw):
        key = f"workflow_rules[{index}]"
        if not isinstance(item, dict) or set(item) != {"effective", "above_vnd", "workflow"}:
            raise DefinitionError(path, key, "needs exactly effective, above_vnd and workflow")
        effective = item["effective"]
        if not isinstance(effective, date) or isinstance(effective, datetime):
            raise DefinitionError(path, f"{key}.effective", "must be a date like 2025-07-01")
        if rules and effective <= rules[-1].effective:
            raise DefinitionError(path, f"{key}.effective", "dates must rise from rule to rule")
        name = item["workflow"]
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise DefinitionError(path, f"{key}.workflow", "must name a workflow")
        rules.append(
            WorkflowRule(
                effective=effective,
                above_vnd=_positive_int(item["above_vnd"], path, f"{key}.above_vnd"),
                workflow=name,
            )
        )
    return tuple(rules)


def _load_mlns(raw: Any, path: str, key: str) -> Mlns | None:
    """chương (3 digits), loại–khoản ("070-072"), mục–tiểu mục ("6650-6652"), checked for shape.

    Loại codes step by 30 and mục codes by 50 in the state classification, so a khoản lies
    within 29 of its loại and a tiểu mục within 49 of its mục.
    """
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"chuong", "loai_khoan", "muc_tieu_muc"}:
        raise DefinitionError(
            path, key, "needs exactly chuong, loai_khoan and muc_tieu_muc (all strings)"
        )
    chuong, loai_khoan, muc_tieu_muc = raw["chuong"], raw["loai_khoan"], raw["muc_tieu_muc"]
    if not isinstance(chuong, str) or not re.fullmatch(r"[0-9]{3}", chuong):
        raise DefinitionError(path, f"{key}.chuong", "a chương is 3 digits, e.g. 622")
    pair = re.fullmatch(r"([0-9]{3})-([0-9]{3})", loai_khoan if isinstance(loai_khoan, str) else "")
    if pair is None or not 0 < int(pair[2]) - int(pair[1]) < 30:
        raise DefinitionError(
            path, f"{key}.loai_khoan", "loại–khoản is written 070-072 (khoản within its loại)"
        )
    muc = re.fullmatch(
        r"([0-9]{4})-([0-9]{4})", muc_tieu_muc if isinstance(muc_tieu_muc, str) else ""
    )
    if muc is None or not 0 < int(muc[2]) - int(muc[1]) < 50:
        raise DefinitionError(
            path,
            f"{key}.muc_tieu_muc",
            "mục–tiểu mục is written 6650-6652 (tiểu mục within its mục)",
        )
    return Mlns(chuong=chuong, loai=pair[1], khoan=pair[2], muc=muc[1], tieu_muc=muc[2])


def _load_line(
    code: str, raw: Any, path: str, sources: Mapping[str, Labels], *, payee_required: bool = False
) -> BudgetLine:
    key = f"lines.{code}"
    if not re.fullmatch(r"[A-Z][A-Z0-9-]*", code):
        raise DefinitionError(path, key, "line codes are upper-case, e.g. SW-ASSET")
    if not isinstance(raw, dict):
        raise DefinitionError(path, key, "must be a table")
    norm_raw = raw.get("norm")
    if not isinstance(norm_raw, dict):
        raise DefinitionError(path, f"{key}.norm", "missing norm")
    kind = norm_raw.get("kind")
    if kind not in NORM_KINDS:
        raise DefinitionError(path, f"{key}.norm.kind", f"must be one of {list(NORM_KINDS)}")
    unit = norm_raw.get("unit")
    if kind == "per_unit" and unit is None:
        raise DefinitionError(path, f"{key}.norm.unit", "a per-unit norm needs a unit")
    years = norm_raw.get("years", 1)
    if kind == "per_years" and "years" not in norm_raw:
        raise DefinitionError(path, f"{key}.norm.years", "a per-years norm needs years")
    max_quantity = norm_raw.get("max_quantity")
    norm = Norm(
        kind=str(kind),
        amount_vnd=_positive_int(norm_raw.get("amount_vnd"), path, f"{key}.norm.amount_vnd"),
        years=_positive_int(years, path, f"{key}.norm.years"),
        unit=None if unit is None else _labels(unit, path, f"{key}.norm.unit"),
        max_quantity=None
        if max_quantity is None
        else _positive_int(max_quantity, path, f"{key}.norm.max_quantity"),
    )
    line_sources = _names(raw.get("sources"), path, f"{key}.sources")
    if not line_sources:
        raise DefinitionError(path, f"{key}.sources", "at least one funding source is needed")
    for source in line_sources:
        if source not in sources:
            raise DefinitionError(path, f"{key}.sources", f"unknown funding source {source!r}")
    return BudgetLine(
        code=code,
        name=_labels(raw.get("name"), path, f"{key}.name"),
        norm=norm,
        allocation_vnd=_positive_int(
            raw.get("allocation_vnd"), path, f"{key}.allocation_vnd", allow_zero=True
        ),
        sources=line_sources,
        mlns=_load_mlns(raw.get("mlns"), path, f"{key}.mlns"),
        payee_required=_flag_or(raw, "payee_required", payee_required, path, key),
    )


def _flag_or(raw: Mapping[str, Any], name: str, default: bool, path: str, key: str) -> bool:
    value = raw.get(name, default)
    if not isinstance(value, bool):
        raise DefinitionError(path, f"{key}.{name}", "must be true or false")
    return value
