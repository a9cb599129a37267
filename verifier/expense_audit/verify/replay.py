"""Step 7: replay every request event through the definition it names (roles, duties, guards)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import date
from typing import Any

from ..budget import BudgetBook, commitment_of
from ..definitions import DEFAULT_WORKFLOW, BudgetCatalogue, WorkflowDefinition
from ..errors import WorkflowError
from ..guards import GuardContext, check_content
from ..mandates import (
    GRANT,
    Mandate,
    MandateRefused,
    acting_for,
    check_delegate,
    check_grant,
    check_ref,
    check_revoke,
    check_use,
    local_date,
    parse_grant,
)
from ..projection import Projection, apply_event, content_of, normal_content, requested_on
from ..table import TransitionTable, table_for
from .keys import Keyring
from .report import Kind, Problem


class _Forbidden(Exception):
    def __init__(self, kind: Kind, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


class Replay:
    """Request projections and budget commitments, folded event by event as the engine does."""

    def __init__(
        self,
        *,
        workflows: Mapping[str, WorkflowDefinition],
        catalogues: Mapping[str, BudgetCatalogue],
        keyring: Keyring,
    ) -> None:
        self.workflows, self.catalogues, self.keyring = workflows, catalogues, keyring
        self.projections: dict[str, Projection] = {}
        # hash of each request's latest event: what a v2 decision's request_prev must name
        self.heads: dict[str, str] = {}
        self.book = BudgetBook()
        # mandates granted in the log, by the seq of their grant event
        self.mandates: dict[int, Mandate] = {}
        self.problems: list[Problem] = []
        self._reported_definitions: set[str] = set()
        self._tables: dict[str, TransitionTable] = {}

    def load(
        self,
        projections: Mapping[str, Projection],
        heads: Mapping[str, str],
        mandates: Mapping[str, Any] | None = None,
    ) -> None:
        """Start from projections (request heads, mandates) saved at a trusted checkpoint."""
        self.mandates = {int(s): Mandate.from_state(m) for s, m in (mandates or {}).items()}
        self.projections = {n: dict(p) for n, p in projections.items()}
        self.heads = {str(n): str(h) for n, h in heads.items()}
        for number, projection in self.projections.items():
            self.book.set(number, commitment_of(projection))

    def step(self, seq: int, body: dict[str, Any], event_hash: str) -> None:
        """Replay one request event (fields already type-checked); a forbidden step is a problem.

        A v2 body is the flat view of its decision (fields.v2_view): same names, plus
        request_prev, budget (moved out of data) and issued.
        """
        number = body["request"]
        if not number:
            self.problems.append(
                Problem(seq, Kind.FORBIDDEN_STEP, f"event by {body['actor']} names no request")
            )
            return
        projection = self.projections.get(number)
        head = self.heads.get(number)
        if body["v"] == 2 and body["request_prev"] != head:
            # NOTE: the person signed a decision about the request as it stood at request_prev;
            # logged after another event of the request, it decided on a history it never saw.
            self.problems.append(
                Problem(
                    seq,
                    Kind.REQUEST_PREV_MISMATCH,
                    f"decision made after event {str(body['request_prev'])[:16]}…, the request's "
                    f"latest event is {(head or 'none (a new request)')[:16]}…",
                    number,
                )
            )
        self.heads[number] = event_hash
        try:
            self._check(body, projection)
        except _Forbidden as refusal:
            self.problems.append(Problem(seq, refusal.kind, refusal.detail, number))
        except WorkflowError as refusal:
            detail = f"{body['action']} by {body['actor']}: {refusal.message}"
            self.problems.append(Problem(seq, Kind.FORBIDDEN_STEP, detail, number))
        except (TypeError, ValueError, KeyError, ArithmeticError) as exc:
            # NOTE: fields are type-checked before replay; this is the fail-closed net for a
            # value a guard cannot use (it is reported, never passed).
            detail = f"{body['action']} cannot be replayed: {exc!r:.200}"
            self.problems.append(Problem(seq, Kind.MALFORMED, detail, number))
        try:
            updated = apply_event(projection, body, event_hash, self._effects(body, projection))
        except (KeyError, TypeError, ValueError):
            return
        self.projections[number] = updated
        with contextlib.suppress(TypeError, ValueError, KeyError, ArithmeticError):
            self.book.set(number, commitment_of(updated))

    def mandate_event(
        self, seq: int, view: dict[str, Any], event_hash: str, *, verified: bool
    ) -> None:
        """A mandate.grant or mandate.revoke decision: checked, and kept when it holds."""
        actor = view["actor"]
        if actor in self.keyring.locked:
            self.problems.append(Problem(seq, Kind.FORBIDDEN_STEP, f"{actor}'s account is locked"))
            return
        # NOTE: a mandate whose signature failed grants nothing: steps naming it are then
        # reported as under an unknown mandate.
        if not verified:
            return
        on = local_date(view["ts"])
        try:
            if view["action"] == GRANT:
                mandate = parse_grant(view["data"], seq=seq, event_hash=event_hash)
                check_grant(
                    mandate,
                    actor=actor,
                    role=view["role"],
                    actor_roles=self.keyring.roles.get(actor, set()),
                    actor_mandates=[
                        m for m in self.mandates.values() if m.delegate == actor and _live(m, on)
                    ],
                    on=on,
                )
                check_delegate(
                    mandate,
                    name=mandate.delegate,
                    delegate_roles=self.keyring.roles.get(mandate.delegate, set()),
                )
                self.mandates[seq] = mandate
            else:
                mandate = self._mandate(view["data"])
                check_revoke(mandate, actor=actor)
                mandate.revoked_seq = seq
        except MandateRefused as refusal:
            detail = f"{view['action']} by {actor}: {refusal.message_en}"
            self.problems.append(Problem(seq, Kind(refusal.problem), detail))

    def _mandate(self, ref: Any) -> Mandate:
        checked = check_ref(ref)
        mandate = self.mandates.get(checked["seq"])
        if mandate is None or mandate.hash != checked["hash"]:
            raise MandateRefused(
                "Không có giấy ủy quyền này trong nhật ký.",
                en=f"no mandate was granted at event {checked['seq']} with hash "
                f"{checked['hash'][:16]}…",
                problem=Kind.MANDATE_UNKNOWN.value,
            )
        return mandate

    def _check_mandate(self, body: dict[str, Any], content: Mapping[str, Any]) -> None:
        """A step under a mandate: a real grant, the actor's, live today, within its scope."""
        try:
            mandate = self._mandate(body["data"]["mandate"])
            check_use(
                mandate,
                actor=body["actor"],
                role=body["role"],
                on=local_date(body["ts"]),
                line=str(content.get("line") or ""),
                amount_vnd=int(content.get("amount_vnd") or 0),
                delegator_roles=self.keyring.roles.get(mandate.delegator, set()),
            )
        except MandateRefused as refusal:
            raise _Forbidden(
                Kind(refusal.problem), f"{body['action']} by {body['actor']}: {refusal.message_en}"
            ) from None

    def _effects(self, body: dict[str, Any], projection: Projection | None) -> tuple[str, ...]:
        """What the event's transition records, from the definition the event names."""
        workflow = self.workflows.get(body["definition"] or "")
        if workflow is None:
            return ()
        state = projection["state"] if projection else workflow.initial
        transition = self._table(workflow).find(str(state), body["action"])
        return transition.effects if transition is not None else ()

    def _table(self, workflow: WorkflowDefinition) -> TransitionTable:
        table = self._tables.get(workflow.sha256)
        if table is None:
            table = self._tables[workflow.sha256] = table_for(workflow)
        return table

    def _workflow(self, definition_hash: str | None) -> WorkflowDefinition:
        workflow = self.workflows.get(definition_hash or "")
        if workflow is not None:
            return workflow
        if definition_hash not in self._reported_definitions:
            self._reported_definitions.add(str(definition_hash))
            raise _Forbidden(
                Kind.DEFINITION_MISSING,
                f"no definition file in the bundle has sha256 {definition_hash}",
            )
        raise _Forbidden(Kind.DEFINITION_MISSING, "definition missing (see first report)")

    def _check(self, body: dict[str, Any], projection: Projection | None) -> None:
        workflow = self._workflow(body["definition"])
        data: dict[str, Any] = body["data"]
        budget = body["budget"] if body["v"] == 2 else data.get("budget")
        catalogue = self.catalogues.get(budget or "")
        if budget and catalogue is None:
            raise _Forbidden(Kind.DEFINITION_MISSING, f"no budget catalogue has sha256 {budget}")
        state = projection["state"] if projection else workflow.initial
        action, actor, role = body["action"], body["actor"], body["role"]
        if actor in self.keyring.locked:
            raise _Forbidden(Kind.FORBIDDEN_STEP, f"{actor}'s account is locked")
        if body["from"] != state:
            raise _Forbidden(
                Kind.FORBIDDEN_STEP,
                f"{action} claims to start from {body['from']!r}, request is {state!r}",
            )
        table = self._table(workflow)
        transition = table.find(state, action)
        if transition is None:
            raise _Forbidden(Kind.FORBIDDEN_STEP, f"{action} is not possible from {state!r}")
        if body["to"] != transition.dest:
            raise _Forbidden(
                Kind.FORBIDDEN_STEP,
                f"{action} leads to {transition.dest!r}, event says {body['to']!r}",
            )
        self._check_workflow(body, workflow, transition.checks_content, catalogue, projection)
        held = self.keyring.roles.get(actor, set())
        if "mandate" in data and role in transition.roles:
            self._check_mandate(body, data["content"])
        elif role not in transition.roles or role not in held:
            raise _Forbidden(
                Kind.FORBIDDEN_STEP,
                f"{actor} acted as {role!r}; {action} needs one of {list(transition.roles)} and {actor} holds {sorted(held)}",
            )
        if transition.not_while_acting_for and "mandate" not in data:
            acting = acting_for(
                self.mandates.values(),
                actor=actor,
                roles=transition.not_while_acting_for,
                on=local_date(body["ts"]),
                delegator_roles=lambda login: self.keyring.roles.get(login, set()),
            )
            if acting is not None:
                raise _Forbidden(
                    Kind.FORBIDDEN_STEP,
                    f"{action} by {actor}, who acts as {acting.role!r} under the mandate of "
                    f"event {acting.seq}: one person does not both {action} and act for that role",
                )
        if transition.comment_required and not (body["comment"] or "").strip():
            raise _Forbidden(Kind.FORBIDDEN_STEP, f"{action} needs a comment")
        content = data["content"]
        if transition.binds_content:
            if transition.checks_content:
                check_content(content, catalogue)
        elif projection is None or normal_content(content) != content_of(projection):
            raise _Forbidden(
                Kind.CONTENT_MISMATCH,
                f"{action} decides on content that differs from what was submitted",
            )
        owner = projection["owner"] if projection else actor
        ctx = GuardContext(
            actor=actor,
            owner=owner,
            forwarded_by=projection.get("forwarded_by") if projection else None,
            approved_by=projection.get("approved_by") if projection else None,
            content=content,
            catalogue=catalogue,
            book=self.book,
            data=data.get("payment") or {},
            today=date.fromisoformat(body["ts"][:10]),
            local_day=local_date(body["ts"]),
            requested_on=requested_on(projection),
        )
        # NOTE: the compiled table runs the machine's guards in the machine's order; a property
        # test keeps its answers equal to the `transitions` machine the engine fires.
        table.fire(state, action, ctx)

    def _check_workflow(
        self,
        body: dict[str, Any],
        workflow: WorkflowDefinition,
        submission: bool,
        catalogue: BudgetCatalogue | None,
        projection: Projection | None,
    ) -> None:
        """The request follows the workflow its submission had to choose, and keeps it.

        A submission (a step that checks the content) is under the workflow the catalogue's
        dated [[workflow_rules]] pick for its amount on its local date, as the engine chose it;
        every later step stays in the workflow of the request's previous step.
        """
        if submission:
            content = body["data"].get("content") or {}
            amount = int(content.get("amount_vnd") or 0)
            day = local_date(body["ts"])
            expected = (
                catalogue.workflow_for(day, amount) if catalogue is not None else DEFAULT_WORKFLOW
            )
            if workflow.name != expected:
                rule = catalogue.workflow_rule_on(day) if catalogue is not None else None
                limit = (
                    f"the limit {rule.above_vnd:,} ₫ in force since {rule.effective}"
                    if rule
                    else "no limit in force"
                )
                raise _Forbidden(
                    Kind.WRONG_WORKFLOW,
                    f"{body['action']} by {body['actor']} of {amount:,} ₫ on {day} follows "
                    f"{workflow.name!r}; {limit} sends it to {expected!r}",
                )
            return
        previous = self.workflows.get(str((projection or {}).get("definition") or ""))
        if previous is not None and previous.name != workflow.name:
            raise _Forbidden(
                Kind.WRONG_WORKFLOW,
                f"{body['action']} by {body['actor']} follows {workflow.name!r}; the request "
                f"was submitted into {previous.name!r}",
            )


def _live(mandate: Mandate, on: date) -> bool:
    return mandate.revoked_seq is None and mandate.valid_from <= on <= mandate.valid_to
