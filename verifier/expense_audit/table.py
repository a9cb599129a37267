"""A compiled transition table: (state, trigger) -> the definition's transition and its guards.

The verifier replays every event of a log, and the `transitions` machine (machine.py) costs more
per step than the guards it runs (a model added and removed, event data built, callbacks resolved).
This table is derived from the same definition and runs the same guard functions in the same
order; the engine keeps the machine. tests/test_transition_table.py walks random paths through
both and requires, at every step, the same new state or the same refusal.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .definitions import TransitionDef, WorkflowDefinition
from .errors import TransitionNotAllowed
from .guards import GUARDS, Guard, GuardContext


def transition_not_allowed(
    definition: WorkflowDefinition, state: str, trigger: str
) -> TransitionNotAllowed:
    """The refusal for a trigger the definition does not allow from a state."""
    known = definition.states.get(state)
    label = known.label if known else {"vi": state, "en": state}
    return TransitionNotAllowed(
        f"Bước này không thực hiện được khi đề xuất đang ở trạng thái «{label['vi']}».",
        en=f"This step is not possible while the request is “{label['en']}”.",
        trigger=trigger,
        state=state,
    )


@dataclass(frozen=True)
class CompiledStep:
    """One (state, trigger) entry: the transition and its guard functions, in definition order."""

    transition: TransitionDef
    guards: tuple[Guard, ...]


class TransitionTable:
    """The definition's transitions as a dict; ``fire`` answers as ``WorkflowMachine.fire`` does."""

    def __init__(self, definition: WorkflowDefinition) -> None:
        self.definition = definition
        steps: dict[tuple[str, str], CompiledStep] = {}
        for transition in definition.transitions:
            guards = tuple(GUARDS[name] for name in transition.guards)
            for source in transition.sources:
                # NOTE: the first transition wins, as in WorkflowDefinition.find.
                steps.setdefault((source, transition.trigger), CompiledStep(transition, guards))
        self._steps = steps

    def find(self, state: str, trigger: str) -> TransitionDef | None:
        """The transition ``trigger`` fires from ``state``, if any (WorkflowDefinition.find)."""
        step = self._steps.get((state, trigger))
        return step.transition if step is not None else None

    def fire(self, state: str, trigger: str, ctx: GuardContext) -> str:
        """Run ``trigger`` from ``state`` through its guards; return the new state.

        Raises TransitionNotAllowed for a step the definition does not have, and the first
        guard's refusal (GuardRefused and its kind) otherwise, exactly as the machine does.
        """
        step = self._steps.get((state, trigger))
        if step is None:
            raise transition_not_allowed(self.definition, state, trigger)
        for guard in step.guards:
            guard(ctx)
        return step.transition.dest


_CACHE: dict[str, TransitionTable] = {}
_CACHE_LOCK = threading.Lock()


def table_for(definition: WorkflowDefinition) -> TransitionTable:
    """The compiled table of a definition (one per content hash)."""
    with _CACHE_LOCK:
        table = _CACHE.get(definition.sha256)
        if table is None:
            table = _CACHE[definition.sha256] = TransitionTable(definition)
        return table
