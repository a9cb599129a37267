"""Who may see what and who may try what: the one place the views and the CLI ask.

What a step requires (roles, guards, separation of duties) is in the workflow definition and is
checked by ApprovalService.act(); this module holds the access rules around it: which requests a
person may open, which pages they may read, which refusals mean "not yours to do" (HTTP 403).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from expense_audit.definitions import WorkflowDefinition
from expense_audit.errors import NotPermitted, WorkflowError
from expense_audit.mandates import DELEGABLE_ROLES, NEVER_RECEIVE

if TYPE_CHECKING:
    from .service import Current

# Roles that read every submitted request and its signed timeline.
LOG_VIEWERS = frozenset({"reviewer", "approver", "accountant", "auditor", "district_finance"})
# Roles that open the audit page (verification, checkpoints, the bundle).
AUDIT_READERS = ("auditor", "admin", "approver")
# Roles that read the spending dashboard (figures per line, waiting requests, time per state):
# the inspector, the principal who answers for the spending, and the district's finance officer
# (issue 16: the district inspector and finance officer watch the schools' spending). Read-only.
DASHBOARD_READERS = ("auditor", "approver", "district_finance")
# Roles that read the ledger and export it.
LEDGER_READERS = ("accountant", "auditor", "approver")


def is_forbidden(error: WorkflowError) -> bool:
    """A refusal about who acts (a 403), not about what was entered."""
    return isinstance(error, NotPermitted)


def can_view(login: str, roles: Collection[str], current: Current) -> bool:
    """The owner sees their request, drafts included; log viewers see every submitted one."""
    if current.owner == login:
        return True
    return current.projection is not None and bool(LOG_VIEWERS & set(roles))


# Personal data (Nghị định 13/2023/NĐ-CP): a person's tax code and bank account are shown only to
# these roles, to whoever decided on that request, and to its proposer who typed them.
PERSONAL_DATA_READERS = frozenset({"accountant", "auditor"})
# While a request waits for them, the people who may decide on it.
_DECIDERS_WAITING = {
    "submitted": "reviewer",
    "forwarded": "approver",
    "district_review": "district_finance",
}


def can_see_personal_data(login: str, roles: Collection[str], current: Current) -> bool:
    """Whether ``login`` may see the tax code and bank account of a request's individual payee.

    An organisation's tax code and account are public business data: everyone who may open the
    request sees them. A person's are shown to the accountant, auditors, the proposer, the
    reviewer and approver who decided on the request, and whoever may decide on it now.
    """
    projection = current.projection or {}
    if projection.get("payee_kind") != "person" or current.owner == login:
        return True
    if PERSONAL_DATA_READERS & set(roles):
        return True
    if login in (projection.get("forwarded_by"), projection.get("approved_by")):
        return True
    return _DECIDERS_WAITING.get(current.state) in set(roles)


def can_edit(workflow: WorkflowDefinition, login: str, current: Current) -> bool:
    """Only the proposer changes a request, and only in a state the definition marks editable."""
    return (
        current.owner == login and current.draft is not None and workflow.is_editable(current.state)
    )


def needs_signing_key(
    workflow: WorkflowDefinition | Iterable[WorkflowDefinition], roles: Collection[str]
) -> bool:
    """Whoever holds a role that takes signed steps (in any of the workflows) needs a key."""
    workflows = [workflow] if isinstance(workflow, WorkflowDefinition) else list(workflow)
    return any(w.signing_roles & set(roles) for w in workflows)


def may_ever_fire(workflow: WorkflowDefinition, roles: Collection[str], trigger: str) -> bool:
    """Whether any of ``roles`` can fire ``trigger`` from some state (else: not theirs at all)."""
    return bool(workflow.roles_for(trigger) & set(roles))


def delegable_roles(roles: Collection[str]) -> list[str]:
    """The roles of ``roles`` a person may hand over for a while under a mandate (KT./TUQ.)."""
    return [role for role in DELEGABLE_ROLES if role in roles]


# Accounts that never sign in the chain, so never receive a mandate (no admin in the chain).
NEVER_DELEGATES = frozenset(NEVER_RECEIVE)
