"""District sign-in, sign-out and the list of granted schools."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from workflow.signin import LoginThrottled

from ..auth.forms import LanguageForm, LoginForm
from . import (
    EPOCH_KEY,
    SESSION_KEY,
    bp,
    current_district_login,
    current_district_user,
    district,
    district_login_required,
)


def _safe_next(target: str | None) -> str:
    """Only a path of the district pages is followed after sign-in."""
    if target and target.startswith("/district/") and not target.startswith("//"):
        return target
    return url_for("district.index")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    """Sign a district account in."""
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = district().authenticate(
                form.login.data, form.password.data, address=request.remote_addr or ""
            )
        except LoginThrottled as error:
            flash(_("Too many failed sign-ins. Try again in %(n)s minutes.", n=error.minutes))
            return render_template("district/login.html", form=form), 429
        if user is not None:
            session.clear()
            session.permanent = True
            session[SESSION_KEY] = user.login
            session[EPOCH_KEY] = user.session_epoch
            return redirect(_safe_next(request.args.get("next")))
        flash(_("Wrong login or password."), "error")
    return render_template("district/login.html", form=form)


@bp.post("/logout")
def logout() -> Response:
    """Sign the district account out, here and wherever a copy of this session's cookie is."""
    user = current_district_user()
    if user is not None:
        district().end_sessions(user.login)
    session.clear()
    return redirect(url_for("district.login"))


@bp.post("/language")
def language() -> Response:
    """Switch the district pages' language."""
    form = LanguageForm()
    if form.validate_on_submit():
        session["lang"] = form.language.data
    return redirect(url_for("district.index"))


@bp.get("/")
@district_login_required
def index() -> str:
    """The schools this account may see, read-only."""
    login = current_district_login()
    if login is None:
        abort(403)
    user = district().get_user(login)
    schools = district().granted_schools(login)
    return render_template("district/index.html", user=user, schools=schools)
