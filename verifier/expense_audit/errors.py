"""One error hierarchy for the domain core; the web layer translates these into messages."""

from __future__ import annotations

from typing import Any


class WorkflowError(Exception):
    """Base of every refusal raised by the domain core."""

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


class DefinitionError(WorkflowError):
    """A definition file is invalid; names the file and the key at fault."""

    code = "definition_error"

    def __init__(self, path: str, key: str, problem: str) -> None:
        super().__init__(f"{path}: [{key}] {problem}", path=path, key=key, problem=problem)


class AmountInvalid(WorkflowError):
    """An amount typed by a user could not be understood or is out of range."""

    code = "amount_invalid"


class TransitionNotAllowed(WorkflowError):
    """The trigger does not exist from the request's current state."""

    code = "transition_not_allowed"


class RoleNotAllowed(WorkflowError):
    """The actor does not hold a role that may fire this trigger."""

    code = "role_not_allowed"


class GuardRefused(WorkflowError):
    """A named guard refused the transition (ownership, separation of duties, norm, ...)."""

    code = "guard_refused"


class CommentRequired(WorkflowError):
    """The transition needs a comment and none was given."""

    code = "comment_required"


class DataInvalid(WorkflowError):
    """Data required by the transition is missing or malformed."""

    code = "data_invalid"


class WrongSecret(WorkflowError):
    """The signing secret does not unlock the actor's private key."""

    code = "wrong_secret"


class NoSigningKey(WorkflowError):
    """The actor has no active signing key."""

    code = "no_signing_key"


class RequestNotFound(WorkflowError):
    """No request or draft with that number."""

    code = "request_not_found"


class ConcurrentChange(WorkflowError):
    """Somebody else changed the request first."""

    code = "concurrent_change"


class InstitutionKeyMissing(WorkflowError):
    """The institution key has not been created or cannot be read."""

    code = "institution_key_missing"
