"""Admin: accounts, roles and signing keys (each change an institution-signed event); failed mail."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response

from expense_audit.certificates import der_from_upload
from workflow import queries
from workflow.mailer import failed_mails
from workflow.models import CaCertificate, User
from workflow.notify import queue_code_mail

from ..context import db, directory, me, reads_first, roles_required, runtime
from ..errors import attempt
from . import bp
from .forms import CodeForm, ConfirmForm, RolesForm, UserForm

MAX_CERTIFICATE = 64 * 1024


@bp.route("/users", methods=["GET", "POST"])
@reads_first
@roles_required("admin")
def users() -> str | Response:
    """Accounts with their roles and keys; create an account."""
    form = UserForm()
    if form.validate_on_submit():
        created = attempt(
            lambda: directory().create_user(
                login=form.login.data,
                name=form.name.data,
                email=form.email.data,
                roles=form.roles.data,
                password=form.password.data,
                signing_secret=None,
                language=form.language.data,
                by=me().login,
            )
        )
        if created:
            message = _(
                "Account %(login)s created. The user chooses a signing secret at first sign-in.",
                login=form.login.data,
            )
            flash(message, "success")
            return redirect(url_for(".users"))
    return render_template(
        "admin/users.html",
        people=queries.people(db()),
        keys=queries.active_keys(db()),
        certificates=_certificates(),
        failures=directory().keyring.failures(limit=30),
        form=form,
        roles_form=RolesForm(),
        confirm=ConfirmForm(),
    )


def _certificates() -> dict[str, list[CaCertificate]]:
    """Each person's registered CA certificates, for the revoke buttons."""
    by_login: dict[str, list[CaCertificate]] = {}
    for cert in db().scalars(select(CaCertificate).order_by(CaCertificate.registered_seq)):
        by_login.setdefault(cert.login, []).append(cert)
    return by_login


def _user(login: str) -> User:
    user = directory().get_user(login)
    if user is None:
        abort(404)
    return user


@bp.post("/users/<login>/roles")
@roles_required("admin")
def set_roles(login: str) -> Response:
    """Grant exactly the chosen roles (an institution-signed event)."""
    form = RolesForm()
    if form.validate_on_submit() and attempt(
        lambda: directory().set_roles(_user(login), form.roles.data, by=me().login)
    ):
        flash(_("Roles of %(login)s saved.", login=login), "success")
    return redirect(url_for(".users"))


@bp.post("/users/<login>/revoke-key")
@roles_required("admin")
def revoke_key(login: str) -> Response:
    """Revoke a user's signing key (lost phone): an institution-signed event naming the admin."""
    if ConfirmForm().validate_on_submit() and attempt(
        lambda: directory().keyring.revoke_by_admin(_user(login), by=me())
    ):
        flash(
            _("Key of %(login)s revoked. Give them a recovery code for a new key.", login=login),
            "success",
        )
    return redirect(url_for(".users"))


@bp.post("/users/<login>/code")
@roles_required("admin")
def issue_code(login: str) -> Response | str:
    """A one-time code for the person to register a key (shown once here; or mailed to them)."""
    form = CodeForm()
    if not form.validate_on_submit():
        return redirect(url_for(".users"))
    user = _user(login)
    issued = attempt(
        lambda: directory().keyring.issue_code(user, by=me(), purpose=form.purpose.data)
    )
    if issued is None:
        return redirect(url_for(".users"))
    if form.send_mail.data:
        attempt(lambda: queue_code_mail(db(), user, issued.value, runtime().settings.base_url))
    return render_template(
        "admin/code.html",
        person=user,
        code=issued.value,
        mailed=form.send_mail.data,
        purpose=form.purpose.data,
    )


@bp.post("/users/<login>/certificate")
@roles_required("admin")
def start_certificate(login: str) -> Response | str:
    """Start registering a person's CA certificate: the code they sign with their token."""
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for(".users"))
    user = _user(login)
    file = request.files.get("certificate")
    raw = file.stream.read(MAX_CERTIFICATE + 1) if file else b""
    if not raw or len(raw) > MAX_CERTIFICATE:
        flash(_("Choose the person's certificate file (.cer, .crt or .pem)."), "error")
        return redirect(url_for(".users"))
    started = attempt(
        lambda: runtime().certificates(db()).start(user, der_from_upload(raw), by=me())
    )
    if started is None:
        return redirect(url_for(".users"))
    return render_template("admin/certificate.html", person=user, nonce=started.value.nonce)


@bp.post("/certificates/<sha256>/revoke")
@roles_required("admin")
def revoke_certificate(sha256: str) -> Response:
    """Revoke a person's registered CA certificate from now on (an institution `cert.revoke`)."""
    if ConfirmForm().validate_on_submit():
        reason = request.form.get("reason", "")
        revoked = attempt(
            lambda: runtime().certificates(db()).revoke(sha256, by=me(), reason=reason)
        )
        if revoked is not None:
            flash(
                _("Certificate revoked: forms signed with it from now on are refused."), "success"
            )
    return redirect(url_for(".users"))


@bp.post("/users/<login>/active")
@roles_required("admin")
def toggle_active(login: str) -> Response:
    """Lock or unlock an account (an institution-signed event naming the admin)."""
    if ConfirmForm().validate_on_submit():
        user = _user(login)
        attempt(lambda: directory().set_active(user, not user.active, by=me()))
    return redirect(url_for(".users"))


@bp.get("/mail")
@roles_required("admin")
def mail() -> str:
    """Mails that could not be delivered."""
    return render_template("admin/mail.html", mails=list(failed_mails(db())))
