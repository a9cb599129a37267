"""Signing for someone: grant and revoke KT./TUQ. mandates, each signed like every step."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from expense_audit.decision import decision_challenge, webauthn_signature_from_json
from expense_audit.errors import WorkflowError
from expense_audit.mandates import local_date
from expense_audit.money import parse_amount
from workflow import policy, queries
from workflow.errors import WrongSecret
from workflow.signatures import PASSKEY, SignatureRefused

from .. import passkey
from ..choices import choices
from ..context import (
    acting_roles,
    db,
    directory,
    login_required,
    me,
    reads_first,
    runtime,
    service,
)
from ..errors import message_for
from ..templating import role_label
from . import bp
from .forms import MandateForm, RevokeForm

_LINE_SPLIT = re.compile(r"[\s,;]+")


def _may_open() -> None:
    """The page is for whoever can hand a role over, or holds a mandate today."""
    if not policy.delegable_roles(current_user.roles) and not acting_roles():
        abort(403)


def _signs_with() -> str:
    key = directory().keyring.active_key(current_user.login)
    return "none" if key is None or key.confirmed_seq is None else key.kind


def _form() -> MandateForm:
    form = MandateForm()
    people = queries.delegates(db(), current_user.login, never=policy.NEVER_DELEGATES)
    form.delegate.choices = choices([("", _("— choose —")), *people])
    form.role.choices = choices(
        (role, role_label(role)) for role in policy.delegable_roles(current_user.roles)
    )
    return form


def _mandate(form: MandateForm) -> dict[str, Any]:
    """The mandate the form describes, as Mandates.prepare_grant takes it."""
    lines = [p.upper() for p in _LINE_SPLIT.split(form.lines.data or "") if p]
    cap = (form.max_amount.data or "").strip()
    return {
        "delegate": form.delegate.data,
        "role": form.role.data,
        "kind": form.kind.data,
        "valid_from": form.valid_from.data,
        "valid_to": form.valid_to.data,
        "lines": lines,
        "max_amount_vnd": parse_amount(cap) if cap else None,
        "comment": form.comment.data,
    }


def _render(form: MandateForm, status: int = 200) -> tuple[str, int]:
    today = local_date(runtime().now())
    granted, held = queries.mandates_of(db(), current_user.login, today)
    return render_template(
        "mandates/page.html",
        form=form,
        granted=granted,
        held=held,
        revoke_form=RevokeForm(formdata=None),
        signs_with=_signs_with(),
    ), status


@bp.get("/mandates")
@login_required
def page() -> tuple[str, int]:
    """Mandates the person granted and holds, and the form to grant a new one."""
    _may_open()
    form = _form()
    today = local_date(runtime().now())
    form.valid_from.data = today
    form.valid_to.data = today + timedelta(days=6)
    return _render(form)


@bp.post("/mandates")
@reads_first
@login_required
def grant() -> Response | tuple[str, int]:
    """Grant a mandate signed with the server-held key (people without a passkey)."""
    _may_open()
    form = _form()
    if not form.validate_on_submit() or not form.secret.data:
        flash(_("Please fill in the mandate and your signing secret."), "error")
        return _render(form, 422)
    user = me()
    try:
        service().mandates.grant(user, form.secret.data, **_mandate(form))
        db().commit()
    except WrongSecret as error:
        passkey.record_failure(user, error, "wrong-secret")
        flash(message_for(error), "error")
        return _render(form, 422)
    except WorkflowError as error:
        db().rollback()
        flash(message_for(error), "error")
        return _render(form, 422)
    flash(_("Mandate signed and recorded."), "success")
    return redirect(url_for(".page"))


@bp.post("/mandates/<int:seq>/revoke")
@reads_first
@login_required
def revoke(seq: int) -> Response | tuple[str, int]:
    """End a mandate early, signed with the server-held key."""
    _may_open()
    form = RevokeForm()
    if not form.validate_on_submit() or not form.secret.data:
        flash(_("Please enter your signing secret."), "error")
        return redirect(url_for(".page"))
    user = me()
    try:
        service().mandates.revoke(user, seq, form.secret.data, form.comment.data)
        db().commit()
    except WrongSecret as error:
        passkey.record_failure(user, error, "wrong-secret")
        flash(message_for(error), "error")
        return redirect(url_for(".page"))
    except WorkflowError as error:
        db().rollback()
        flash(message_for(error), "error")
        return redirect(url_for(".page"))
    flash(_("Mandate revoked."), "success")
    return redirect(url_for(".page"))


def _prepared(decision: dict[str, Any]) -> Response | tuple[Response, int]:
    """The decision, names for what it holds by login and code, and the passkey challenge."""
    key = directory().keyring.signing_key(me())
    if key.kind != PASSKEY:
        return passkey.problem(_("You sign with a signing secret: use the form with it."), 409)
    data = decision["data"]
    mandate = service().mandates.get(int(data["seq"])) if "seq" in data else None
    delegate = data.get("delegate") or (mandate.delegate if mandate else "")
    names = queries.names_of(db(), [delegate])
    return jsonify(
        ok=True,
        decision=decision,
        summary={
            "action": _("Grant a mandate") if "delegate" in data else _("Revoke a mandate"),
            "delegate": names.get(delegate, delegate),
            "role": role_label(str(decision["role"])),
        },
        publicKey=passkey.request_options(key, decision_challenge(decision)),
    )


@bp.post("/mandates/decision")
@login_required
def grant_decision() -> Response | tuple[Response, int]:
    """The mandate.grant decision the passkey will sign (nothing is written or held)."""
    _may_open()
    form = _form()
    if not form.validate_on_submit():
        errors = "; ".join(f"{form[name].label.text}: {e[0]}" for name, e in form.errors.items())
        return passkey.problem(errors or _("Please fill in the mandate."), 422)
    try:
        decision = service().mandates.prepare_grant(me(), **_mandate(form))
    except WorkflowError as error:
        return passkey.refusal(error, 403 if policy.is_forbidden(error) else 422)
    return _prepared(decision)


@bp.post("/mandates/<int:seq>/decision")
@login_required
def revoke_decision(seq: int) -> Response | tuple[Response, int]:
    """The mandate.revoke decision the passkey will sign."""
    _may_open()
    form = RevokeForm()
    if not form.validate_on_submit():
        return passkey.unreadable()
    try:
        decision = service().mandates.prepare_revoke(me(), seq, form.comment.data)
    except WorkflowError as error:
        return passkey.refusal(error, 403 if policy.is_forbidden(error) else 422)
    return _prepared(decision)


@bp.post("/mandates/sign")
@reads_first
@login_required
def sign() -> Response | tuple[Response, int]:
    """Record a grant or a revocation the passkey signed; a refusal writes nothing."""
    _may_open()
    body = passkey.json_body()
    signed, credential = body.get("decision"), body.get("credential")
    if not isinstance(signed, dict) or not isinstance(credential, dict):
        return passkey.unreadable()
    user = me()
    try:
        event = service().mandates.commit(signed, webauthn_signature_from_json(credential), user)
        db().commit()
    except SignatureRefused as error:
        passkey.record_failure(user, error)
        return passkey.refusal(error)
    except WorkflowError as error:
        db().rollback()
        return passkey.refusal(error, 403 if policy.is_forbidden(error) else 422)
    granted = event.action == "mandate.grant"
    flash(_("Mandate signed and recorded.") if granted else _("Mandate revoked."), "success")
    return jsonify(ok=True, redirect=url_for(".page"))
