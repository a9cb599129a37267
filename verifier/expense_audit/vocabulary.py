"""The closed vocabulary definitions may use: roles, guards, effects, recipients, norm kinds."""

from __future__ import annotations

# district_finance: an officer of the district's finance office (Phòng Tài chính – Kế hoạch) who
# holds an account at the school and signs the extra step that large amounts take (see
# definitions/expense_approval_district.toml); not a member of the school's staff.
ROLES = (
    "proposer",
    "reviewer",
    "approver",
    "accountant",
    "auditor",
    "admin",
    "district_finance",
)
# Roles that take steps in the approval chain; an admin account never holds one of them.
CHAIN_ROLES = ("proposer", "reviewer", "approver", "accountant", "district_finance")
GUARD_NAMES = (
    "actor_is_owner",
    "actor_not_owner",
    "actor_not_forwarder",
    "actor_not_approver",
    "source_allowed",
    "within_norm",
    "within_allocation",
    "quotes_attached",
    "payment_recorded",
)
# What a transition records beyond its new state (see definitions/expense_approval.toml).
# choose_workflow: the step (the submission) picks the workflow the request follows from then on,
# by the catalogue's dated [[workflow_rules]] in force on its local date and the amount.
EFFECTS = (
    "clear_decisions",
    "record_forwarder",
    "record_approval",
    "record_payment",
    "choose_workflow",
)
TONES = ("primary", "danger", "plain")
RECIPIENTS = ("proposer", "reviewers", "approvers", "accountants", "district_officers")
NORM_KINDS = ("per_time", "per_unit", "per_year", "per_years")
LANGUAGES = ("vi", "en")
