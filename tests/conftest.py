"""Fixtures: a real SQLite file (or PostgreSQL with TEST_DATABASE_URL), real keys, a fixed clock.

Migrating takes about a second, so each run migrates a *template* once (per xdist worker) and every
test gets its own copy: the SQLite file copied, or a PostgreSQL database created from the template.
Two templates: ``bare`` (migrated, the institution key, the log's genesis event) and ``school`` (the
same plus the demo people of SCENARIOS.md). A test that asks for ``school`` (or ``app``) gets the
second, any other the first. The test's clock starts where the template's clock stopped, so events
carry the same times as if the test had migrated its own database.

Web fixtures follow flaskr's conftest: ``app``, ``client``, ``runner`` and ``auth``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import Connection, Engine, create_engine, text, update
from werkzeug.security import generate_password_hash

from workflow.demo import DEMO_PASSWORD, PEOPLE
from workflow.keys import InstitutionKey
from workflow.models import OutboxMail, User
from workflow.runtime import Runtime, Settings

from . import ca_tools, factories, softhsm
from .web import AuthActions, Browser

# NOTE: demo passwords hashed at a low scrypt cost, like the signing keys (scrypt_n below): each
# sign-in in a test then costs a millisecond instead of a tenth of a second. The hash is not part of
# the signed log, and production hashing is untouched.
TEST_PASSWORD_HASH = "scrypt:1024:8:1"

SETTINGS = Settings(
    database_url="",  # set per template and per test
    keys_dir=Path(),
    origin="th-demo.edu.vn/expenses",
    base_url="https://chi.th-demo.edu.vn",
    scrypt_n=2**10,
)


class SteppingClock:
    """A clock that moves one minute forward each time it is read (events keep their order)."""

    def __init__(self, start: datetime = datetime(2025, 1, 13, 0, 40)) -> None:
        self.now = start
        self.step = timedelta(minutes=1)

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


# ---------------------------------------------------------------------------------------------
# Templates, built once per run (per worker) and copied per test


@dataclass(frozen=True)
class Template:
    database_url: str
    keys_dir: Path
    clock_stopped_at: datetime


class Templates:
    """The migrated template databases of this run (one set per xdist worker), built on first use."""

    def __init__(self, folder: Path, postgres_url: str | None, worker: str) -> None:
        self.folder, self.postgres_url, self.worker = folder, postgres_url, worker
        self.tag = f"{worker}_{uuid.uuid4().hex[:6]}"
        self.built: dict[str, Template] = {}
        self.file_copy: bool | None = None
        self.admin: Engine | None = (
            create_engine(postgres_url, isolation_level="AUTOCOMMIT") if postgres_url else None
        )

    def get(self, kind: str) -> Template:
        if kind not in self.built:
            self.built[kind] = self._build(kind)
        return self.built[kind]

    def _build(self, kind: str) -> Template:
        keys_dir = self.folder / "keys"
        if not keys_dir.exists():
            InstitutionKey.create(keys_dir)
        clock = SteppingClock()
        if kind == "bare":
            url = self._new_database(f"tpl_{self.tag}_bare", template=None)
        else:
            bare = self.get("bare")
            url = self._new_database(f"tpl_{self.tag}_{kind}", template=bare.database_url)
            clock = SteppingClock(bare.clock_stopped_at)
        runtime = Runtime(replace(SETTINGS, database_url=url, keys_dir=keys_dir), clock=clock)
        try:
            if kind == "bare":
                runtime.init_db()
            else:
                factories.School.create(runtime)
                with runtime.transaction() as session:
                    session.execute(
                        update(User)
                        .where(User.login.in_([p.login for p in PEOPLE]))
                        .values(
                            password_hash=generate_password_hash(
                                DEMO_PASSWORD, method=TEST_PASSWORD_HASH
                            )
                        )
                    )
                    # The set-up's "new signing key" mails went out before any scenario starts.
                    session.execute(
                        update(OutboxMail).where(OutboxMail.kind == "key").values(status="sent")
                    )
        finally:
            runtime.dispose()  # NOTE: on SQLite the last close folds the WAL back into the file
        return Template(url, keys_dir, clock.now)

    def _new_database(self, name: str, *, template: str | None) -> str:
        if self.admin is None:
            path = self.folder / f"{name}.sqlite"
            if template is not None:
                shutil.copyfile(template.removeprefix("sqlite:///"), path)
            return f"sqlite:///{path}"
        source = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
        with self.admin.connect() as connection:
            if template and self._file_copy(connection):
                source += " STRATEGY FILE_COPY"
            connection.execute(text(f'CREATE DATABASE "{name}"{source}'))
        return self.admin.url.set(database=name).render_as_string(hide_password=False)

    def _file_copy(self, connection: Connection) -> bool:
        """PostgreSQL 15+ copies a template with FILE_COPY: its few files at once, about twice as
        fast for a small database as the default WAL_LOG, which logs every block."""
        if self.file_copy is None:
            version = connection.execute(text("SHOW server_version_num")).scalar_one()
            self.file_copy = int(version) >= 150000
        return self.file_copy

    def copy(self, kind: str, folder: Path) -> Iterator[str]:
        """A fresh database, a copy of the template ``kind``, removed afterwards."""
        template = self.get(kind)
        if self.admin is None:
            path = folder / "expenses.sqlite"
            shutil.copyfile(template.database_url.removeprefix("sqlite:///"), path)
            yield f"sqlite:///{path}"
            return
        name = f"t_{uuid.uuid4().hex[:12]}"
        url = self._new_database(name, template=template.database_url)
        try:
            yield url
        finally:
            self._drop(name)

    def _drop(self, name: str) -> None:
        assert self.admin is not None
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        if self.admin is not None:
            for template in reversed(list(self.built.values())):
                self._drop(template.database_url.rsplit("/", 1)[1])
            self.admin.dispose()


@pytest.fixture(scope="session")
def templates(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Templates]:
    worker = getattr(request.config, "workerinput", {}).get("workerid", "main")
    built = Templates(
        tmp_path_factory.mktemp("templates"), os.environ.get("TEST_DATABASE_URL"), worker
    )
    yield built
    built.close()


@pytest.fixture
def template_kind(request: pytest.FixtureRequest) -> str:
    """``school`` if the test (or a fixture it uses) wants the demo people, else ``bare``."""
    return "school" if "school" in request.fixturenames else "bare"


@pytest.fixture
def database_url(templates: Templates, template_kind: str, tmp_path: Path) -> Iterator[str]:
    yield from templates.copy(template_kind, tmp_path)


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, templates: Templates, template_kind: str
) -> Settings:
    keys_dir = tmp_path / "keys"
    shutil.copytree(templates.get(template_kind).keys_dir, keys_dir)  # keeps the 0600 mode
    return replace(SETTINGS, database_url=database_url, keys_dir=keys_dir)


@pytest.fixture
def clock(templates: Templates, template_kind: str) -> SteppingClock:
    return SteppingClock(templates.get(template_kind).clock_stopped_at)


@pytest.fixture
def runtime(settings: Settings, clock: SteppingClock) -> Iterator[Runtime]:
    """The test's own database, already migrated (a copy of the template)."""
    rt = Runtime(settings, clock=clock)
    yield rt
    rt.dispose()


