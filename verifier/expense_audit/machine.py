"""The state machine of a definition, built with `transitions`; the only module importing it."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from transitions import EventData, Machine, MachineError

from .definitions import TransitionDef, WorkflowDefinition
from .errors import RoleNotAllowed, TransitionNotAllowed, WorkflowError
from .guards import GUARDS, GuardContext
from .table import transition_not_allowed


class _SharedMachine(Machine):
    """A `transitions` machine whose per-call models stay bare.

    NOTE: add_model normally binds one convenience method per trigger and per state onto each
    model. Tokens live for one call and are driven through `machine.events[...]`, so that binding
    is pure cost (it dominated replay time in the verifier's profile); skipping it keeps the
    add-model/remove-model cycle cheap.
    """

    def _add_trigger_to_model(self, trigger: str, model: Any) -> None:
        return None

    def _add_model_to_state(self, state: Any, model: Any) -> None:
        return None


class _Token:
    """A throw-away model: the machine is shared, a token carries one request's state per call."""

    state: str


def _condition(guard_name: str) -> Any:
    guard = GUARDS[guard_name]

    def check(event: EventData) -> bool:
        guard(event.kwargs["ctx"])  # raises GuardRefused with the reason
        return True

    check.__name__ = guard_name
    return check


class WorkflowMachine:
    """One shared `transitions` machine per definition; models are added and removed per call."""

    def __init__(self, definition: WorkflowDefinition) -> None:
        self.definition = definition
        self._lock = threading.Lock()
        self._machine = _SharedMachine(
            model=[],
            states=list(definition.states),
            initial=definition.initial,
            transitions=[
                {
                    "trigger": t.trigger,
                    "source": source,
                    "dest": t.dest,
                    "conditions": [_condition(name) for name in t.guards],
                }
                for t in definition.transitions
                for source in t.sources
            ],
            auto_transitions=False,
            send_event=True,
            ignore_invalid_triggers=False,
            model_override=False,
        )

    def transition_for(self, state: str, trigger: str) -> TransitionDef:
        """The definition of ``trigger`` from ``state``, or TransitionNotAllowed."""
        transition = self.definition.find(state, trigger)
        if transition is None:
            raise transition_not_allowed(self.definition, state, trigger)
        return transition

    def role_for(self, transition: TransitionDef, actor_roles: Iterable[str]) -> str:
        """The role under which the actor may fire the transition, or RoleNotAllowed."""
        held = set(actor_roles)
        for role in transition.roles:
            if role in held:
                return role
        raise RoleNotAllowed(
            f"Vai trò của bạn không được phép «{transition.label['vi']}».",
            en=f"Your role may not “{transition.label['en']}”.",
            trigger=transition.trigger,
            needed=list(transition.roles),
            held=sorted(held),
        )

    def fire(self, state: str, trigger: str, ctx: GuardContext) -> str:
        """Run ``trigger`` from ``state`` through the machine's guards; return the new state."""
        transition = self.transition_for(state, trigger)
        token = _Token()
        with self._lock:
            self._machine.add_model(token, initial=state)
            try:
                accepted = bool(self._machine.events[trigger].trigger(token, ctx=ctx))
            except MachineError as exc:
                raise TransitionNotAllowed(
                    f"Không thực hiện được: {exc.value}",
                    en=f"Not possible: {exc.value}",
                    trigger=trigger,
                    state=state,
                ) from None
            finally:
                self._machine.remove_model(token)
        if not accepted:  # pragma: no cover - every guard raises instead of returning False
            raise TransitionNotAllowed(
                "Điều kiện chuyển trạng thái không thỏa.",
                en="The conditions of this step are not met.",
                trigger=trigger,
            )
        if token.state != transition.dest:  # pragma: no cover - the machine is built from it
            raise WorkflowError(
                f"machine reached {token.state!r}, definition says {transition.dest!r}"
            )
        return token.state


_CACHE: dict[str, WorkflowMachine] = {}
_CACHE_LOCK = threading.Lock()


def machine_for(definition: WorkflowDefinition) -> WorkflowMachine:
    """The shared machine of a definition (one per content hash)."""
    with _CACHE_LOCK:
        machine = _CACHE.get(definition.sha256)
        if machine is None:
            machine = _CACHE[definition.sha256] = WorkflowMachine(definition)
        return machine
