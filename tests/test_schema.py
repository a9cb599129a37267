"""The schema comes from alembic migrations, which agree with the models; the log is append-only."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, event, text

from workflow.db import durability_problem, is_postgres
from workflow.models import Base
from workflow.runtime import Runtime


def test_models_and_migrations_agree(runtime: Runtime) -> None:
    with runtime.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert context.get_current_revision() is not None
        assert compare_metadata(context, Base.metadata) == []


def test_init_db_is_idempotent(runtime: Runtime) -> None:
    assert runtime.init_db() is False


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'x' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 1",
        "DELETE FROM audit_events",
    ],
)
def test_audit_rows_cannot_be_changed(runtime: Runtime, statement: str) -> None:
    with pytest.raises(Exception, match="append-only"), runtime.transaction() as session:
        session.execute(text(statement))


def test_truncate_refused_on_postgresql(runtime: Runtime) -> None:
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    with pytest.raises(Exception, match="append-only"), runtime.transaction() as session:
        session.execute(text("TRUNCATE audit_events"))


def test_least_privilege_role_can_work_but_not_rewrite_the_log(runtime: Runtime, school) -> None:  # type: ignore[no-untyped-def]
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("roles and grants are PostgreSQL's")
    from dataclasses import replace
    from pathlib import Path

    from sqlalchemy.engine import make_url

    grants = (Path(__file__).resolve().parent.parent / "deploy" / "grants.sql").read_text()
    role = f"app_{runtime.engine.url.database}"
    with runtime.engine.begin() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        connection.execute(
            text(f'GRANT CONNECT ON DATABASE "{runtime.engine.url.database}" TO "{role}"')
        )
        connection.execute(text(grants.replace("expenses_app", f'"{role}"')))
    app_url = (
        make_url(runtime.settings.database_url)
        .set(username=role)
        .render_as_string(hide_password=False)
    )
    app_runtime = Runtime(replace(runtime.settings, database_url=app_url), clock=runtime.clock)
    try:
        from .factories import School

        app_school = School(app_runtime)
        number = app_school.to_state("approved")
        assert app_school.request(number).state == "approved"  # type: ignore[union-attr]
        with (
            pytest.raises(Exception, match="permission denied"),
            app_runtime.transaction() as session,
        ):
            session.execute(text("UPDATE audit_events SET actor = 'x' WHERE seq = 1"))
    finally:
        app_runtime.engine.dispose()
        with runtime.engine.begin() as connection:
            connection.execute(text(f'DROP OWNED BY "{role}"'))
            connection.execute(text(f'DROP ROLE "{role}"'))


def test_committed_steps_survive_a_power_loss(runtime: Runtime) -> None:
    """SQLite runs synchronous=FULL (WAL with NORMAL may drop committed transactions)."""
    with runtime.engine.connect() as connection:
        if is_postgres(runtime.engine):
            # NOTE: the throw-away test cluster runs fsync=off for speed (scripts/pg.sh), which
            # durability_problem() would refuse in production; commits still wait for the WAL.
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
            return
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    assert durability_problem(runtime.engine) is None


def test_production_refuses_a_database_that_may_lose_commits(runtime: Runtime) -> None:
    url = runtime.settings.database_url
    if url.startswith("sqlite"):
        engine = create_engine(url)

        @event.listens_for(engine, "connect")
        def _normal(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        expected = "synchronous=1"
    else:
        engine = create_engine(url, connect_args={"options": "-c synchronous_commit=off"})
        expected = "synchronous_commit=off"
    try:
        assert expected in (durability_problem(engine) or "")
    finally:
        engine.dispose()
