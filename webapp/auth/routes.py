"""Sign in and out, password, language, and the user's own signing key."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from webauthn import generate_registration_options, options_to_json
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from werkzeug.wrappers import Response

from expense_audit.decision import decision_challenge, webauthn_signature_from_json
from expense_audit.errors import DataInvalid, WorkflowError
from expense_audit.webauthn import b64url_decode
from workflow import queries
from workflow.errors import WrongSecret
from workflow.models import SigningKey, User
from workflow.passkeys import SUPPORTED_ALGORITHMS, RegisteredPasskey, spki_from_registration
from workflow.signatures import PASSKEY, SERVER_HELD, SignatureRefused
from workflow.signin import Limits, LoginThrottled, SignIn

from .. import passkey, session_identifier
from ..context import Account, db, directory, login_required, me, reads_first, runtime
from ..errors import attempt
from ..extensions import login_manager
from ..ops.metrics import count_refusal
from ..params import parse_int
from . import bp
from .forms import LanguageForm, LoginForm, PasskeyForm, PasswordForm, SigningSecretForm


def load_user(user_id: str) -> Account | None:
    """Reload the account of a session; ended, expired and inactive sessions are signed out.

    1. The session must carry the account's current session epoch: signing out and a new
       password move the epoch on, so an old cookie replayed later finds no one.
    2. The session must be younger than SESSION_ABSOLUTE_LIFETIME, however active it was.
    """
    from workflow.models import User

    number = parse_int(user_id)
    user = db().get(User, number) if number is not None else None
    if user is None or not user.active or session.get("epoch") != user.session_epoch:
        return None
    # NOTE: flask-login's "strong" mode only marks a *permanent* session as not fresh when the
    # address or browser changes; here the session ends, as strong protection promises.
    if login_manager.session_protection == "strong" and session.get("_id") != session_identifier():
        return None
    signed_in = session.get("signed_in_at")
    lifetime = float(current_app.config["SESSION_ABSOLUTE_LIFETIME"])
    if not isinstance(signed_in, int | float) or time.time() - signed_in > lifetime:
        return None
    return Account.of(user)


def safe_next(target: str) -> str:
    """A path on this site to go to after signing in; anything else goes home.

    NOTE: browsers drop tabs and newlines inside URLs and read a backslash as a slash, so
    "/\\t/evil.example" would become "//evil.example": such characters are refused outright.
    """
    if (
        not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 32 or ord(c) == 127 for c in target)
    ):
        return url_for("requests.home")
    parts = urlsplit(target)
    # Under a multi-school deployment this app answers below /s/<code>: another school's pages
    # are no place to land after signing in here.
    root = request.script_root
    if root and not (target == root or target.startswith(root + "/")):
        return url_for("requests.home")
    return target if not parts.scheme and not parts.netloc else url_for("requests.home")


login_manager.user_loader(load_user)

# Pages a person may open before replacing the password the admin chose for them.
_BEFORE_NEW_PASSWORD = {"auth.password", "auth.logout", "auth.language", "auth.login", "static"}


@bp.before_app_request
def require_own_password() -> Response | None:
    """First sign-in (or after an admin's reset): change the admin-chosen password first."""
    if (
        current_user.is_authenticated
        and getattr(current_user, "must_change_password", False)
        and request.endpoint not in _BEFORE_NEW_PASSWORD
        and request.endpoint is not None
    ):
        if request.method == "GET":
            flash(_("Choose your own password first: the admin chose this one."), "warning")
        return redirect(url_for("auth.password"))
    return None


def _sign_in() -> SignIn:
    config = current_app.config
    limits = Limits(
        per_account=int(config["LOGIN_FAILURES_PER_ACCOUNT"]),
        per_address=int(config["LOGIN_FAILURES_PER_ADDRESS"]),
        window=timedelta(minutes=int(config["LOGIN_WINDOW_MINUTES"])),
        tries_per_minute=int(config["LOGIN_TRIES_PER_MINUTE"]),
    )
    return SignIn(db(), limits=limits, clock=runtime().clock)


@bp.route("/login", methods=["GET", "POST"])
@reads_first
def login() -> str | Response | tuple[str, int]:
    """Sign in with login and password."""
    if current_user.is_authenticated:
        return redirect(url_for("requests.home"))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = _sign_in().authenticate(
                form.login.data, form.password.data, address=request.remote_addr or ""
            )
        except LoginThrottled as error:
            db().rollback()
            count_refusal(error.code)
            flash(_("Too many failed sign-ins. Try again in %(n)s minutes.", n=error.minutes))
            return render_template("auth/login.html", form=form), 429
        db().commit()
        if user is not None:
            # A fresh session: nothing from before signing in (a CSRF token planted by someone
            # else, say) survives it; only the chosen language does.
            language = session.get("lang")
            session.clear()
            if language:
                session["lang"] = language
            login_user(Account.of(user))
            session["epoch"] = user.session_epoch
            session["signed_in_at"] = int(time.time())
            session.permanent = True
            return redirect(safe_next(request.args.get("next", "")))
        flash(_("Wrong login or password."), "error")
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@login_required
def logout() -> Response:
    """Sign out: every session of the account ends on the server, not only this cookie."""
    me().session_epoch += 1
    db().commit()
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@reads_first
@login_required
def password() -> str | Response:
    """Change your password; your other sessions end."""
    form = PasswordForm()
    user = me()
    if form.validate_on_submit():
        checked = user.password_hash  # the new hash runs before the write lock (read_first)
        if not directory().check_password(user, form.current.data):
            flash(_("Wrong password."), "error")
        elif attempt(lambda: directory().set_password(user, form.new.data, checked_hash=checked)):
            session["epoch"] = user.session_epoch  # this session goes on
            flash(_("Password changed. Your other sessions have been signed out."), "success")
            return redirect(url_for("requests.home"))
    return render_template("auth/password.html", form=form)


@bp.post("/language")
def language() -> Response:
    """Switch the interface language; remembered on the account."""
    form = LanguageForm()
    if form.validate_on_submit():
        session["lang"] = form.language.data
        if current_user.is_authenticated:
            me().language = form.language.data
            db().commit()
            current_user.language = form.language.data
    target = request.referrer or url_for("requests.home")
    return redirect(target if target.startswith(request.host_url) else url_for("requests.home"))


@bp.route("/signing-key", methods=["GET", "POST"])
@reads_first
@login_required
def signing_key() -> str | Response:
    """Register a passkey (the normal way); or, without a passkey device, a server-held key:
    with the admin's one-time code, or a new secret signed off by the current one (rotation)."""
    form = SigningSecretForm()
    user = me()
    keyring = directory().keyring
    key = keyring.active_key(user.login)
    if form.validate_on_submit():
        if not directory().check_password(user, form.password.data):
            flash(_("Wrong password."), "error")
        elif attempt(
            lambda: (
                keyring.rotate_server_key(user, form.old_secret.data, form.secret.data)
                if key is not None and form.old_secret.data and not form.code.data
                else keyring.enroll_server_key(user, form.secret.data, code=form.code.data or None)
            )
        ):
            message = _(
                "Your signing key is ready. Remember your signing secret: nobody can recover it."
            )
            flash(message, "success")
            return redirect(url_for("requests.home"))
    return render_template(
        "auth/signing_key.html", form=form, key=key, passkey_form=PasskeyForm(prefix="pk")
    )


def _user_handle(user: User) -> bytes:
    """The WebAuthn user handle: stable per person and school, and no personal data."""
    return hashlib.sha256(f"{runtime().settings.origin}|{user.login}".encode()).digest()[:16]


@bp.post("/signing-key/passkey/options")
@reads_first
@login_required
def passkey_options() -> tuple[Response, int] | Response:
    """Options for navigator.credentials.create(): a fresh random challenge (single use)."""
    user = me()
    if not directory().check_password(user, str(passkey.json_body().get("password", ""))):
        return passkey.problem(_("Wrong password."), 422)
    key = directory().keyring.active_key(user.login)
    exclude = (
        [PublicKeyCredentialDescriptor(id=_b64decode(key.credential_id))]
        if key is not None and key.kind == PASSKEY and key.credential_id
        else []
    )
    options = generate_registration_options(
        rp_id=passkey.rp_id(),
        rp_name=_("IT expenses"),
        user_name=user.login,
        user_id=_user_handle(user),
        user_display_name=user.name,
        challenge=passkey.new_registration_challenge(),
        timeout=passkey.SIGN_TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=exclude,
        supported_pub_key_algs=SUPPORTED_ALGORITHMS,
    )
    return jsonify(ok=True, publicKey=json.loads(options_to_json(options)))


def _b64decode(text: str) -> bytes:
    return b64url_decode(text, field="credential_id")


@bp.post("/signing-key/passkey")
@reads_first
@login_required
def passkey_register() -> tuple[Response, int] | Response:
    """Enter the new passkey in the log (with the admin's code, or signed off by the current
    server-held key); the answer is the `key.confirm` decision the new passkey signs next."""
    body = passkey.json_body()
    user = me()
    keyring = directory().keyring
    challenge = passkey.take_registration_challenge()
    if challenge is None:
        return passkey.problem(
            _("The registration took too long. Tap the button again."), status=409
        )
    if not directory().check_password(user, str(body.get("password", ""))):
        return passkey.problem(_("Wrong password."), 422)
    credential = body.get("credential")
    if not isinstance(credential, dict):
        return passkey.unreadable()
    code = str(body.get("code") or "").strip()
    old_secret = str(body.get("old_secret") or "")
    current = keyring.active_key(user.login)
    try:
        registered = spki_from_registration(
            credential,
            expected_challenge=challenge,
            rp_id=passkey.rp_id(),
            origins=passkey.origins(),
        )
        if code:
            enrolled = keyring.enroll_passkey(user, registered, code=code)
        elif current is not None and current.kind == SERVER_HELD and old_secret:
            enrolled = keyring.rotate_server_key_to_passkey(user, old_secret, registered)
        elif current is not None and current.kind == PASSKEY and current.confirmed_seq:
            return jsonify(ok=True, rotate=_rotation(user, current, registered))
        else:
            return passkey.problem(
                _("Type the one-time code from the admin (or your current signing secret)."), 422
            )
        db().commit()
    except WrongSecret as error:
        passkey.record_failure(user, error, "wrong-secret")
        return passkey.refusal(error)
    except WorkflowError as error:
        db().rollback()
        return passkey.refusal(error)
    return jsonify(ok=True, **_confirmation(user, enrolled.key))


def _rotation(user: User, current: SigningKey, new: RegisteredPasskey) -> dict[str, Any]:
    """The `key.rotate` decision the current passkey signs to hand over to the new one."""
    if new.key_id == current.key_id:
        raise DataInvalid(
            "Thiết bị này đã giữ passkey của bạn.",
            en="This device already holds your passkey.",
            field="credential",
        )
    decision = directory().keyring.key_decision(
        user, current, "key.rotate", {"new_key": new.key_id}
    )
    passkey.keep_rotation(user.login, new)
    return {
        "decision": decision,
        "publicKey": passkey.request_options(current, decision_challenge(decision)),
    }


@bp.post("/signing-key/passkey/rotate")
@reads_first
@login_required
def passkey_rotate() -> tuple[Response, int] | Response:
    """The current passkey's signature over `key.rotate`: the new passkey (kept since the
    registration) takes over; the answer is its `key.confirm` decision, as after a registration."""
    body = passkey.json_body()
    user = me()
    keyring = directory().keyring
    new = passkey.take_rotation(user.login)
    if new is None:
        return passkey.problem(
            _("The registration took too long. Tap the button again."), status=409
        )
    credential, decision = body.get("credential"), body.get("decision")
    if not isinstance(credential, dict) or not isinstance(decision, dict):
        return passkey.unreadable()
    try:
        enrolled = keyring.rotate_to_passkey(
            user, new, decision=decision, signature=webauthn_signature_from_json(credential)
        )
        db().commit()
    except SignatureRefused as error:
        passkey.record_failure(user, error)
        return passkey.refusal(error)
    except WorkflowError as error:
        db().rollback()
        return passkey.refusal(error)
    return jsonify(ok=True, **_confirmation(user, enrolled.key))


def _confirmation(user: User, key: SigningKey) -> dict[str, Any]:
    decision = directory().keyring.key_decision(user, key, "key.confirm", {"key_id": key.key_id})
    return {
        "decision": decision,
        "publicKey": passkey.request_options(key, decision_challenge(decision)),
        "key_id": key.key_id,
    }


@bp.post("/signing-key/passkey/confirmation")
@login_required
def passkey_confirmation() -> tuple[Response, int] | Response:
    """The `key.confirm` decision for the person's new, not yet confirmed passkey."""
    user = me()
    key = directory().keyring.active_key(user.login)
    if key is None or key.kind != PASSKEY or key.confirmed_seq is not None:
        return passkey.problem(_("There is no new passkey to confirm."), 409)
    return jsonify(ok=True, **_confirmation(user, key))


@bp.post("/signing-key/passkey/confirm")
@reads_first
@login_required
def passkey_confirm() -> tuple[Response, int] | Response:
    """The new passkey's first signature (proof of possession): a `key.confirm` event."""
    body = passkey.json_body()
    user = me()
    keyring = directory().keyring
    key = keyring.active_key(user.login)
    if key is None or key.kind != PASSKEY:
        return passkey.problem(_("There is no new passkey to confirm."), 409)
    credential, decision = body.get("credential"), body.get("decision")
    if not isinstance(credential, dict) or not isinstance(decision, dict):
        return passkey.unreadable()
    try:
        keyring.confirm(
            user, key, decision=decision, signature=webauthn_signature_from_json(credential)
        )
        db().commit()
    except SignatureRefused as error:
        passkey.record_failure(user, error)
        return passkey.refusal(error)
    except WorkflowError as error:
        db().rollback()
        return passkey.refusal(error)
    flash(_("Your passkey is ready: from now on you sign each step with it."), "success")
    return jsonify(ok=True, redirect=url_for("requests.home"))


@bp.get("/account")
@login_required
def account() -> str:
    """Your account: your keys (kind, how and when enrolled) and your failed signatures."""
    user = me()
    return render_template(
        "auth/account.html",
        person=user,
        keys=queries.keys_of(db(), user.login),
        failures=directory().keyring.failures(user.login),
    )
