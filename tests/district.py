"""A two-school deployment on the PostgreSQL test cluster, for the tenancy tests.

Each deployment is a database of its own, dropped afterwards; schools get the demo people with
cheap password hashes (as in conftest), and a browser that works under a school's prefix.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, text, update
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from workflow.db import make_engine
from workflow.demo import DEMO_PASSWORD, PEOPLE, create_people
from workflow.models import OutboxMail, User
from workflow.runtime import Runtime
from workflow.tenancy import District

from .conftest import SETTINGS, TEST_PASSWORD_HASH, SteppingClock
from .web import Browser

POSTGRES = os.environ.get("TEST_DATABASE_URL")
needs_postgres = pytest.mark.skipif(
    not POSTGRES, reason="a multi-school deployment needs PostgreSQL (TEST_DATABASE_URL)"
)
INSPECTOR_PASSWORD = "Thanh-tra-quan-7"  # noqa: S105 - a test account's password


@contextmanager
def database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the test cluster; dropped afterwards."""
    assert POSTGRES is not None
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    name = f"d_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def deployment(
    folder: Path,
    codes: tuple[str, ...] = ("alpha", "beta"),
    *,
    connect_args: dict[str, Any] | None = None,
) -> Iterator[District]:
    """A district with ``codes`` schools, each with the demo people (``connect_args``: psycopg's)."""
    with database() as url:
        settings = replace(
            SETTINGS,
            database_url=url,
            keys_dir=folder / "keys",
            base_url="https://pgd.example.vn",
        )
        shared = make_engine(url, connect_args=connect_args) if connect_args else None
        district = District(settings, clock=SteppingClock(), engine=shared)
        try:
            district.init()
            for code in codes:
                add_demo_school(district, code)
            yield district
        finally:
            district.dispose()
            if shared is not None:
                shared.dispose()


def add_demo_school(district: District, code: str) -> Runtime:
    """Add the school ``code`` (origin th-<code>.edu.vn/expenses) with the demo people."""
    district.add_school(
        code,
        name=f"Trường Tiểu học {code.title()}",
        origin=f"th-{code}.edu.vn/expenses",
        admin_login="quantri",
        admin_email=f"quantri@th-{code}.edu.vn",
    )
    runtime = district.runtime(code)
    with runtime.transaction() as session:
        create_people(runtime, session, domain=f"th-{code}.edu.vn")
    with runtime.transaction() as session:
        session.execute(
            update(User)
            .where(User.login.in_([p.login for p in PEOPLE]))
            .values(password_hash=generate_password_hash(DEMO_PASSWORD, method=TEST_PASSWORD_HASH))
        )
        session.execute(update(OutboxMail).where(OutboxMail.kind == "key").values(status="sent"))
    return runtime


def district_app(district: District, folder: Path) -> Flask:
    """The deployment's WSGI app (district pages, schools under /s/<code>/)."""
    from webapp.district.app import create_district_app

    app = create_district_app(
        {"TESTING": True, "ATTACHMENTS_DIR": str(folder / "data"), "SECRET_KEY": "k" * 40},
        district=district,
        school_overrides={"TESTING": True, "CLOCK": district.clock},
    )
    return app


class SchoolBrowser(Browser):
    """A browser whose paths are below one school's prefix (or the district's, prefix "")."""

    def __init__(self, app: Flask, prefix: str) -> None:
        super().__init__(app)
        self.prefix = prefix

    def at(self, prefix: str) -> SchoolBrowser:
        """The same browser (same cookies) addressing another prefix."""
        other = SchoolBrowser.__new__(SchoolBrowser)
        other.client, other.token, other.prefix = self.client, "", prefix
        return other

    def get(self, url: str, **kwargs: Any) -> TestResponse:
        return super().get(self.prefix + url, **kwargs)

    def post(self, url: str, data: dict[str, Any] | None = None, **kwargs: Any) -> TestResponse:
        if not self.token:
            self.get("/login")
        return super().post(self.prefix + url, data, **kwargs)
