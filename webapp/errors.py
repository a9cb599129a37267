"""Domain refusals as messages in the user's language."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from expense_audit.errors import WorkflowError
from expense_audit.money import format_vnd
from flask import flash
from flask_babel import get_locale, gettext

from .context import db

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


FORBIDDEN_RULES = {"actor_is_owner", "actor_not_owner", "actor_not_forwarder"}


def is_forbidden(error: WorkflowError) -> bool:
    """A refusal about who may act (403) rather than about what was entered."""
    return error.code == "role_not_allowed" or (
        error.code == "guard_refused" and error.details.get("rule") in FORBIDDEN_RULES
    )


def message_for(error: WorkflowError) -> str:
    """The refusal in the user's language (the domain speaks Vietnamese)."""
    if str(get_locale()) != "en":
        return error.message
    d = error.details
    rule = d.get("rule")
    if rule == "within_norm" and "left" in d:
        return gettext(
            "Over the norm of line %(line)s: %(norm)s for the period, %(left)s left, %(amount)s asked.",
            line=d["line"],
            norm=format_vnd(d["norm"]),
            left=format_vnd(d["left"]),
            amount=format_vnd(d["amount"]),
        )
    if rule == "within_norm":
        return gettext(
            "Over the norm of line %(line)s: at most %(norm)s, %(amount)s asked.",
            line=d["line"],
            norm=str(d["norm"]),
            amount=str(d["amount"]),
        )
    if rule == "within_allocation":
        return gettext(
            "Over the allocation of line %(line)s: %(left)s left of %(allocation)s, %(amount)s asked.",
            line=d["line"],
            left=format_vnd(d["left"]),
            allocation=format_vnd(d["allocation"]),
            amount=format_vnd(d["amount"]),
        )
    simple = {
        "actor_is_owner": gettext("Only the proposer may do this."),
        "actor_not_owner": gettext("Nobody reviews, approves or pays their own request."),
        "actor_not_forwarder": gettext("Whoever forwarded a request cannot also approve it."),
        "quotes_attached": gettext("Larger requests need more supplier quotes attached."),
        "source_allowed": gettext("This funding source is not allowed for this budget line."),
    }
    if rule in simple:
        return simple[str(rule)]
    by_code = {
        "wrong_secret": gettext("Wrong signing secret. Nothing was recorded."),
        "comment_required": gettext("Please write a comment for this decision."),
        "role_not_allowed": gettext("Your role may not take this step."),
        "transition_not_allowed": gettext(
            "This step is not possible in the request's current state."
        ),
        "concurrent_change": gettext(
            "Someone acted on this request before you: %(who)s did “%(action)s” at %(at)s.",
            who=str(d.get("actor", "")),
            action=str(d.get("action", "")),
            at=str(d.get("at", "")),
        ),
        "no_signing_key": gettext("You have no signing key yet: set your signing secret first."),
        "amount_invalid": gettext(
            "Amount not understood. Examples: 1.800.000, 1,800,000, 1800000, 1tr8."
        ),
    }
    return by_code.get(error.code, error.message)
