"""The district's pages (/district/): sign-in of district accounts and their granted schools.

Entry points for the district dashboard: ``district()`` (the deployment's District),
``current_district_login()`` and the ``district_login_required`` decorator; a view lists what the
signed-in account may see with ``district().granted_schools(login)``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, abort, current_app, g, redirect, request, session, url_for

from workflow.district_models import DistrictUser
from workflow.tenancy import District, GrantedSchool

bp = Blueprint("district", __name__, url_prefix="/district")

F = TypeVar("F", bound=Callable[..., Any])
SESSION_KEY = "district_login"
EPOCH_KEY = "district_epoch"  # the account's session epoch when this session was opened


def district() -> District:
    """The deployment's District (schools, district accounts, grants)."""
    found: District = current_app.extensions["district"]
    return found


def current_district_user() -> DistrictUser | None:
    """The signed-in district account, or None: the session's login, active, and the session
    opened in the account's current epoch (signing out moves it on, so a copy of the cookie
    replayed later finds no one)."""
    if "district_user" not in g:
        login = session.get(SESSION_KEY)
        user = district().get_user(login) if isinstance(login, str) else None
        if user is not None and session.get(EPOCH_KEY) != user.session_epoch:
            user = None
        g.district_user = user
    found: DistrictUser | None = g.district_user
    return found


def current_district_login() -> str | None:
    """The signed-in district account's login, or None (see current_district_user)."""
    user = current_district_user()
    return user.login if user is not None else None


def granted_school_or_404(code: str) -> GrantedSchool:
    """The signed-in district account's granted school ``code``; 404 for any other school.

    NOTE: 404, not 403: a district account learns nothing of schools it was not granted.
    """
    login = current_district_login()
    for school in district().granted_schools(login) if login else []:
        if school.code == code:
            return school
    abort(404)


def district_login_required(view: F) -> F:
    """Send visitors without a district session to the district sign-in page."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_district_user() is None:
            session.pop(SESSION_KEY, None)
            session.pop(EPOCH_KEY, None)
            return redirect(url_for("district.login", next=request.path))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


from . import routes  # noqa: E402,F401
