"""Staff journey: new request from a phone, my requests, the request page with its signed steps."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import date
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from expense_audit.decision import decision_challenge, webauthn_signature_from_json
from expense_audit.definitions import BudgetCatalogue, WorkflowDefinition
from expense_audit.errors import WorkflowError
from expense_audit.projection import INVOICE_FIELDS, PAPERWORK_FIELDS, content_of
from workflow import dossier, payment_form, policy, queries
from workflow.clock import local_time
from workflow.errors import ConcurrentChange
from workflow.models import CaCertificate, Draft, SignedForm
from workflow.service import Current, draft_content
from workflow.signatures import PASSKEY, SignatureRefused

from .. import MAX_UPLOAD_BYTES, passkey
from ..choices import choices
from ..context import (
    db,
    directory,
    login_required,
    me,
    reads_first,
    roles_now,
    roles_required,
    runtime,
    service,
    visible_request,
)
from ..errors import attempt, message_for, reason_for
from ..uploads import UploadRefused, path_for, storage_dir, store, temporary_path
from . import bp
from .forms import ActionForm, PayForm, RemoveAttachmentForm, RequestForm

HOME_BY_ROLE = (
    ("reviewer", "review.queue"),
    ("approver", "review.approvals"),
    ("accountant", "ledger.payments"),
    ("district_finance", "review.district"),
    ("auditor", "audit.status"),
    ("proposer", "requests.mine"),
    ("admin", "admin.users"),
)


@bp.get("/")
@login_required
def home() -> Response:
    """Send each person to where their work is (first, to register a key if they sign)."""
    signs = policy.needs_signing_key(runtime().definitions.workflows.values(), current_user.roles)
    key = runtime().directory(db()).active_key(current_user.login) if signs else None
    if signs and (key is None or key.confirmed_seq is None):
        flash(_("Register your passkey first: every step you take is signed with it."), "warning")
        return redirect(url_for("auth.signing_key"))
    for role, endpoint in HOME_BY_ROLE:
        if current_user.has_role(role):
            return redirect(url_for(endpoint))
    abort(403)


@bp.get("/requests/mine")
@roles_required("proposer")
def mine() -> str:
    """My drafts and requests, newest first."""
    items = queries.my_requests(db(), current_user.login)
    return render_template("requests/mine.html", items=items)


def _line_choices(form: RequestForm, catalogue: BudgetCatalogue) -> dict[str, Any]:
    lang = "en" if current_user.language == "en" else "vi"
    form.line.choices = choices(
        [("", _("— choose —"))] + [(c, ln.name[lang]) for c, ln in catalogue.lines.items()]
    )
    form.source.choices = choices((c, n[lang]) for c, n in catalogue.sources.items())
    form.budget_year.choices = choices((y, str(y)) for y in catalogue.budget_years)
    status = {
        code: service().budget_status(catalogue.school_year, code) for code in catalogue.lines
    }
    return {"catalogue": catalogue, "status": status}


def _content_from(form: RequestForm, catalogue: Any) -> dict[str, Any]:
    line = catalogue.lines.get(form.line.data)
    content: dict[str, Any] = {
        "title": form.title.data,
        "description": form.description.data or "",
        "line": form.line.data,
        "source": form.source.data,
        "budget_year": form.budget_year.data,
    }
    if line is not None and line.norm.kind == "per_unit":
        content["quantity"] = form.quantity.data or 1
        if form.unit_price.data:
            content["unit_price_vnd"] = form.unit_price.data
    elif form.amount.data:
        content["amount"] = form.amount.data
    for name in PAPERWORK_FIELDS:
        value = getattr(form, name).data
        content[name] = value.isoformat() if isinstance(value, date) else (value or None)
    return content


def _store_uploads(form: RequestForm) -> list[dict[str, Any]]:
    stored = []
    for upload in form.attachments.data or []:
        if not getattr(upload, "filename", ""):
            continue
        try:
            stored.append(store(upload.stream, upload.filename, limit=MAX_UPLOAD_BYTES))
        except UploadRefused as refusal:
            raise WorkflowError(_refusal_text(refusal, upload.filename)) from None
    return stored


def _flash_saved(draft: Draft, saved: str) -> None:
    """Saved; and if the norm or the allocation refuses it, say so now, not at signing time."""
    refusal = service().budget_refusal(draft.school_year, draft_content(draft))
    if refusal is None:
        flash(saved, "success")
    else:
        flash(
            _(
                "%(saved)s It cannot be submitted as it is: %(reason)s",
                saved=saved,
                reason=reason_for(refusal),
            ),
            "warning",
        )


def _refusal_text(refusal: UploadRefused, name: str) -> str:
    texts: dict[str, str] = {
        "empty": _("The file %(name)s is empty.", name=name),
        "too_large": _("The file %(name)s is larger than 10 MB.", name=name),
        "type": _("The file %(name)s is not a JPEG, PNG, HEIC, WebP photo or a PDF.", name=name),
    }
    return texts.get(str(refusal), str(refusal))


@bp.route("/requests/new", methods=["GET", "POST"])
@roles_required("proposer")
def new() -> str | Response | tuple[str, int]:
    """A new request, saved as a draft; submitted (signed) from its page."""
    form = RequestForm()
    catalogue = service().catalogue_in_force()
    extra = _line_choices(form, catalogue)
    if request.method == "GET":
        form.budget_year.data = catalogue.default_budget_year(runtime().now().date())
    if form.validate_on_submit():
        created = attempt(
            lambda: service().create_draft(
                me(),
                school_year=catalogue.school_year,
                attachments=_store_uploads(form),
                **_content_from(form, extra["catalogue"]),
            )
        )
        if created:
            message = _(
                "Draft %(number)s saved. Check it, then submit it: you sign it as you send it.",
                number=created.value.number,
            )
            _flash_saved(created.value, message)
            return redirect(url_for(".detail", number=created.value.number))
    return render_template(
        "requests/form.html", form=form, editing=None, **extra
    ), 200 if request.method == "GET" or form.errors == {} else 422


@bp.route("/requests/<reqno:number>/edit", methods=["GET", "POST"])
@roles_required("proposer")
def edit(number: str) -> str | Response:
    """Revise a draft or a returned request (its owner only)."""
    current = visible_request(number)
    if current.owner != current_user.login:
        abort(403)
    if current.draft is None or not policy.can_edit(workflow(), current_user.login, current):
        flash(_("This request can no longer be changed."), "error")
        return redirect(url_for(".detail", number=number))
    form = RequestForm(obj=None)
    extra = _line_choices(form, runtime().definitions.catalogue(current.draft.school_year))
    if request.method == "GET":
        draft = current.draft
        form.title.data, form.description.data, form.line.data = (
            draft.title,
            draft.description,
            draft.line,
        )
        form.source.data, form.budget_year.data, form.quantity.data = (
            draft.source,
            draft.budget_year,
            draft.quantity,
        )
        form.amount.data = f"{draft.amount_vnd:,}".replace(",", ".") if draft.amount_vnd else ""
        form.unit_price.data = (
            f"{draft.unit_price_vnd:,}".replace(",", ".") if draft.unit_price_vnd else ""
        )
        for name in PAPERWORK_FIELDS:
            value = getattr(draft, name)
            getattr(form, name).data = (
                date.fromisoformat(value) if name == "invoice_date" and value else value or ""
            )
    if form.validate_on_submit():
        draft = current.draft
        saved = attempt(
            lambda: service().update_draft(
                number,
                me(),
                attachments=list(draft.attachments or []) + _store_uploads(form),
                **_content_from(form, extra["catalogue"]),
            )
        )
        if saved:
            _flash_saved(saved.value, _("Changes saved."))
            return redirect(url_for(".detail", number=number))
    return render_template("requests/form.html", form=form, editing=current, **extra)


@bp.post("/requests/sync")
@roles_required("proposer")
def sync() -> tuple[dict[str, Any], int]:
    """Save a draft kept on a phone; a retried sync (same phone id) updates the same draft."""
    form = RequestForm()
    catalogue = service().catalogue_in_force()
    _line_choices(form, catalogue)
    if not form.validate_on_submit():
        errors = {name: [str(m) for m in messages] for name, messages in form.errors.items()}
        return {"message": _("Some fields need attention."), "errors": errors}, 422
    try:
        draft = service().sync_draft(
            me(),
            client_id=request.form.get("client_id", ""),
            school_year=catalogue.school_year,
            **_content_from(form, catalogue),
        )
        db().commit()
    except WorkflowError as error:
        db().rollback()
        return {"message": message_for(error)}, 422
    if request.form.get("announce"):  # the phone shows the draft's page next
        message = _(
            "Draft %(number)s saved. Check it, then submit it: you sign it as you send it.",
            number=draft.number,
        )
        _flash_saved(draft, message)
    return _synced(draft.number, draft.attachments), 200


@bp.post("/requests/<reqno:number>/attachments")
@roles_required("proposer")
def upload(number: str) -> tuple[dict[str, Any], int]:
    """Attach one file to a draft; a retried upload of the same file (sha256) is kept once."""
    current = visible_request(number)
    if current.owner != current_user.login:
        abort(403)
    file = request.files.get("file")
    if file is None or current.draft is None:
        abort(400)
    data = file.stream.read(MAX_UPLOAD_BYTES + 1)
    known = {a.get("sha256") for a in current.draft.attachments or []}
    try:
        if hashlib.sha256(data).hexdigest() not in known:
            stored = store(io.BytesIO(data), file.filename or "", limit=MAX_UPLOAD_BYTES)
            draft = service().attach(number, me(), stored)
            db().commit()
        else:
            draft = current.draft
    except UploadRefused as refusal:
        return {"message": _refusal_text(refusal, file.filename or "")}, 422
    except WorkflowError as error:
        db().rollback()
        return {"message": message_for(error)}, 422
    return _synced(number, draft.attachments), 200


def _synced(number: str, attachments: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {
        "number": number,
        "url": url_for(".detail", number=number),
        "attachments": [a.get("sha256") for a in attachments or []],
    }


@bp.post("/requests/<reqno:number>/attachments/remove")
@roles_required("proposer")
def remove_attachment(number: str) -> Response:
    """Remove an attachment from a draft or returned request."""
    current = visible_request(number)
    form = RemoveAttachmentForm()
    if current.owner != current_user.login:
        abort(403)
    if form.validate_on_submit() and current.draft is not None:
        kept = [a for a in current.draft.attachments if a.get("sha256") != form.sha256.data]
        attempt(lambda: service().update_draft(number, me(), attachments=kept))
    return redirect(url_for(".edit", number=number))


@bp.get("/requests/<reqno:number>/attachments/<sha256>")
@login_required
def attachment(number: str, sha256: str) -> Response:
    """Download an attachment of a request the user may see."""
    current = visible_request(number)
    content = current.projection or (draft_content(current.draft) if current.draft else {})
    known = {a["sha256"]: a for a in content.get("attachments") or []}
    if current.draft is not None and current.owner == current_user.login:
        known.update({a["sha256"]: a for a in current.draft.attachments or []})
    record = known.get(sha256)
    if record is None:
        abort(404)
    path = path_for(sha256)
    if not path.exists():
        abort(404)
    inline = record.get("type", "").startswith("image/") and record.get("type") != "image/heic"
    return send_file(
        path,
        mimetype=record.get("type") or "application/octet-stream",
        as_attachment=not inline,
        download_name=record.get("name") or sha256,
        max_age=0,
    )


def workflow(current: Current | None = None) -> WorkflowDefinition:
    """The workflow a request follows (the one its submission chose), or the default one."""
    if current is None:
        return runtime().definitions.workflow()
    return service().workflow_of(current)


def available_actions(current: Current) -> tuple[list[Any], list[str]]:
    """Transitions the user could take now, and notes on the ones they may not take."""
    user = me()
    actions, notes = [], []
    seen: set[str] = set()
    for transition in workflow(current).triggers_from(current.state):
        if transition.trigger in seen or not set(transition.roles) & roles_now():
            continue
        seen.add(transition.trigger)
        refusal = service().check_guards(current.number, transition.trigger, user)
        if refusal is not None and policy.is_forbidden(refusal):
            note = reason_for(refusal)
            # Not theirs to propose: say nothing; and each reason once, not once per step.
            if refusal.details.get("rule") != "actor_is_owner" and note not in notes:
                notes.append(note)
            continue
        if refusal is not None and refusal.code == "data_invalid":
            refusal = None  # the form asks for that data (payment details); nothing wrong yet
        actions.append((transition, None if refusal is None else reason_for(refusal)))
    return actions, notes


def _grouped(amount: int | None) -> str:
    return f"{amount:,}".replace(",", ".") if amount else ""


def _content_shown(current: Current) -> tuple[dict[str, Any], bool]:
    """What the page shows: to the proposer of an editable request, the saved draft (what she
    will sign), flagged when it differs from what was signed; to everyone else the signed content."""
    signed = content_of(current.projection) if current.projection else None
    if current.draft is not None and policy.can_edit(workflow(), current_user.login, current):
        draft = draft_content(current.draft)
        return draft, signed is not None and any(queries.differences(signed, draft))
    return (signed if signed is not None else draft_content(current.draft)), False  # type: ignore[arg-type]


def _revision(current: Current, content: dict[str, Any]) -> queries.Revision | None:
    """Changes since the request was last sent back (for proposer, reviewer and principal)."""
    if current.projection is None:
        return None
    flow = workflow(current)
    sent_back_to = {n for n, s in flow.states.items() if s.editable and n != flow.initial}
    return queries.changes_since_returned(
        db(), current.number, sent_back_to=sent_back_to, content=content
    )


def render_detail(
    number: str, *, form: ActionForm | None = None, status: int = 200
) -> tuple[str, int]:
    current = visible_request(number)
    content, unsigned = _content_shown(current)
    catalogue = runtime().definitions.catalogues.get(number.split("/")[0])
    line = catalogue.lines.get(str(content.get("line"))) if catalogue else None
    actions, notes = available_actions(current)
    events = queries.timeline(db(), number)
    waiting = queries.seconds_since(events[-1].ts, runtime().now()) if events else None
    key = directory().keyring.active_key(current_user.login)
    signs_with = "none" if key is None or key.confirmed_seq is None else key.kind
    return render_template(
        "requests/detail.html",
        workflow=workflow(current),
        current=current,
        content=content,
        line=line,
        catalogue=catalogue,
        status=service().budget_status(number.split("/")[0], str(content.get("line")))
        if line
        else None,
        events=events,
        waiting=waiting,
        actions=actions,
        notes=notes,
        form=form or ActionForm(),
        pay_form=PayForm(
            formdata=None,
            paid_on=runtime().now().date(),
            amount_paid=_grouped(content.get("amount_vnd")),
        ),
        owner=queries.user(db(), current.owner),
        unsigned=unsigned,
        revision=_revision(current, content),
        can_edit=policy.can_edit(workflow(), current_user.login, current),
        personal=policy.can_see_personal_data(current_user.login, current_user.roles, current),
        remove_form=RemoveAttachmentForm(),
        signs_with=signs_with,
        signed_forms=_signed_forms(number),
    ), status


def _signed_forms(number: str) -> list[dict[str, str]]:
    """The request's forms signed with a CA certificate: who, which CA, when."""
    registry = runtime().certificates(db())
    rows = registry.signed_forms(number)
    names = queries.names_of(db(), [r.login for r in rows])
    shown = []
    for row in rows:
        cert = registry.get(row.cert_sha256)
        issuer = cert.issuer if cert else ""
        ca = next((p[3:] for p in issuer.split(",") if p.startswith("CN=")), issuer)
        shown.append(
            {
                "name": names.get(row.login, row.login),
                "ca": ca,
                "when": local_time(row.signing_time),
                "sha256": row.pdf_sha256,
                # Revoked after this signature, in the log or by the CA (a CRL in the file).
                "revoked": local_time(min(revoked)) if (revoked := _revocations(row, cert)) else "",
            }
        )
    return shown


