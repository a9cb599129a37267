"""Sign in and out, language, and the user's own signing key."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from ..context import Account, db, directory, login_required, me
from ..errors import attempt
from ..extensions import limiter, login_manager
from . import bp
from .forms import LanguageForm, LoginForm, SigningSecretForm


def load_user(user_id: str) -> Account | None:
    """Reload the account of a session; inactive accounts are signed out."""
    from workflow.models import User

    if not user_id.isdigit():
        return None
    user = db().get(User, int(user_id))
    return Account.of(user) if user is not None and user.active else None


login_manager.user_loader(load_user)


def _login_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login() -> str | Response:
    """Sign in with login and password."""
    if current_user.is_authenticated:
        return redirect(url_for("requests.home"))
    form = LoginForm()
    if form.validate_on_submit():
        user = directory().get_user(form.login.data.strip().lower())
        if (
            user is not None
            and user.active
            and directory().check_password(user, form.password.data)
        ):
            login_user(Account.of(user))
            session.permanent = True
            target = request.args.get("next", "")
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("requests.home")
            return redirect(target)
        flash(_("Wrong login or password."), "error")
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@login_required
def logout() -> Response:
    """Sign out."""
    logout_user()
    return redirect(url_for("auth.login"))


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
    """Choose the signing secret that protects your own signing key."""
    form = SigningSecretForm()
    user = me()
    key = directory().active_key(user.login)
    if form.validate_on_submit():
        if not directory().check_password(user, form.password.data):
            flash(_("Wrong password."), "error")
        elif attempt(lambda: directory().issue_key(user, form.secret.data)):
            message = _(
                "Your signing key is ready. Remember your signing secret: nobody can recover it."
            )
            flash(message, "success")
            return redirect(url_for("requests.home"))
    return render_template("auth/signing_key.html", form=form, key=key)
