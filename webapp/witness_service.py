"""The district's witness as its own small service (tlog-witness HTTP, its own database).

    WITNESS_DATABASE_URL   the witness's database (default: instance/witness.sqlite)
    WITNESS_KEYS           the folder of witness.key / witness.vkey (default: keys-witness/)
    WITNESS_KEY_PASSPHRASE the passphrase the witness key is encrypted under

`gunicorn witness_wsgi:app` serves POST /add-checkpoint; `flask --app wsgi witness ...` manages it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from flask import Flask, Response, current_app, request
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.orm import Session

from expense_audit.errors import WorkflowError
from workflow.clock import Clock, utcnow
from workflow.db import create_schema, make_engine, session_factory
from workflow.models import WitnessLog
from workflow.runtime import PROJECT_ROOT
from workflow.witness import (
    OldSizeMismatch,
    Witness,
    WitnessError,
    WitnessKey,
    parse_add_checkpoint,
)

MAX_REQUEST = 64 * 1024  # an old-size line, at most 63 proof lines and a checkpoint


@dataclass(frozen=True)
class WitnessSettings:
    database_url: str = f"sqlite:///{PROJECT_ROOT / 'instance' / 'witness.sqlite'}"
    keys_dir: Path = PROJECT_ROOT / "keys-witness"
    passphrase: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WitnessSettings:
        """Read WITNESS_* variables; anything unset keeps its default."""
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            database_url=env.get("WITNESS_DATABASE_URL", defaults.database_url),
            keys_dir=Path(env.get("WITNESS_KEYS", defaults.keys_dir)),
            passphrase=env.get("WITNESS_KEY_PASSPHRASE") or None,
        )


class WitnessService:
    """The witness's database and key, loaded once."""

    def __init__(self, settings: WitnessSettings, *, clock: Clock = utcnow) -> None:
        self.settings = settings
        self.clock = clock
        if settings.database_url.startswith("sqlite:///"):
            Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        self.engine = make_engine(settings.database_url)
        self.sessions = session_factory(self.engine)
        self._key: WitnessKey | None = None

    @property
    def key(self) -> WitnessKey:
        if self._key is None:
            self._key = WitnessKey.from_directory(
                self.settings.keys_dir, passphrase=self.settings.passphrase
            )
        return self._key

    @contextmanager
    def witness(self) -> Iterator[Witness]:
        """A witness in one transaction: committed when the block ends, rolled back on error."""
        with self.sessions() as session, session.begin():
            yield Witness(session, key=self.key, clock=self.clock)


def create_witness_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The witness's HTTP service: POST /add-checkpoint (C2SP tlog-witness)."""
    app = Flask(__name__)
    app.config.from_mapping(config or {})
    settings = app.config.get("WITNESS_SETTINGS") or WitnessSettings.from_env()
    clock = app.config.get("CLOCK") or utcnow
    app.extensions["witness"] = WitnessService(settings, clock=clock)

    @app.post("/add-checkpoint")
    def add_checkpoint() -> Response:
        """Cosign a checkpoint that extends the last one cosigned for its origin."""
        service: WitnessService = current_app.extensions["witness"]
        body = request.get_data(cache=False)[: MAX_REQUEST + 1]
        try:
            if len(body) > MAX_REQUEST:
                raise WitnessError("the request is too large")
            old_size, proof, note = parse_add_checkpoint(body)
            origin = note.split("\n", 1)[0]
            with service.witness() as witness:
                cosignature = witness.add_checkpoint(origin, note, old_size=old_size, proof=proof)
        except OldSizeMismatch as exc:
            current_app.logger.warning("witness: %s", exc.message)
            return Response(
                f"{exc.latest_size}\n", status=exc.status, content_type="text/x.tlog.size"
            )
        except WitnessError as exc:
            current_app.logger.warning("witness: %s", exc.message)
            return Response(exc.message + "\n", status=exc.status, content_type="text/plain")
        return Response(cosignature.line, status=200, content_type="text/plain; charset=utf-8")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Liveness probe."""
        return {"status": "ok"}

    return app


def _service() -> WitnessService:
    return WitnessService(WitnessSettings.from_env())


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


@click.group("witness", cls=AppGroup)
def witness_cli() -> None:
    """The district's witness: its key, its database and the schools' logs it cosigns."""


@witness_cli.command("init")
@click.argument("name")
def witness_init(name: str) -> None:
    """Create the witness database and key NAME (a schema-less URL); print its verifier key."""
    service = _service()
    try:
        create_schema(service.engine)
        key = WitnessKey.create(
            service.settings.keys_dir, name=name, passphrase=service.settings.passphrase
        )
    except WorkflowError as exc:
        _fail(exc.message)
    click.echo(f"verifier key: {key.vkey}")


@witness_cli.command("register")
@click.argument("origin")
@click.argument("public_key")
def witness_register(origin: str, public_key: str) -> None:
    """Accept checkpoints of ORIGIN signed by the school's PUBLIC_KEY (64 hex)."""
    service = _service()
    try:
        raw = bytes.fromhex(public_key)
    except ValueError:
        _fail("the public key is 64 hex digits (`flask keys show` at the school)")
    try:
        with service.witness() as witness:
            witness.register_log(origin, raw)
    except WorkflowError as exc:
        _fail(exc.message)
    click.echo(f"{origin} registered")


@witness_cli.command("show")
def witness_show() -> None:
    """Print the witness's verifier key and the last checkpoint cosigned per log."""
    service = _service()
    try:
        click.echo(f"verifier key: {service.key.vkey}")
    except WorkflowError as exc:
        _fail(exc.message)
    with service.sessions() as session:
        for row in _logs(session):
            when = f" at {row.cosigned_at:%Y-%m-%dT%H:%M:%SZ}" if row.cosigned_at else ""
            click.echo(f"{row.origin}: size {row.size}{when}")


def _logs(session: Session) -> list[WitnessLog]:
    return list(session.scalars(select(WitnessLog).order_by(WitnessLog.origin)))