def _revocations(row: SignedForm, cert: CaCertificate | None) -> list[str]:
    """When the certificate of a signed form was revoked after it was signed, if it was."""
    return [t for t in (row.ca_revoked_at, cert.revoked_at if cert else None) if t]


def form_bytes(current: Current) -> bytes:
    """The form as the signed-in person downloads it: the same bytes until the next step."""
    rt = runtime()
    form = payment_form.gather(
        db(),
        current.number,
        catalogue=rt.definitions.catalogue(current.number.split("/")[0]),
        fingerprint=rt.institution.fingerprint,
        base_url=rt.settings.base_url,
        hide_personal=not policy.can_see_personal_data(
            current_user.login, current_user.roles, current
        ),
    )
    return payment_form.render(form)


@bp.get("/requests/<reqno:number>/form.pdf")
@login_required
def form_pdf(number: str) -> Response:
    """The payment request form (giấy đề nghị thanh toán) with its signatures, as a PDF."""
    current = visible_request(number)
    if current.projection is None:
        abort(404)  # a draft has nothing signed to print
    response = Response(form_bytes(current), mimetype="application/pdf")
    name = "de-nghi-thanh-toan-" + number.replace("/", "-") + ".pdf"
    response.headers["Content-Disposition"] = f'inline; filename="{name}"'
    return response


