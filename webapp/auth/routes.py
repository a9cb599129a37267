"""Sign in and out, password, language, and the user's own signing key."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from workflow.signin import Limits, LoginThrottled, SignIn

from .. import session_identifier
from ..context import Account, db, directory, login_required, me, runtime
from ..errors import attempt
from ..extensions import limiter, login_manager
from ..params import parse_int
from . import bp
from .forms import LanguageForm, LoginForm, PasswordForm, SigningSecretForm


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
    return target if not parts.scheme and not parts.netloc else url_for("requests.home")


login_manager.user_loader(load_user)


def _login_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


def _sign_in() -> SignIn:
    config = current_app.config
    limits = Limits(
        per_account=int(config["LOGIN_FAILURES_PER_ACCOUNT"]),
        per_address=int(config["LOGIN_FAILURES_PER_ADDRESS"]),
        window=timedelta(minutes=int(config["LOGIN_WINDOW_MINUTES"])),
    )
    return SignIn(db(), limits=limits, clock=runtime().clock)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
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
@login_required
def password() -> str | Response:
    """Change your password; your other sessions end."""
    form = PasswordForm()
    user = me()
    if form.validate_on_submit():
        if not directory().check_password(user, form.current.data):
            flash(_("Wrong password."), "error")
        elif attempt(lambda: directory().set_password(user, form.new.data)):
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
@login_required
def signing_key() -> str | Response:
    """A server-held signing key (the fallback without a passkey device): with the admin's
    one-time code, or a new secret signed off by the current one (rotation)."""
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
    return render_template("auth/signing_key.html", form=form, key=key)