@pytest.fixture
def school(runtime: Runtime) -> factories.School:
    """The demo school's people, each with a real signing key (already in the template)."""
    return factories.School(runtime)


@pytest.fixture
def second_school(
    templates: Templates, settings: Settings, clock: SteppingClock, tmp_path: Path
) -> Iterator[factories.School]:
    """Another school with the demo people, in a database of its own (a district's second)."""
    folder = tmp_path / "second-school"
    folder.mkdir()
    for url in templates.copy("school", folder):
        rt = Runtime(replace(settings, database_url=url), clock=clock)
        try:
            yield factories.School(rt)
        finally:
            rt.dispose()


# ---------------------------------------------------------------------------------------------
# The web app, flaskr style


@pytest.fixture
def app(runtime: Runtime, school: factories.School, tmp_path: Path) -> Flask:
    """The web app on the test's database, with the demo school in it."""
    from webapp import create_app

    application = create_app(
        {
            "SETTINGS": runtime.settings,
            "CLOCK": runtime.clock,
            "TESTING": True,
            "ATTACHMENTS_DIR": str(tmp_path / "attachments"),
        }
    )
    application.extensions["runtime"].engine.dispose()
    application.extensions["runtime"] = runtime
    return application


@pytest.fixture
def client(app: Flask) -> Browser:
    """A test client that keeps the form's CSRF token, like a browser."""
    return Browser(app)


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def auth(app: Flask, client: Browser) -> AuthActions:
    return AuthActions(app, client)


# ---------------------------------------------------------------------------------------------
# CA certificates and a PKCS#11 token (issue 14): one test CA and one SoftHSM2 token per session


@pytest.fixture(scope="session")
def authority() -> ca_tools.Authority:
    """The test CA of the session (root and issuing CA)."""
    return ca_tools.Authority()


@pytest.fixture(scope="session")
def toan_cert(authority: ca_tools.Authority) -> ca_tools.Person:
    """The principal's personal certificate."""
    return authority.issue("NGUYỄN VĂN TOÀN")


@pytest.fixture(scope="session")
def token(tmp_path_factory: pytest.TempPathFactory, toan_cert: ca_tools.Person) -> softhsm.Token:
    """The principal's token (SoftHSM2), one for the session."""
    return softhsm.make_token(tmp_path_factory.mktemp("softhsm"), toan_cert, label="toan")
