"""Fixtures: a real SQLite file (or PostgreSQL with TEST_DATABASE_URL), real keys, a fixed clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from workflow.keys import InstitutionKey
from workflow.runtime import Runtime, Settings

from . import factories


class SteppingClock:
    """A clock that moves one minute forward each time it is read (events keep their order)."""

    def __init__(self, start: datetime = datetime(2025, 1, 13, 0, 40)) -> None:
        self.now = start
        self.step = timedelta(minutes=1)

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


def _postgres_database(base_url: str) -> Iterator[str]:
    """A throw-away PostgreSQL database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = base_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    base = os.environ.get("TEST_DATABASE_URL")
    if base:
        yield from _postgres_database(base)
    else:
        yield f"sqlite:///{tmp_path / 'expenses.sqlite'}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    keys_dir = tmp_path / "keys"
    InstitutionKey.create(keys_dir)
    return Settings(
        database_url=database_url,
        keys_dir=keys_dir,
        origin="th-demo.edu.vn/expenses",
        base_url="https://chi.th-demo.edu.vn",
        scrypt_n=2**10,
    )


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def runtime(settings: Settings, clock: SteppingClock) -> Iterator[Runtime]:
    rt = Runtime(settings, clock=clock)
    rt.init_db()
    yield rt
    rt.dispose()


@pytest.fixture
def school(runtime: Runtime) -> factories.School:
    """The demo school's people, each with a real signing key."""
    return factories.School.create(runtime)


@pytest.fixture
def app(runtime: Runtime, school: factories.School, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The web app on the test's database, with the demo school in it."""
    from webapp import create_app

    application = create_app(
        {
            "SETTINGS": runtime.settings,
            "CLOCK": runtime.clock,
            "TESTING": True,
            "ATTACHMENTS_DIR": str(tmp_path / "attachments"),
            "RATELIMIT_ENABLED": True,
        }
    )
    application.extensions["runtime"].engine.dispose()
    application.extensions["runtime"] = runtime
    from webapp.extensions import limiter

    limiter.reset()
    return application
