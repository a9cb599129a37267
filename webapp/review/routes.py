"""The deputy's review queue and the principal's approval queue."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from expense_audit.errors import WorkflowError
from workflow.models import Request, User
from workflow.service import Current, projection_of

from ..choices import choices
from ..context import db, me, roles_required, service
from ..errors import is_forbidden, message_for
from . import bp
from .forms import BulkApproveForm

QUEUE_PAGE = 50  # the oldest first; acting on them brings the next ones up


def waiting_count(state: str) -> int:
    return int(
        db().scalar(select(func.count()).select_from(Request).where(Request.state == state)) or 0
    )


def _queue(state: str, trigger: str) -> list[dict[str, Any]]:
    """Requests waiting in ``state``, oldest first, each with whether ``trigger`` would pass now."""
    rows = (
        db()
        .scalars(
            select(Request)
            .where(Request.state == state)
            .order_by(Request.updated_at, Request.number)
            .limit(QUEUE_PAGE)
        )
        .all()
    )
    names = {u.login: u.name for u in db().scalars(select(User))}
    user = me()
    reader = service()
    reader.remember_budgets()  # one aggregate per budget line for the whole page
    items = []
    for row in rows:
        current = Current(row.number, row.state, row.owner, projection_of(row), None)
        refusal = reader.check_guards(row.number, trigger, user, current=current)
        items.append(
            {
                "row": row,
                "owner_name": names.get(row.owner, row.owner),
                "forwarder_name": names.get(row.forwarded_by or "", row.forwarded_by),
                "status": reader.budget_status(row.school_year, row.line or ""),
                "refusal": message_for(refusal) if refusal is not None else None,
                "own": refusal is not None and is_forbidden(refusal),
            }
        )
    return items


@bp.get("/review")
@roles_required("reviewer")
def queue() -> str:
    """Submitted requests waiting for review, oldest first."""
    return render_template(
        "review/queue.html", items=_queue("submitted", "forward"), total=waiting_count("submitted")
    )


@bp.get("/approvals")
@roles_required("approver")
def approvals() -> str:
    """Forwarded requests waiting for the principal."""
    items = _queue("forwarded", "approve")
    form = BulkApproveForm()
    form.numbers.choices = choices(
        (i["row"].number, i["row"].number) for i in items if not i["own"] and not i["refusal"]
    )
    return render_template(
        "review/approvals.html", items=items, form=form, total=waiting_count("forwarded")
    )


@bp.post("/approvals")
@roles_required("approver")
def approve_many() -> Response | str:
    """Approve several requests with one signing confirmation; each is its own signed event."""
    form = BulkApproveForm()
    form.numbers.choices = choices(
        (n, n) for n in db().scalars(select(Request.number).where(Request.state == "forwarded"))
    )
    if not form.validate_on_submit():
        flash(_("Choose at least one request and enter your signing secret."), "error")
        return redirect(url_for(".approvals"))
    approved, refused = [], []
    for number in form.numbers.data:
        try:
            service().act(number, "approve", me(), form.secret.data, comment=form.comment.data)
            db().commit()
            approved.append(number)
        except WorkflowError as error:
            db().rollback()
            refused.append(f"{number}: {message_for(error)}")
            if error.code == "wrong_secret":
                break
    if approved:
        flash(_("Approved: %(numbers)s", numbers=", ".join(approved)), "success")
    for line in refused:
        flash(line, "error")
    return redirect(url_for(".approvals"))
