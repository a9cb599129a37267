"""The deputy's review queue and the principal's approval queue."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from expense_audit.definitions import QueueDef
from expense_audit.errors import WorkflowError
from workflow import policy, queries
from workflow.errors import WrongSecret
from workflow.service import Current, projection_of

from ..choices import choices
from ..context import db, me, roles_required, runtime, service
from ..errors import message_for
from . import bp
from .forms import BulkApproveForm


def _queue_def(name: str) -> QueueDef:
    return runtime().definitions.workflow().queue(name)


def _queue(queue: QueueDef) -> list[dict[str, Any]]:
    """Requests waiting in the queue's state, oldest first, each with whether its step passes."""
    rows = queries.waiting(db(), queue.state, limit=queries.QUEUE_PAGE)
    names = queries.names_of(db(), [r.owner for r in rows] + [r.forwarded_by for r in rows])
    user = me()
    reader = service()
    reader.remember_budgets()  # one aggregate per budget line for the whole page
    items = []
    for row in rows:
        current = Current(row.number, row.state, row.owner, projection_of(row), None)
        refusal = reader.check_guards(row.number, queue.trigger, user, current=current)
        items.append(
            {
                "row": row,
                "owner_name": names.get(row.owner, row.owner),
                "forwarder_name": names.get(row.forwarded_by or "", row.forwarded_by),
                "status": reader.budget_status(row.school_year, row.line or ""),
                "refusal": message_for(refusal) if refusal is not None else None,
                "own": refusal is not None and policy.is_forbidden(refusal),
            }
        )
    return items


@bp.get("/review")
@roles_required("reviewer")
def queue() -> str:
    """Submitted requests waiting for review, oldest first."""
    review = _queue_def("review")
    return render_template(
        "review/queue.html",
        items=_queue(review),
        total=queries.waiting_count(db(), review.state),
    )


@bp.get("/approvals")
@roles_required("approver")
def approvals() -> str:
    """Forwarded requests waiting for the principal."""
    approvals = _queue_def("approvals")
    items = _queue(approvals)
    form = BulkApproveForm()
    form.numbers.choices = choices(
        (i["row"].number, i["row"].number) for i in items if not i["own"] and not i["refusal"]
    )
    return render_template(
        "review/approvals.html",
        items=items,
        form=form,
        total=queries.waiting_count(db(), approvals.state),
    )


@bp.post("/approvals")
@roles_required("approver")
def approve_many() -> Response | str:
    """Approve several requests with one signing confirmation; each is its own signed event."""
    approvals = _queue_def("approvals")
    form = BulkApproveForm()
    form.numbers.choices = choices((n, n) for n in queries.numbers_in(db(), approvals.state))
    if not form.validate_on_submit():
        flash(_("Choose at least one request and enter your signing secret."), "error")
        return redirect(url_for(".approvals"))
    approved, refused = [], []
    for number in form.numbers.data:
        try:
            service().act(
                number, approvals.trigger, me(), form.secret.data, comment=form.comment.data
            )
            db().commit()
            approved.append(number)
        except WorkflowError as error:
            db().rollback()
            refused.append(f"{number}: {message_for(error)}")
            if isinstance(error, WrongSecret):
                break
    if approved:
        flash(_("Approved: %(numbers)s", numbers=", ".join(approved)), "success")
    for line in refused:
        flash(line, "error")
    return redirect(url_for(".approvals"))
