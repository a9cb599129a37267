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
    # Event format v2: passkey assertions and server-held signatures over decisions.
    SIGNATURE_KIND_MISMATCH = (
        "signature-kind-mismatch"  # passkey step signed server-side, or reverse
    )
    DECISION_NOT_IN_BATCH = "decision-not-in-batch"
    CHALLENGE_MISMATCH = "challenge-mismatch"  # the assertion was made for another decision
    ORIGIN_NOT_ALLOWED = "origin-not-allowed"
    RP_ID_MISMATCH = "rp-id-mismatch"
    USER_PRESENCE_MISSING = "user-presence-missing"
    USER_VERIFICATION_MISSING = "user-verification-missing"
    SIGN_COUNT_NOT_INCREASING = "sign-count-not-increasing"  # a cloned authenticator
    ASSERTION_REPLAYED = "assertion-replayed"
    # PAdES-signed forms (issue 14): the PDF is not the one form.sign recorded, is missing, or its
    # signature does not validate against --ca-roots.
    SIGNED_PDF_MISMATCH = "signed-pdf-mismatch"
    SIGNED_PDF_MISSING = "signed-pdf-missing"
    SIGNED_PDF_INVALID = "signed-pdf-invalid"
    ASSERTION_INVALID = "assertion-invalid"  # clientDataJSON / authenticatorData unusable
    REQUEST_PREV_MISMATCH = "request-prev-mismatch"  # the decision was made on another history
    ISSUED_OUT_OF_RANGE = "issued-out-of-range"  # decision prepared after, or long before, its ts
    # Who can sign: keys, enrollment and admin separation.
    KEY_UNCONFIRMED = "key-unconfirmed"  # a new key signed a step before its key.confirm
    SELF_ENROLLMENT = "self-enrollment"  # an admin enrolled a key for themselves
    SELF_GRANT = "self-grant"  # someone granted roles to themselves
    ADMIN_WITH_CHAIN_ROLE = "admin-with-chain-role"
    NOT_ADMIN = "not-admin"  # a grant, lock or enrollment names someone who is not an admin
    ROTATION_INVALID = "rotation-invalid"  # a rotation not approved by the owner's old key
    ENROLLMENT_OVER_VALID_KEY = "enrollment-over-valid-key"  # neither rotation nor recovery
    KEY_INVALID = "key-invalid"  # an enrolled key that cannot verify anything
    CONSISTENCY_PROOF_INVALID = "consistency-proof-invalid"
    # Witness cosignatures (C2SP tlog-cosignature), checked against the --witness-key named.
    COSIGNATURE_MISSING = "cosignature-missing"  # the final checkpoint lacks the witness's one
    COSIGNATURE_INVALID = "cosignature-invalid"  # does not verify over its checkpoint
    COSIGNATURE_TIME_IMPLAUSIBLE = "cosignature-time-implausible"  # before signing, or future
    ATTACHMENT_MISMATCH = "attachment-mismatch"  # a file whose bytes are not the ones signed
    ATTACHMENT_FOREIGN = "attachment-foreign"  # a file no signed event binds
    ATTACHMENT_MISSING = (
        "attachment-missing"  # a bound file absent from a --with-attachments bundle
    )
    # Signing for someone (expense_audit.mandates): a step under a mandate, or the mandate itself.
    MANDATE_UNKNOWN = "mandate-unknown"  # a step names a mandate the log does not hold (forged)
    MANDATE_INVALID = "mandate-invalid"  # a grant or revocation that breaks the rules
    MANDATE_EXPIRED = "mandate-expired"  # a step outside the mandate's dates
    MANDATE_REVOKED = "mandate-revoked"  # a step after the delegator revoked the mandate
    MANDATE_OUT_OF_SCOPE = "mandate-out-of-scope"  # another person, role, line or a larger amount
    MANDATE_REDELEGATED = "mandate-redelegated"  # a delegate passing on what they hold by mandate
    MANDATE_NOT_BY_DELEGATOR = "mandate-not-by-delegator"  # signed by someone else
    # Dated thresholds: a request's workflow is the one the rule in force at its submission picks.
    WRONG_WORKFLOW = "wrong-workflow"  # above the limit without the district step, or the reverse
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
        Kind.SIGNATURE_KIND_MISMATCH,
        Kind.DECISION_NOT_IN_BATCH,
        Kind.CHALLENGE_MISMATCH,
        Kind.ORIGIN_NOT_ALLOWED,
        Kind.RP_ID_MISMATCH,
        Kind.USER_PRESENCE_MISSING,
        Kind.USER_VERIFICATION_MISSING,
        Kind.SIGN_COUNT_NOT_INCREASING,
        Kind.ASSERTION_REPLAYED,
        Kind.ASSERTION_INVALID,
        Kind.KEY_UNCONFIRMED,
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
    people: dict[str, dict[str, Any]] = field(default_factory=dict)
    state: dict[str, Any] | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    cosignatures: list[dict[str, Any]] = field(default_factory=list)
    witnesses: list[str] = field(default_factory=list)  # the --witness-key names checked
    signed_pdfs: dict[str, Any] = field(default_factory=dict)  # PAdES forms (signed_forms.py)

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
            "people": self.people,
            "attachments": self.attachments,
            "cosignatures": self.cosignatures,
            "witnesses": self.witnesses,
            "signed_pdfs": self.signed_pdfs,
        }

    def people_text(self) -> list[str]:
        """The per-person section of the text report: roles, keys and flags."""
        lines = ["people:"] if self.people else []
        for login, person in self.people.items():
            state = "" if person["active"] else " (locked)"
            lines.append(f"  {login}{state}")
            for grant in person["roles"]:
                removed = (
                    ""
                    if grant["removed_seq"] is None
                    else f", removed at seq {grant['removed_seq']} by {grant['removed_by']}"
                )
                lines.append(
                    f"    role {grant['role']}: granted by {grant['granted_by']} at seq "
                    f"{grant['seq']} ({grant['ts']}){removed}"
                )
            for key in person["keys"]:
                lines.append("    " + _key_line(key))
            for cert in person.get("certificates", ()):
                lines.append(
                    f"    CA certificate {cert['sha256'][:16]}: {cert['subject']}, serial "
                    f"{cert['serial']}, issuer {cert['issuer']}, valid {cert['not_before']} to "
                    f"{cert['not_after']}; registered by {cert['registered_by']} at seq {cert['seq']}"
                    + (
                        f"; REVOKED by {cert['revoked_by']} at seq {cert['revoked_seq']} "
                        f"({cert['revoked_at']}): {cert['revoke_reason']}"
                        if cert.get("revoked_seq") is not None
                        else ""
                    )
                )
            for form in person.get("signed_forms", ()):
                lines.append(
                    f"    signed the form of {form['request']} (PAdES, pdf sha256 "
                    f"{form['pdf_sha256'][:16]}) at {form['signing_time']}, seq {form['seq']}"
                    + (
                        f"; its CA revoked the certificate afterwards, at {form['ca_revoked_at']}"
                        if form.get("ca_revoked_at")
                        else ""
                    )
                )
            flags = person["flags"]
            if flags["recovery_key_steps"]:
                lines.append(
                    "    FLAG steps signed by a key enrolled by recovery: seq "
                    + _ranges(flags["recovery_key_steps"])
                )
            if flags["admin_with_chain_role"]:
                lines.append("    FLAG admin with a chain role")
            if flags["server_held_key_used"]:
                lines.append(
                    f"    FLAG server-held key used: {flags['server_held_key_used']} step(s), seq "
                    + _ranges(person["server_held_steps"])
                )
        return lines


def _key_line(key: dict[str, Any]) -> str:
    enrolled = f"by {key['enrolled_by']} at seq {key['enrolled_seq']} ({key['enrolled_ts']})"
    confirmed = (
        ""
        if key["method"] == "legacy"
        else f", confirmed at seq {key['confirmed_seq']}"
        if key["confirmed_seq"] is not None
        else ", NOT CONFIRMED"
    )
    revoked = (
        ""
        if key["revoked_seq"] is None
        else f", revoked at seq {key['revoked_seq']} by {key['revoked_by']} ({key['revoke_reason']})"
    )
    rotated = (
        "" if key["rotated_by"] is None else f" approved by key.rotate at seq {key['rotated_by']}"
    )
    return f"key {key['key_id']} {key['kind']} ({key['method']}{rotated}) {enrolled}{confirmed}{revoked}"


def _ranges(seqs: list[int]) -> str:
    """1, 2, 3, 7 -> '1-3, 7'."""
    parts: list[str] = []
    start = prev = None
    for seq in seqs:
        if prev is not None and seq == prev + 1:
            prev = seq
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = seq
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ", ".join(parts)
