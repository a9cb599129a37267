"""The deputy's review queue and the principal's approval queue."""

from __future__ import annotations

from typing import Any

from flask import flash, jsonify, redirect, render_template, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from expense_audit.decision import (
    MAX_BATCH,
    batch_challenge,
    decision_hash,
    webauthn_signature_from_json,
)
from expense_audit.definitions import QueueDef
from expense_audit.errors import WorkflowError
from workflow import policy, queries
from workflow.db import read_first
from workflow.errors import WrongSecret
from workflow.service import Current, projection_of
from workflow.signatures import PASSKEY, SignatureRefused

from .. import passkey
from ..choices import choices
from ..context import db, directory, me, reads_first, roles_required, runtime, service
from ..errors import message_for, reason_for
from ..requests.routes import signing_summary
from . import bp
from .forms import BulkApproveForm


def _queue_def(name: str, workflow: str | None = None) -> QueueDef:
    definitions = runtime().definitions
    return (definitions.workflow(workflow) if workflow else definitions.workflow()).queue(name)


# The district's queue: its state exists only in the workflow of large amounts.
DISTRICT_WORKFLOW = "expense_approval_district"


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
                "refusal": reason_for(refusal) if refusal is not None else None,
                "own": refusal is not None and policy.is_forbidden(refusal),
                "rule": refusal.details.get("rule") if refusal is not None else None,
            }
        )
    return items


@bp.get("/review")
@roles_required("reviewer", acting=True)
def queue() -> str:
    """Submitted requests waiting for review, oldest first."""
    review = _queue_def("review")
    return render_template(
        "review/queue.html",
        items=_queue(review),
        total=queries.waiting_count(db(), review.state),
    )


@bp.get("/district")
@roles_required("district_finance")
def district() -> str:
    """Large requests the principal approved, waiting for the district finance officer."""
    waiting = _queue_def("district", DISTRICT_WORKFLOW)
    return render_template(
        "review/queue.html",
        items=_queue(waiting),
        total=queries.waiting_count(db(), waiting.state),
        heading=_("Waiting for district approval"),
        district=True,
    )


@bp.get("/approvals")
@roles_required("approver", acting=True)
def approvals() -> str:
    """Forwarded requests waiting for the principal."""
    approvals = _queue_def("approvals")
    items = _queue(approvals)
    form = BulkApproveForm()
    form.numbers.choices = choices(
        (i["row"].number, i["row"].number) for i in items if not i["own"] and not i["refusal"]
    )
    key = directory().keyring.active_key(me().login)
    return render_template(
        "review/approvals.html",
        items=items,
        acting=service().mandates.live_for(me().login, ("approver",)),
        form=form,
        signs_with="none" if key is None or key.confirmed_seq is None else key.kind,
        total=queries.waiting_count(db(), approvals.state),
    )


@bp.post("/approvals")
@reads_first
@roles_required("approver", acting=True)
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
        read_first(db())  # each step unlocks the key before it takes the write lock
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


@bp.post("/approvals/decisions")
@roles_required("approver", acting=True)
def approval_decisions() -> tuple[Response, int] | Response:
    """The approve decisions of the ticked requests, and the one batch challenge over them."""
    approvals = _queue_def("approvals")
    body = passkey.json_body()
    numbers = body.get("numbers")
    if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
        return passkey.unreadable()
    numbers = list(dict.fromkeys(numbers))[:MAX_BATCH]
    comment = str(body.get("comment") or "") or None
    user, reader = me(), service()
    decisions, refused = [], []
    for number in numbers:
        try:
            prepared = reader.prepare(number, approvals.trigger, user, comment=comment)
        except WorkflowError as error:
            refused.append({"number": number, "message": message_for(error)})
            continue
        if prepared.key_kind != PASSKEY:
            return passkey.problem(_("You sign with a signing secret: use the form with it."), 409)
        decisions.append(prepared.decision)
    if not decisions:
        return jsonify(
            ok=False, message=_("None of these requests can be approved now."), refused=refused
        ), 422
    key = directory().keyring.signing_key(user)
    hashes = [decision_hash(d) for d in decisions]
    summaries = [signing_summary(d) for d in decisions]
    return jsonify(
        ok=True,
        decisions=decisions,
        summaries=summaries,
        hashes=hashes,
        refused=refused,
        publicKey=passkey.request_options(key, batch_challenge(hashes)),
    )


@bp.post("/approvals/sign")
@reads_first
@roles_required("approver", acting=True)
def approval_sign() -> tuple[Response, int] | Response:
    """Record each decision of a batch the passkey signed once; each in its own transaction."""
    approvals = _queue_def("approvals")
    body = passkey.json_body()
    decisions, credential = body.get("decisions"), body.get("credential")
    if (
        not isinstance(decisions, list)
        or not isinstance(credential, dict)
        or not all(isinstance(d, dict) for d in decisions)
    ):
        return passkey.unreadable()
    try:
        hashes = [decision_hash(d) for d in decisions]
        signature = webauthn_signature_from_json(credential, batch=hashes)
    except WorkflowError as error:
        return passkey.refusal(error, 400)
    user = me()
    approved: list[str] = []
    refused: list[dict[str, str]] = []
    for position, signed in enumerate(decisions):
        number = str(signed.get("request"))
        if signed.get("action") != approvals.trigger:
            refused.append({"number": number, "message": _("This is not an approval.")})
            continue
        read_first(db())  # each step checks the assertion before it takes the write lock
        try:
            service().commit(signed, signature, user)
            db().commit()
            approved.append(number)
        except SignatureRefused as error:
            passkey.record_failure(user, error)
            # One assertion signs the whole batch: if it does not verify, none of the rest will.
            for rest in decisions[position:]:
                refused.append({"number": str(rest.get("request")), "message": message_for(error)})
            break
        except WorkflowError as error:
            db().rollback()
            refused.append({"number": number, "message": message_for(error)})
    if approved:
        flash(_("Approved: %(numbers)s", numbers=", ".join(approved)), "success")
    for item in refused:
        flash(f"{item['number']}: {item['message']}", "error")
    return jsonify(
        ok=bool(approved), approved=approved, refused=refused, redirect=url_for(".approvals")
    )
