"""Engine and schema: SQLite (WAL, IMMEDIATE write transactions) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

SQLITE_TRIGGERS = [
    """CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events
       BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events
       BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END""",
]

POSTGRES_TRIGGERS = [
    """CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'audit_events is append-only'; END; $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS audit_events_no_change ON audit_events",
    """CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
       FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()""",
    "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
    """CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
       FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()""",
]


def make_engine(url: str, *, read_only: bool = False, **kwargs: Any) -> Engine:
    """Create an engine; on SQLite every transaction takes the write lock up front.

    ``read_only`` engines (page loads) begin deferred transactions instead: in WAL mode they read a
    consistent snapshot while a writer works, instead of queueing behind it.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # NOTE: disable pysqlite's own transaction handling so BEGIN IMMEDIATE below is ours.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            # NOTE: FULL, not NORMAL: in WAL mode NORMAL may lose transactions that were
            # committed (and whose steps the person was told were signed) at a power loss.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def durability_problem(engine: Engine) -> str | None:
    """Why a committed step could be lost at a crash or power loss, or None when it cannot."""
    with engine.connect() as connection:
        if is_postgres(engine):
            for setting in ("synchronous_commit", "fsync"):
                value = connection.exec_driver_sql(f"SHOW {setting}").scalar()
                if value == "off":
                    return f"PostgreSQL runs with {setting}=off: turn it on"
            return None
        level = connection.exec_driver_sql("PRAGMA synchronous").scalar()
        return None if level in (2, 3) else f"SQLite runs with synchronous={level}: use FULL"


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def create_schema(engine: Engine, *, schema: str | None = None) -> None:
    """Apply the alembic migrations (tables and append-only triggers); idempotent.

    ``schema``: a school's PostgreSQL schema in a multi-school deployment (created if missing).
    """
    from .migrate import upgrade

    upgrade(engine, schema=schema)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def schema_session_factory(
    engine: Engine, schema: str, *, read_only: bool = False
) -> sessionmaker[Session]:
    """Sessions whose every transaction works in the PostgreSQL ``schema`` alone.

    The search path is set at the start of each transaction (SET LOCAL, so a pooled connection
    forgets it at commit or rollback), which holds for raw SQL too. ``read_only`` sessions are
    refused any write by PostgreSQL itself (SET TRANSACTION READ ONLY).
    """
    if not is_postgres(engine):
        raise ValueError("a school's schema needs PostgreSQL")
    quoted = engine.dialect.identifier_preparer.quote_identifier(schema)
    factory = sessionmaker(engine, expire_on_commit=False)

    @event.listens_for(factory, "after_begin")
    def _enter_schema(_session: Session, _transaction: Any, connection: Any) -> None:
        if read_only:
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        connection.exec_driver_sql(f"SET LOCAL search_path TO {quoted}")

    return factory