@bp.get("/requests/<reqno:number>/dossier.zip")
@roles_required("accountant", "auditor")
def dossier_zip(number: str) -> Response:
    """The payment dossier of a paid request, for filing and for offline checking."""
    current = visible_request(number)
    if current.state != "paid":
        abort(404)
    rt = runtime()
    form = payment_form.gather(
        db(),
        number,
        catalogue=rt.definitions.catalogue(number.split("/")[0]),
        fingerprint=rt.institution.fingerprint,
        base_url=rt.settings.base_url,
    )
    path = temporary_path(".zip")
    dossier.write_dossier(
        db(),
        number,
        path,
        form_pdf=payment_form.render(form),
        institution=rt.institution,
        now=rt.now(),
        attachments_dir=storage_dir(),
    )
    db().commit()  # keeps the checkpoint the dossier is proved against
    name = "ho-so-thanh-toan-" + number.replace("/", "-") + ".zip"
    response = send_file(path, as_attachment=True, download_name=name, mimetype="application/zip")
    response.call_on_close(lambda: path.unlink(missing_ok=True))
    return response


@bp.get("/requests/<reqno:number>")
@login_required
def detail(number: str) -> tuple[str, int]:
    """A request: its content, budget status, timeline and the steps the user may sign."""
    return render_detail(number)


