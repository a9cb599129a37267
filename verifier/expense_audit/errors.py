"""One error hierarchy for the rules, the engine and the verifier.

Every domain exception derives from ``WorkflowError``. A ``Refusal`` is what a person is told when
a step or an entry is refused: it carries its message in Vietnamese (the default language) and in
English, and data in attributes (``error.rule``, ``error.field`` ...), so an interface can show a
precise message in the user's language. Other errors (a broken definition file, an unreadable
bundle, a missing key file) speak to an administrator or an auditor, in English.
"""

from __future__ import annotations

from typing import Any


class WorkflowError(Exception):
    """Base of every error raised by the rules, the engine and the verifier."""

    code = "workflow_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __getattr__(self, name: str) -> Any:
        details = self.__dict__.get("details", {})
        if name in details:
            return details[name]
        raise AttributeError(name)

    def text(self, language: str) -> str:
        """The message in ``language`` (only refusals are translated)."""
        return self.message


class DefinitionError(WorkflowError):
    """A definition file is invalid; names the file and the key at fault."""

    code = "definition_error"

    def __init__(self, path: str, key: str, problem: str) -> None:
        super().__init__(f"{path}: [{key}] {problem}", path=path, key=key, problem=problem)


# --- refusals: what a person is told, in Vietnamese and English ------------------------------


class Refusal(WorkflowError):
    """A step or an entry was refused; nothing was written."""

    code = "refusal"

    def __init__(self, message: str, *, en: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.message_en = en

    def text(self, language: str) -> str:
        return self.message_en if language == "en" else self.message


class NotPermitted(Refusal):
    """The person may not do this at all (a 403 on the web), whatever they enter."""

    code = "not_permitted"


class RoleNotAllowed(NotPermitted):
    """The actor does not hold a role that may fire this trigger."""

    code = "role_not_allowed"


class AmountInvalid(Refusal):
    """An amount typed by a user could not be understood or is out of range."""

    code = "amount_invalid"


class TransitionNotAllowed(Refusal):
    """The trigger does not exist from the request's current state."""

    code = "transition_not_allowed"


class GuardRefused(Refusal):
    """A named guard refused the transition (norm, allocation, quotes, funding source ...)."""

    code = "guard_refused"


class ActorNotAllowed(GuardRefused, NotPermitted):
    """A guard about who acts refused: ownership or separation of duties."""

    code = "actor_not_allowed"


class CommentRequired(Refusal):
    """The transition needs a comment and none was given."""

    code = "comment_required"


class DataInvalid(Refusal):
    """Data entered for the request or the step is missing or malformed."""

    code = "data_invalid"


class ContentMissing(Refusal):
    """The step decides on content the request does not have yet (it was never submitted)."""

    code = "content_missing"
