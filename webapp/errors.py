"""Domain refusals as messages in the user's language."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from flask import flash
from flask_babel import get_locale

from expense_audit.errors import WorkflowError

from .context import db
from .ops.metrics import count_refusal

T = TypeVar("T")


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T


def attempt(action: Callable[[], T]) -> Done[T] | None:
    """Run one service call and commit; on a refusal roll back, flash why and return None."""
    try:
        value = action()
        db().commit()
    except WorkflowError as error:
        db().rollback()
        flash(message_for(error), "error")
        return None
    return Done(value)


def message_for(error: WorkflowError) -> str:
    """The refusal in the user's language (every refusal carries Vietnamese and English).

    NOTE: every refusal a person is told about passes here, so this is where it is counted
    (expenses_refusals_total by rule code); a page that only explains why a step is not
    offered uses ``reason_for``, which counts nothing.
    """
    count_refusal(error.code, error.details.get("rule"))
    return reason_for(error)


def reason_for(error: WorkflowError) -> str:
    """Why a step would be refused, in the user's language, for a page that offers the steps."""
    return error.text(str(get_locale()))