@bp.post("/requests/<reqno:number>/act")
@reads_first
@login_required
def act(number: str) -> Response | tuple[str, int]:
    """Take a signed step; a refusal writes nothing and says why."""
    current = visible_request(number)
    trigger = request.form.get("trigger", "")
    if not policy.may_ever_fire(workflow(current), roles_now(), trigger):
        abort(403)  # no role of this user can ever take this step
    transition = workflow(current).find(current.state, trigger)
    records_payment = transition is not None and transition.has("record_payment")
    form: ActionForm = PayForm() if records_payment else ActionForm()
    if not form.validate_on_submit():
        flash(_("Please fill in the signing secret (and the payment details)."), "error")
        return render_detail(number, form=form, status=422)
    data = None
    if isinstance(form, PayForm):
        data = {
            "voucher": form.voucher.data,
            "paid_on": form.paid_on.data,
            "amount_paid_vnd": form.amount_paid.data,
            "invoice_number": form.invoice_number.data,
            "invoice_series": form.invoice_series.data,
            "invoice_date": form.invoice_date.data,
        }
    expected_text = form.expected_seq.data or ""
    expected = int(expected_text) if re.fullmatch(r"[0-9]{1,12}", expected_text) else None
    try:
        service().act(
            number,
            form.trigger.data,
            me(),
            form.secret.data,
            comment=form.comment.data,
            data=data,
            expected_seq=expected if current.projection is not None else None,
        )
        db().commit()
    except ConcurrentChange as error:
        db().rollback()
        flash(message_for(error), "warning")
        return redirect(url_for(".detail", number=number))
    except WorkflowError as error:
        db().rollback()
        if policy.is_forbidden(error):
            abort(403, description=message_for(error))
        flash(message_for(error), "error")
        form.secret.data = ""
        return render_detail(number, form=form, status=422)
    flash(_("Signed and recorded."), "success")
    return redirect(url_for(".detail", number=number))


