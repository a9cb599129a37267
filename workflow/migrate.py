"""Schema migrations (alembic), applied by init-db; the models and migrations must agree.

A multi-school deployment (workflow.tenancy) migrates each school's PostgreSQL schema on its own:
the connection's search_path is that schema alone, and alembic's version table lives in it, so
every school is at its own revision and its tables, sequences and trigger functions are its own.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(engine: Engine | None = None, *, location: Path = MIGRATIONS) -> Config:
    config = Config()
    config.set_main_option("script_location", str(location))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(
    engine: Engine,
    revision: str = "head",
    *,
    schema: str | None = None,
    location: Path = MIGRATIONS,
) -> None:
    """Bring the database schema (or the PostgreSQL ``schema``) to ``revision``.

    Creates everything on an empty database or schema.
    """
    config = alembic_config(engine, location=location)
    with engine.begin() as connection:
        if schema is not None:
            quoted = connection.dialect.identifier_preparer.quote_identifier(schema)
            connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            # NOTE: LOCAL: the pooled connection forgets the path when this transaction ends.
            connection.exec_driver_sql(f"SET LOCAL search_path TO {quoted}")
        config.attributes["connection"] = connection
        config.attributes["schema"] = schema
        command.upgrade(config, revision)


def current_revision(engine: Engine, *, schema: str | None = None) -> str | None:
    """The alembic revision the database (or ``schema``) is at, None before any migration."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        options = {"version_table_schema": schema} if schema else {}
        return MigrationContext.configure(connection, opts=options).get_current_revision()


def head_revision(location: Path = MIGRATIONS) -> str | None:
    """The newest revision of the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(location=location)).get_current_head()
