"""Flask application factory: thin web and CLI layer over workflow services."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from workflow.keys import InstitutionKey
from workflow.runtime import Runtime, Settings


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the app; configuration from the environment, overridden by ``test_config``."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(SECRET_KEY=DEV_SECRET_KEY, ENV="development")
    app.config.from_prefixed_env("EXPENSES")
    if test_config:
        app.config.from_mapping(test_config)
    settings = app.config.get("SETTINGS") or Settings.from_env()
    if app.config["ENV"] == "production":
        check_production(app, settings)
    app.extensions["runtime"] = Runtime(
        settings, **({"clock": app.config["CLOCK"]} if "CLOCK" in app.config else {})
    )

    from . import cli

    cli.register(app)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Liveness probe."""
        return {"status": "ok"}

    return app


DEV_SECRET_KEY = "dev-only-not-secret"


class UnsafeConfiguration(RuntimeError):
    """Production start-up refused: the message says what to fix."""


def check_production(app: Flask, settings: Settings) -> None:
    """Refuse to start in production without a secret key, with debug on, or an exposed key."""
    problems = []
    if (
        app.config.get("SECRET_KEY") in (None, "", DEV_SECRET_KEY)
        or len(str(app.config["SECRET_KEY"])) < 32
    ):
        problems.append("set EXPENSES_SECRET_KEY to a random value of at least 32 characters")
    if app.debug or app.config.get("DEBUG"):
        problems.append("turn debug off (FLASK_DEBUG=0)")
    key_file = settings.keys_dir / "institution.key"
    if not key_file.exists():
        problems.append(
            f"create the institution key ({key_file}) with `flask keys init-institution`"
        )
    elif InstitutionKey.readable_by_others(settings.keys_dir):
        problems.append(f"{key_file} is readable by other users: chmod 600 it")
    if settings.database_url.startswith("sqlite") and not app.config.get("ALLOW_SQLITE", True):
        problems.append("use PostgreSQL (DATABASE_URL) for a district deployment")
    if problems:
        raise UnsafeConfiguration("Refusing to start in production: " + "; ".join(problems) + ".")


def runtime_of(app: Flask) -> Runtime:
    """The workflow runtime attached to an app."""
    runtime: Runtime = app.extensions["runtime"]
    return runtime