def _payment_fields(body: dict[str, Any]) -> dict[str, Any] | None:
    """The payment details a `pay` step records (as typed; the service checks them)."""
    if not any(body.get(name) for name in ("voucher", "paid_on", "amount_paid")):
        return None
    return {
        "voucher": str(body.get("voucher") or ""),
        "paid_on": str(body.get("paid_on") or ""),
        "amount_paid_vnd": str(body.get("amount_paid") or ""),
        # issue 13: the invoice entered at payment, if any
        **{name: str(body.get(name) or "") or None for name in INVOICE_FIELDS},
    }


def signing_summary(decision: dict[str, Any]) -> dict[str, Any]:
    """Names for what the decision holds by code: the action, the budget line, the source."""
    named = runtime().definitions.by_hash.get(str(decision.get("definition")))
    flow = named if isinstance(named, WorkflowDefinition) else workflow()
    content = (decision.get("data") or {}).get("content") or {}
    catalogue = runtime().definitions.catalogues.get(str(decision.get("request")).split("/")[0])
    line = catalogue.lines.get(str(content.get("line"))) if catalogue else None
    source = catalogue.sources.get(str(content.get("source"))) if catalogue else None
    lang = "en" if current_user.language == "en" else "vi"
    return {
        "action": flow.label_of(str(decision["action"]))[lang],
        "line": line.name[lang] if line else content.get("line"),
        "source": source[lang] if source else content.get("source"),
        "to": flow.states[decision["to"]].label[lang] if decision.get("to") in flow.states else "",
    }


