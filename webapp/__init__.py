"""Flask application factory: thin web and CLI layer over workflow services."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from workflow.runtime import Runtime, Settings


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the app; configuration from the environment, overridden by ``test_config``."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(SECRET_KEY="dev-only-not-secret", ENV_NAME="development")
    app.config.from_prefixed_env("EXPENSES")
    if test_config:
        app.config.from_mapping(test_config)
    settings = app.config.get("SETTINGS") or Settings.from_env()
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


def runtime_of(app: Flask) -> Runtime:
    """The workflow runtime attached to an app."""
    runtime: Runtime = app.extensions["runtime"]
    return runtime
