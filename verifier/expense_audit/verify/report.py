"""What a verification found: problems of a fixed set of kinds, and the headline."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from ..errors import WorkflowError
from ..projection import Projection

# Exit codes of audit-verify.
EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2
EXIT_NOT_TRUSTED = 3  # every check passed, but nothing ties the log to a key the auditor trusts

NOT_TRUSTED = "NOT VERIFIED AGAINST A TRUSTED KEY"


class VerifyError(WorkflowError):
    """Base of the verifier's own errors."""

    code = "verify_error"


class BundleUnreadable(VerifyError):
    """The bundle cannot be read at all, or breaks the bundle layout (exit code 2)."""

    code = "bundle_unreadable"


class PinInvalid(VerifyError):
    """An institution-key pin that is not a full 64-hex fingerprint (exit code 2)."""

    code = "pin_invalid"


class Kind(StrEnum):
    """Every kind of problem the verifier reports."""

    MALFORMED = "malformed"  # a field missing or of the wrong type
    NON_CANONICAL = "non-canonical"  # a line that is not byte-for-byte the writer's JCS form
    HASH_MISMATCH = "hash-mismatch"
    BAD_SIGNATURE = "bad-signature"
    BROKEN_LINK = "broken-link"
    GAP = "gap"
    DUPLICATE = "duplicate"
    REORDERED = "reordered"
    ORIGIN_MISMATCH = "origin-mismatch"
    TIME_REVERSED = "time-reversed"
    TIME_AFTER_CHECKPOINT = "time-after-checkpoint"
    UNKNOWN_KEY = "unknown-key"
    KEY_NOT_VALID = "key-not-valid"
    KEY_OWNER_MISMATCH = "key-owner-mismatch"
    INSTITUTION_KEY_MISMATCH = "institution-key-mismatch"
    FORBIDDEN_STEP = "forbidden-step"
    CONTENT_MISMATCH = "content-mismatch"
    DEFINITION_MISSING = "definition-missing"
    DEFINITION_INVALID = "definition-invalid"
    DEFINITION_MISMATCH = "definition-mismatch"
    MANIFEST_MISMATCH = "manifest-mismatch"
    KEYS_MISMATCH = "keys-mismatch"
    CHECKPOINT_INVALID = "checkpoint-invalid"
    CHECKPOINT_MISMATCH = "checkpoint-mismatch"
    CHECKPOINT_BEYOND_LOG = "checkpoint-beyond-log"
    CHECKPOINT_MISSING = "checkpoint-missing"
    TRUSTED_CHECKPOINT_INVALID = "trusted-checkpoint-invalid"
    TRUSTED_CHECKPOINT_MISMATCH = "trusted-checkpoint-mismatch"
    # Reported by the server's live check (workflow/livecheck.py), not by the offline verifier.
    ROW_MISSING = "row-missing"
    ROW_WITHOUT_EVENTS = "row-without-events"
    ROW_DIFFERS_FROM_LOG = "row-differs-from-log"
    BUDGET_TOTALS_DIFFER = "budget-totals-differ"


# A step that is already broken (bad hash, signature, link) is not also reported as forbidden.
INTEGRITY = frozenset(
    {
        Kind.HASH_MISMATCH,
        Kind.BAD_SIGNATURE,
        Kind.BROKEN_LINK,
        Kind.GAP,
        Kind.DUPLICATE,
        Kind.REORDERED,
        Kind.MALFORMED,
        Kind.UNKNOWN_KEY,
        Kind.KEY_NOT_VALID,
        Kind.KEY_OWNER_MISMATCH,
        Kind.NON_CANONICAL,
    }
)


@dataclass(frozen=True)
class Problem:
    seq: int | None
    kind: str
    detail: str
    request: str | None = None


@dataclass
class Report:
    origin: str = ""
    event_count: int = 0
    institution_fingerprint: str = ""
    checkpoint_size: int = 0
    checkpoint_root: str = ""
    trusted: bool = False  # a full pin or a trusted checkpoint tied the log to a known key
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    requests: dict[str, Projection] = field(default_factory=dict)
    state: dict[str, Any] | None = None

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def headline(self) -> str:
        if not self.valid:
            return f"INVALID: {len(self.problems)} problem(s)"
        if not self.trusted:
            return f"VALID BUT {NOT_TRUSTED}: the checks pass for whoever holds the key that signed this log"
        return "VALID: every hash, link, signature, key, checkpoint and step checks out."

    @property
    def exit_code(self) -> int:
        if not self.valid:
            return EXIT_INVALID
        return EXIT_VALID if self.trusted else EXIT_NOT_TRUSTED

    def add(self, seq: int | None, kind: str, detail: str, request: str | None = None) -> None:
        self.problems.append(Problem(seq, str(kind), detail, request))

    def as_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "trusted": self.trusted,
            "headline": self.headline,
            "origin": self.origin,
            "event_count": self.event_count,
            "institution_fingerprint": self.institution_fingerprint,
            "checkpoint": {"size": self.checkpoint_size, "root": self.checkpoint_root},
            "problems": [asdict(p) for p in self.problems],
            "warnings": self.warnings,
        }
