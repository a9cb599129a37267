"""The multi-school deployment's WSGI app: /district/ here, each school under /s/<code>/.

One Flask app per school, created on its first request and kept: it is the single-school app
(webapp.create_app) given the school's runtime (the shared engine, the school's schema), a
session secret derived for that school alone, and cookies named and scoped to its prefix. So a
session cookie of school A is neither sent to school B nor valid there, and every page, mail link
and bundle of a school stays under its prefix.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, redirect, session
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response

from workflow.db import make_engine
from workflow.district_models import DISTRICT_ROLES
from workflow.runtime import Settings
from workflow.tenancy import District

from .. import CSP, DEV_SECRET_KEY, HSTS, LANGUAGES, create_app

_SCHOOL_PATH = re.compile(r"^/s/([a-z][a-z0-9_]{1,30})(/.*)?$")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def derived_secret(master: str, purpose: str) -> str:
    """A secret of its own for one school (or the district) from the deployment's secret key."""
    return hmac.new(master.encode(), purpose.encode(), hashlib.sha256).hexdigest()


class SchoolDispatcher:
    """Route /s/<code>/... to that school's app (made on first use), the rest to the district."""

    def __init__(self, fallback: WSGIApp, make_school_app: Callable[[str], Flask | None]) -> None:
        self.fallback = fallback
        self.make_school_app = make_school_app
        self.apps: dict[str, Flask] = {}
        self.lock = threading.Lock()

    def school_app(self, code: str) -> Flask | None:
        """The school's app, or None when the deployment has no such school."""
        with self.lock:
            found = self.apps.get(code)
            if found is None:
                # NOTE: made under the lock: two first requests must not build two apps (and
                # two sets of rate-limit counters) for one school.
                found = self.make_school_app(code)
                if found is not None:
                    self.apps[code] = found
            return found

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        match = _SCHOOL_PATH.match(environ.get("PATH_INFO", ""))
        if match is None:
            return self.fallback(environ, start_response)
        code, rest = match.group(1), match.group(2)
        app = self.school_app(code)
        if app is None:
            return NotFound()(environ, start_response)
        prefix = f"/s/{code}"
        if not rest:
            return redirect(environ.get("SCRIPT_NAME", "") + prefix + "/")(environ, start_response)
        environ = {**environ, "SCRIPT_NAME": environ.get("SCRIPT_NAME", "") + prefix}
        environ["PATH_INFO"] = rest
        return app(environ, start_response)


def school_attachments(district_app: Flask, code: str) -> Path:
    """The school's attachments folder (its app serves from it, `school import` copies into it)."""
    root = (
        district_app.config.get("ATTACHMENTS_DIR") or Path(district_app.instance_path) / "schools"
    )
    return Path(root) / code / "attachments"