@bp.post("/requests/<reqno:number>/decision")
@login_required
def decision(number: str) -> tuple[Response, int] | Response:
    """The decision the user's passkey will sign for this step (nothing is written or held)."""
    current = visible_request(number)
    body = passkey.json_body()
    trigger = str(body.get("trigger") or "")
    if not policy.may_ever_fire(workflow(current), roles_now(), trigger):
        return passkey.problem(_("You may not do this."), 403)
    expected = body.get("expected_seq")
    try:
        prepared = service().prepare(
            number,
            trigger,
            me(),
            comment=str(body.get("comment") or "") or None,
            data=_payment_fields(body),
            expected_seq=expected
            if isinstance(expected, int) and current.projection is not None
            else None,
        )
    except WorkflowError as error:
        concurrent = isinstance(error, ConcurrentChange)
        status = 403 if policy.is_forbidden(error) else 409 if concurrent else 422
        return passkey.refusal(error, status)
    if prepared.key_kind != PASSKEY:
        return passkey.problem(_("You sign with a signing secret: use the form with it."), 409)
    key = directory().keyring.signing_key(me())
    return jsonify(
        ok=True,
        decision=prepared.decision,
        summary=signing_summary(prepared.decision),
        publicKey=passkey.request_options(key, decision_challenge(prepared.decision)),
    )


@bp.post("/requests/<reqno:number>/sign")
@reads_first
@login_required
def sign(number: str) -> tuple[Response, int] | Response:
    """Record a step the user's passkey signed; a refusal writes nothing and says why."""
    visible_request(number)
    body = passkey.json_body()
    signed, credential = body.get("decision"), body.get("credential")
    if not isinstance(signed, dict) or not isinstance(credential, dict):
        return passkey.unreadable()
    if signed.get("request") != number:
        return passkey.problem(_("What was signed is about another request."), 422)
    user = me()
    try:
        service().commit(signed, webauthn_signature_from_json(credential), user)
        db().commit()
    except ConcurrentChange as error:
        db().rollback()
        return passkey.refusal(error, 409)
    except SignatureRefused as error:
        passkey.record_failure(user, error)
        return passkey.refusal(error)
    except WorkflowError as error:
        db().rollback()
        return passkey.refusal(error, 403 if policy.is_forbidden(error) else 422)
    flash(_("Signed and recorded."), "success")
    return jsonify(ok=True, redirect=url_for(".detail", number=number))
