"""Flask application factory: a thin web and CLI layer over workflow services."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import click
from flask import Flask, abort, current_app, g, request, session
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import BaseConverter

from expense_audit.limits import MAX_ATTACHMENT_BYTES
from workflow.db import durability_problem
from workflow.keys import InstitutionKey
from workflow.runtime import Runtime, Settings

from .extensions import babel, csrf, login_manager
from .sessions import QuietSessionInterface

DEV_SECRET_KEY = "dev-only-not-secret"  # noqa: S105 - refused in production (check_production)
LANGUAGES = ("vi", "en")
MAX_UPLOAD_BYTES = MAX_ATTACHMENT_BYTES
HSTS = "max-age=31536000"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


class RequestNumberConverter(BaseConverter):
    """Request numbers such as 2024-2025/0017 (they contain a slash)."""

    regex = r"\d{4}-\d{4}/\d{4,6}"


class UnsafeConfiguration(RuntimeError):
    """Production start-up refused: the message says what to fix."""


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the app; configuration from the environment, overridden by ``test_config``."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        SECRET_KEY=DEV_SECRET_KEY,
        ENV="development",
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES * 4,
        BABEL_DEFAULT_LOCALE="vi",
        BABEL_DEFAULT_TIMEZONE="Asia/Ho_Chi_Minh",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
        # A session ends after this long without a request (the signed cookie's timestamp is
        # checked on the server, and renewed by every request) ...
        PERMANENT_SESSION_LIFETIME=timedelta(hours=2),
        # ... and this long after signing in, however busy (seconds; checked in the user loader).
        SESSION_ABSOLUTE_LIFETIME=12 * 3600,
        # NOTE: phones move between wifi and mobile data (and carriers share addresses), so a
        # session is bound to its browser; binding it to the address too is a deployment choice.
        SESSION_BINDS_ADDRESS=False,
        # Proxies in front of the app (nginx: 1) whose X-Forwarded-For/-Proto are believed.
        TRUSTED_PROXIES=0,
        LOGIN_FAILURES_PER_ACCOUNT=10,
        LOGIN_FAILURES_PER_ADDRESS=50,
        LOGIN_WINDOW_MINUTES=15,
        UPLOAD_QUOTA_MB=300,  # attachments a person's drafts and requests may hold
        LOGIN_TRIES_PER_MINUTE=60,  # per address, any outcome: a brake on floods of posts
        # Logs: "text" (readable, the default) or "json" (one object a line, for collectors).
        LOG_FORMAT="text",
        # Bearer token of Prometheus scrapes of /metrics; unset: loopback clients only.
        METRICS_TOKEN=None,
    )
    app.config.from_prefixed_env("EXPENSES")
    if test_config:
        app.config.from_mapping(test_config)
    production = app.config["ENV"] == "production"
    if production:
        # NOTE: Flask defines both keys (False), so a setdefault would never apply.
        app.config["SESSION_COOKIE_SECURE"] = True
        app.config["REMEMBER_COOKIE_SECURE"] = True
    given = app.config.get("RUNTIME")
    settings = app.config.get("SETTINGS") or (given.settings if given else Settings.from_env())
    serving = click.get_current_context(silent=True) is None
    if production:
        check_production(app, settings, serving=serving)
    proxies = int(app.config["TRUSTED_PROXIES"])
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    clock = app.config.get("CLOCK")
    # A multi-school deployment (webapp.district) hands each school's app its runtime, which
    # shares the deployment's engine and works in the school's schema.
    app.extensions["runtime"] = app.config.get("RUNTIME") or Runtime(
        settings, **({"clock": clock} if clock else {})
    )
    if production and serving and app.config.get("REQUIRE_DURABLE_DATABASE", True):
        lost = durability_problem(app.extensions["runtime"].engine)
        if lost:
            app.extensions["runtime"].dispose()
            raise UnsafeConfiguration(f"Refusing to start in production: {lost}.")

    app.url_map.converters["reqno"] = RequestNumberConverter
    app.session_interface = QuietSessionInterface()
    _init_extensions(app)
    _register_blueprints(app)
    _register_hooks(app)
    _register_errors(app)

    from . import cli, pwa, templating, uploads

    cli.register(app)
    pwa.register(app)
    templating.register(app)
    uploads.register(app)

    @app.get("/favicon.ico")
    def favicon() -> Any:
        """The icon browsers ask for at the root, whatever the page says."""
        return app.send_static_file("favicon.svg")

    return app


def _init_extensions(app: Flask) -> None:
    from . import i18n

    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(i18n.compile_catalogs(app.instance_path))
    babel.init_app(app, locale_selector=select_locale)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    login_manager.session_protection = "strong"
    # NOTE: flask-login's own identifier believes any X-Forwarded-For header, so a thief could
    # claim the victim's address; this one uses the address ProxyFix vouches for.
    login_manager._session_identifier_generator = session_identifier


def _register_blueprints(app: Flask) -> None:
    from .admin import bp as admin_bp
    from .audit import bp as audit_bp
    from .auth import bp as auth_bp
    from .dashboard import bp as dashboard_bp
    from .dashboard import district_bp as district_dashboard_bp
    from .ledger import bp as ledger_bp
    from .mandates import bp as mandates_bp
    from .ops import bp as ops_bp
    from .requests import bp as requests_bp
    from .review import bp as review_bp
    from .signing import bp as signing_bp

    blueprints = (
        auth_bp,
        requests_bp,
        review_bp,
        ledger_bp,
        mandates_bp,
        audit_bp,
        dashboard_bp,
        district_dashboard_bp,
        admin_bp,
        signing_bp,
        ops_bp,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)


def _register_errors(app: Flask) -> None:
    from flask import jsonify, render_template
    from flask_babel import gettext as _
    from flask_wtf.csrf import CSRFError
    from sqlalchemy.exc import OperationalError
    from werkzeug.exceptions import HTTPException

    from workflow.db import WriteBusy

    titles = {
        400: lambda: _("Bad request"),
        403: lambda: _("Not allowed"),
        404: lambda: _("Not found"),
        413: lambda: _("File too large"),
        429: lambda: _("Too many attempts"),
        500: lambda: _("Something went wrong"),
    }

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int]:
        code = error.code or 500
        messages = {
            403: _("You may not do this."),
            404: _("This page or request does not exist, or it is not yours to see."),
            413: _("The upload is larger than allowed (10 MB per file)."),
            429: _("Too many attempts. Wait a minute and try again."),
        }
        description = (
            error.description
            if code == 403 and error.description and "permission" not in error.description
            else None
        )
        message = description or messages.get(code, _("Please go back and try again."))
        title = titles.get(code, titles[400])()
        return render_template("error.html", code=code, title=title, message=message), code

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> tuple[Any, int]:
        message = _("The form expired. Go back, reload the page and try again.")
        if request.is_json:  # the page scripts' posts (passkey signing) read a JSON answer
            return jsonify(ok=False, code="csrf", message=message), 400
        return render_template("error.html", code=400, title=titles[400](), message=message), 400

    def busy() -> tuple[Any, int, dict[str, str]]:
        db = g.pop("db", None)
        if db is not None:
            db.rollback()
            db.close()
        # The page itself only reads (the user's language): not in the writers' queue again.
        g.db = app.extensions["runtime"].read_sessions()
        message = _("The system is busy. Nothing was recorded: please try again in a moment.")
        retry = {"Retry-After": "5"}  # seconds: a phone's offline queue waits this long
        if request.is_json:  # the page scripts' posts (passkey signing) read a JSON answer
            return jsonify(ok=False, code="busy", message=message), 503, retry
        page = render_template("error.html", code=503, title=_("Busy"), message=message)
        return page, 503, retry

    @app.errorhandler(WriteBusy)
    def write_busy(_error: WriteBusy) -> tuple[Any, int, dict[str, str]]:
        """A writer waited longer than EXPENSES_WRITE_TIMEOUT for its turn (workflow.db)."""
        return busy()

    @app.errorhandler(OperationalError)
    def database_locked(error: OperationalError) -> tuple[Any, int, dict[str, str]]:
        """SQLite's own lock wait ran out ("database is locked"): busy too; anything else is
        a 500."""
        if "database is locked" not in str(error.orig):
            raise error
        return busy()

    @app.errorhandler(500)
    def server_error(error: Exception) -> tuple[str, int]:
        db = g.pop("db", None)
        if db is not None:
            db.rollback()
            db.close()
        return render_template(
            "error.html",
            code=500,
            title=titles[500](),
            message=_("Nothing was recorded. Please try again."),
        ), 500


def _register_hooks(app: Flask) -> None:
    from .ops import logs, metrics

    logs.configure(app, origin=app.extensions["runtime"].settings.origin)

    @app.before_request
    def begin_request() -> None:
        logs.start_request()

    @app.after_request
    def log_request(response: Any) -> Any:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        duration = logs.finish_request(response, route=route)
        metrics.HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        metrics.HTTP_DURATION.labels(request.method, route).observe(duration)
        return response

    @app.before_request
    def refuse_nul() -> None:
        # A NUL byte cannot be stored in a PostgreSQL text column (the driver raises): no field
        # of this app has any use for one, so such a request is a bad request wherever it goes.
        values = [*request.args.values(), *request.form.values(), *request.args.keys()]
        if any("\x00" in value for value in values):
            abort(400)

    @app.teardown_request
    def close_session(error: BaseException | None) -> None:
        db = g.pop("db", None)
        if db is not None:
            if error is not None:
                db.rollback()
            db.close()

    @app.after_request
    def security_headers(response: Any) -> Any:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Permissions-Policy", "camera=(self), geolocation=(), microphone=()"
        )
        if request.endpoint and request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        if app.config["ENV"] == "production":
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response


def select_locale() -> str:
    """The user's chosen language, else the session's, else Vietnamese."""
    if current_user and getattr(current_user, "is_authenticated", False):
        return str(current_user.language)
    chosen = session.get("lang")
    return chosen if chosen in LANGUAGES else "vi"


def session_identifier() -> str:
    """What a session is bound to: the browser, and the client's address where configured.

    The address is the one ProxyFix vetted (EXPENSES_TRUSTED_PROXIES), never a header a client
    can forge.
    """
    agent = request.headers.get("User-Agent", "")
    address = request.remote_addr if current_app.config["SESSION_BINDS_ADDRESS"] else ""
    return hashlib.sha512(f"{address}|{agent}".encode()).hexdigest()


def check_production(app: Flask, settings: Settings, *, serving: bool = True) -> None:
    """Refuse to start in production without a secret key, with debug on, or an exposed key.

    Under the `flask` command (``serving`` False) a missing institution key is no reason to
    refuse: `flask keys init-institution` is how it comes to exist.
    """
    problems = []
    secret = str(app.config.get("SECRET_KEY") or "")
    if secret == DEV_SECRET_KEY or len(secret) < 32:
        problems.append("set EXPENSES_SECRET_KEY to a random value of at least 32 characters")
    if app.debug or app.config.get("DEBUG"):
        problems.append("turn debug off (FLASK_DEBUG=0)")
    key_file = settings.keys_dir / "institution.key"
    if not key_file.exists():
        if serving:
            problems.append(
                f"create the institution key ({key_file}) with `flask keys init-institution`"
            )
    elif InstitutionKey.readable_by_others(settings.keys_dir):
        problems.append(f"{key_file} is readable by other users: chmod 600 it")
    if problems:
        raise UnsafeConfiguration("Refusing to start in production: " + "; ".join(problems) + ".")
