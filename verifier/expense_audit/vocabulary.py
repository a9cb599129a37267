"""The closed vocabulary definitions may use: roles, guards, effects, recipients, norm kinds."""

from __future__ import annotations

ROLES = ("proposer", "reviewer", "approver", "accountant", "auditor", "admin")
# Roles that take steps in the approval chain; an admin account never holds one of them.
CHAIN_ROLES = ("proposer", "reviewer", "approver", "accountant")
GUARD_NAMES = (
    "actor_is_owner",
    "actor_not_owner",
    "actor_not_forwarder",
    "source_allowed",
    "within_norm",
    "within_allocation",
    "quotes_attached",
    "payment_recorded",
)
# What a transition records beyond its new state (see definitions/expense_approval.toml).
EFFECTS = ("clear_decisions", "record_forwarder", "record_approval", "record_payment")
TONES = ("primary", "danger", "plain")
RECIPIENTS = ("proposer", "reviewers", "approvers", "accountants")
NORM_KINDS = ("per_time", "per_unit", "per_year", "per_years")
LANGUAGES = ("vi", "en")