def school_config(
    district_app: Flask, district: District, code: str, overrides: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The create_app configuration of one school, or None when there is no such school."""
    if district.get_school(code) is None:
        return None
    master = str(district_app.config.get("MASTER_SECRET_KEY") or district_app.config["SECRET_KEY"])
    return {
        **overrides,
        "RUNTIME": district.runtime(code),
        "SECRET_KEY": derived_secret(master, f"school:{code}"),
        "SESSION_COOKIE_NAME": f"session_{code}",
        "SESSION_COOKIE_PATH": f"/s/{code}/",
        "REMEMBER_COOKIE_NAME": f"remember_{code}",
        "REMEMBER_COOKIE_PATH": f"/s/{code}/",
        "ATTACHMENTS_DIR": str(school_attachments(district_app, code)),
    }


def create_district_app(
    test_config: Mapping[str, Any] | None = None,
    *,
    district: District | None = None,
    school_overrides: Mapping[str, Any] | None = None,
) -> Flask:
    """The deployment's app: district pages and CLI here, the schools' apps dispatched by prefix.

    ``school_overrides``: configuration every school's app gets (tests: a clock, cheap hashing).
    """
    from .. import UnsafeConfiguration
    from ..extensions import babel, csrf
    from ..i18n import compile_catalogs

    app = Flask("webapp", instance_relative_config=True, static_url_path="/district/static")
    app.config.from_mapping(
        SECRET_KEY=DEV_SECRET_KEY,
        ENV="development",
        BABEL_DEFAULT_LOCALE="vi",
        BABEL_DEFAULT_TIMEZONE="Asia/Ho_Chi_Minh",
        SESSION_COOKIE_NAME="session_district",
        SESSION_COOKIE_PATH="/district/",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=2),
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.config.from_prefixed_env("EXPENSES")
    if test_config:
        app.config.from_mapping(test_config)
    if app.config["ENV"] == "production":
        app.config["SESSION_COOKIE_SECURE"] = True
        master = str(app.config.get("SECRET_KEY") or "")
        if master == DEV_SECRET_KEY or len(master) < 32:
            raise UnsafeConfiguration(
                "Refusing to start in production: set EXPENSES_SECRET_KEY to a random value of "
                "at least 32 characters (each school's session secret is derived from it)."
            )
    app.config["MASTER_SECRET_KEY"] = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = derived_secret(str(app.config["SECRET_KEY"]), "district")
    if district is None:
        settings = app.config.get("SETTINGS") or Settings.from_env()
        replica = app.config.get("READ_DATABASE_URL")
        district = District(
            settings,
            read_engine=make_engine(str(replica)) if replica else None,
            witness_passphrase=os.environ.get("WITNESS_KEY_PASSPHRASE"),
        )
    app.extensions["district"] = district
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(compile_catalogs(app.instance_path))
    babel.init_app(app, locale_selector=_district_locale)
    csrf.init_app(app)

    from .. import RequestNumberConverter, templating
    from ..dashboard import district_bp as dashboard_bp
    from . import bp
    from .dashboard import DistrictDashboardAccess

    app.url_map.converters["reqno"] = RequestNumberConverter
    app.register_blueprint(bp)
    # The district dashboard (webapp.dashboard.district): the granted schools, read-only.
    app.extensions["district_access"] = DistrictDashboardAccess(district)
    app.register_blueprint(dashboard_bp)
    templating.register_filters(app)
    _register_district_errors(app)

    @app.context_processor
    def district_globals() -> dict[str, Any]:
        from . import current_district_user

        return {
            "lang": _district_locale(),
            "district_user": current_district_user(),
            "district_role_label": _role_label,
        }

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Cache-Control", "no-store")
        if app.config["ENV"] == "production":
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response

    @app.get("/")
    def root() -> Response:
        """The deployment's front page is the district's."""
        return redirect("/district/")

    from ..cli import register_tenancy

    register_tenancy(app)
    overrides = dict(school_overrides or {})
    for key in ("ENV", "TRUSTED_PROXIES"):
        if key in app.config and key not in overrides:
            overrides[key] = app.config[key]

    def make_school_app(code: str) -> Flask | None:
        config = school_config(app, district, code, overrides)
        return None if config is None else create_app(config)

    dispatcher = SchoolDispatcher(app.wsgi_app, make_school_app)
    app.extensions["schools"] = dispatcher
    app.wsgi_app = dispatcher  # type: ignore[method-assign]
    return app


def _register_district_errors(app: Flask) -> None:
    from flask import render_template
    from flask_babel import gettext as _
    from werkzeug.exceptions import HTTPException

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int]:
        code = error.code or 500
        titles = {403: _("Not allowed"), 404: _("Not found"), 429: _("Too many attempts")}
        messages = {
            403: _("You may not do this."),
            404: _("This page does not exist."),
            429: _("Too many attempts. Wait a minute and try again."),
        }
        title = titles.get(code, _("Bad request"))
        message = messages.get(code, _("Please go back and try again."))
        return render_template("district/error.html", title=title, message=message), code


def _district_locale() -> str:
    chosen = session.get("lang")
    return chosen if chosen in LANGUAGES else "vi"


def _role_label(role: str) -> str:
    from flask_babel import gettext as _

    labels = {
        DISTRICT_ROLES[0]: _("District inspector"),
        DISTRICT_ROLES[1]: _("District finance officer"),
    }
    return str(labels.get(role, role))
