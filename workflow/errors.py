"""The server's own errors (keys, the log, concurrent steps); they share the rules' base class."""

from __future__ import annotations

from expense_audit.errors import NotPermitted, Refusal, WorkflowError


class RequestNotFound(Refusal):
    """No request or draft with that number."""

    code = "request_not_found"


class AccountLocked(NotPermitted):
    """The account is locked: it may sign nothing."""

    code = "account_locked"


class WrongSecret(Refusal):
    """The signing secret does not unlock the actor's private key."""

    code = "wrong_secret"


class SecretTooWeak(Refusal):
    """A new signing secret is too short or too easy to guess."""

    code = "secret_too_weak"


class KeyLocked(Refusal):
    """Too many wrong secrets: the server-held key signs nothing until a recovery."""

    code = "key_locked"


class NoSigningKey(Refusal):
    """The actor has no active signing key."""

    code = "no_signing_key"


class ConcurrentChange(Refusal):
    """Somebody else changed the request first."""

    code = "concurrent_change"


class InstitutionKeyMissing(WorkflowError):
    """The institution key has not been created or cannot be read."""

    code = "institution_key_missing"


class InstitutionKeyExists(WorkflowError):
    """The institution key already exists; it is never overwritten."""

    code = "institution_key_exists"


class LogNotInitialised(WorkflowError):
    """The audit log has no genesis event yet."""

    code = "log_not_initialised"
