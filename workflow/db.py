"""Engine and schema: SQLite (WAL, IMMEDIATE write transactions) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from expense_audit.errors import Refusal

# An execution option: this transaction only reads (SQLite: deferred, no write lock; both: the
# database refuses writes in it). See read_first() and begin_write().
READ_FIRST = "expenses_read_first"
_TURN = "expenses_write_turn"
_QUERY_ONLY = "expenses_query_only"

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


@dataclass
class WriteTurn:
    """A writer's place at the head of the queue, held until its transaction has ended."""

    slot: int
    holder: tuple[Path, int] | None = None  # the queue's folder and the thread that took it

    def release(self) -> None:
        os.close(self.slot)  # closing the file releases its flock
        if self.holder is not None:
            with _HELD_LOCK:
                _HELD.discard(self.holder)


class NestedWrite(RuntimeError):
    """A thread that holds the write turn asked for another: it would wait for itself forever."""


class WriteBusy(Refusal):
    """A writer waited longer than the write timeout for its turn; nothing was written."""

    code = "write_busy"


# The queues (by folder) whose turn each thread holds: a second turn taken by the same thread
# would queue behind its own first one, and every writer after it (in every process) with it.
_HELD: set[tuple[Path, int]] = set()
_HELD_LOCK = threading.Lock()

DEFAULT_WRITE_TIMEOUT = 30.0  # seconds; SQLite's busy_timeout is set to the same


class _Wait:
    """Waiting for the writer before, in a thread of its own, so the wait can end at a deadline.

    The thread blocks on the flock of the slot before (the kernel wakes it the moment that
    writer is done or dies). If the writer who queued gives up first, the thread goes on
    holding the writer's own slot until the one before is done, and only then lets it go: the
    writer behind still gets its turn exactly after the one before, never alongside it.
    """

    def __init__(self, own: int, before: int) -> None:
        self.own, self.before = own, before
        self.outcome: str | BaseException | None = None  # "held", "abandoned", or the error
        self.changed = threading.Condition()
        threading.Thread(target=self._run, name="write-queue-wait", daemon=True).start()

    def _run(self) -> None:
        try:
            fcntl.flock(self.before, fcntl.LOCK_SH)
            error: BaseException | None = None
        except BaseException as failure:  # reported to the writer, or the slot let go
            error = failure
        with self.changed:
            if self.outcome == "abandoned" or error is not None:
                os.close(self.before)
                if self.outcome == "abandoned":
                    os.close(self.own)  # hand the turn on: the one before is done
            if self.outcome is None:
                self.outcome = error if error is not None else "held"
            self.changed.notify_all()

    def until(self, seconds: float) -> bool:
        """Whether the turn came within ``seconds``; if not, the wait is abandoned."""
        with self.changed:
            try:
                self.changed.wait_for(lambda: self.outcome is not None, timeout=seconds)
            finally:  # given up, or interrupted: either way the thread hands the turn on
                if self.outcome is None:
                    self.outcome = "abandoned"
            if self.outcome == "abandoned":
                return False
            if isinstance(self.outcome, BaseException):
                os.close(self.own)
                raise self.outcome
            os.close(self.before)
            return True


class WriteQueue:
    """First come, first served for SQLite's one writer, across threads and processes.

    SQLite's busy handler sleeps and retries, so whoever polls at the right moment wins and a
    writer can wait behind later ones for seconds. Writers here queue before BEGIN IMMEDIATE:

    1. Each takes the next ticket k and, before the next ticket can be drawn, the flock of its
       own slot file k, held until its transaction has ended.
    2. It waits on the flock of slot k-1, which the kernel releases the moment that writer is
       done (or its process dies). Uncontended, the lock is free at once and nothing else runs.
    3. NOTE: a writer that waits longer than ``timeout`` gives up with WriteBusy, but its slot
       must not come free before the writer it was waiting for is done, or the writer behind
       it would run alongside that one. So the wait runs in a thread (_Wait) that, once given
       up, keeps holding slot k until slot k-1 comes free and then lets both go: the chain
       k-1 -> k -> k+1 stays whole, and k+1 gets its turn as soon as k-1 ends. If the process
       that gave up dies meanwhile, its slot comes free early; the writer behind then meets
       SQLite's own busy handler (same timeout), which still keeps writes one at a time.

    Written here: no library offers a FIFO lock across processes with a timeout; the slot
    files are reused modulo SLOTS, so it stays FIFO while fewer than SLOTS writers wait at once
    (gunicorn workers x threads is far fewer).
    """

    SLOTS = 256

    def __init__(self, folder: Path, *, timeout: float = DEFAULT_WRITE_TIMEOUT) -> None:
        self.folder = folder
        self.timeout = timeout
        folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_url(cls, url: str, *, timeout: float = DEFAULT_WRITE_TIMEOUT) -> WriteQueue | None:
        """The queue beside a SQLite file database (None in memory)."""
        path = url.removeprefix("sqlite:///")
        if path == url or not path or path == ":memory:" or path.startswith("file:"):
            return None
        return cls(Path(path).with_name(Path(path).name + "-writers"), timeout=timeout)

    def _open(self, name: str) -> int:
        return os.open(self.folder / name, os.O_RDWR | os.O_CREAT, 0o600)

    def tickets(self) -> int:
        """How many writers have queued so far (the next ticket)."""
        counter = self._open("ticket")
        try:
            raw = os.pread(counter, 8, 0)
        finally:
            os.close(counter)
        return int.from_bytes(raw, "big") if len(raw) == 8 else 0

    def take(self) -> WriteTurn:
        """Wait for every writer that queued before this one, then hold the turn.

        Raises WriteBusy when that takes longer than the queue's timeout.
        """
        holder = (self.folder, threading.get_ident())
        with _HELD_LOCK:
            if holder in _HELD:
                raise NestedWrite(
                    "this thread already has a write transaction open on this database; a second "
                    "one would wait for the first forever (finish or roll back the first)"
                )
        # 1. The ticket, and the own slot locked before the next ticket can be drawn.
        counter = self._open("ticket")
        try:
            fcntl.flock(counter, fcntl.LOCK_EX)
            raw = os.pread(counter, 8, 0)
            ticket = int.from_bytes(raw, "big") if len(raw) == 8 else 0
            own = self._open(f"slot-{ticket % self.SLOTS}")
            fcntl.flock(own, fcntl.LOCK_EX)
            os.pwrite(counter, (ticket + 1).to_bytes(8, "big"), 0)
        finally:
            os.close(counter)
        # 2. The writer before: free at once, or waited for until the timeout (3.).
        before = self._open(f"slot-{(ticket - 1) % self.SLOTS}")
        try:
            fcntl.flock(before, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            if not _Wait(own, before).until(self.timeout):
                raise WriteBusy(
                    "Hệ thống đang bận ghi. Chưa có gì được ghi lại: vui lòng thử lại sau ít phút.",
                    en="The system is busy writing. Nothing was recorded: please try again in "
                    "a moment.",
                    waited=self.timeout,
                ) from None
        except BaseException:
            os.close(before)
            os.close(own)
            raise
        else:
            os.close(before)
        with _HELD_LOCK:
            _HELD.add(holder)
        return WriteTurn(own, holder)


def make_engine(
    url: str,
    *,
    read_only: bool = False,
    write_timeout: float = DEFAULT_WRITE_TIMEOUT,
    **kwargs: Any,
) -> Engine:
    """Create an engine; on SQLite every transaction takes the write lock up front, in turn.

    ``read_only`` engines (page loads) begin deferred transactions instead: in WAL mode they read a
    consistent snapshot while a writer works, instead of queueing behind it. So does a session's
    transaction begun by read_first(). ``write_timeout``: seconds a SQLite writer waits for its
    turn (then WriteBusy) and for SQLite's lock (then "database is locked").
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": write_timeout}, **kwargs)
        queue = None if read_only else WriteQueue.for_url(url, timeout=write_timeout)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # NOTE: disable pysqlite's own transaction handling so BEGIN IMMEDIATE below is ours.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(write_timeout * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            # NOTE: FULL, not NORMAL: in WAL mode NORMAL may lose transactions that were
            # committed (and whose steps the person was told were signed) at a power loss.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            if read_only:
                connection.exec_driver_sql("BEGIN")
            elif connection.get_execution_options().get(READ_FIRST):
                connection.info[_QUERY_ONLY] = True
                connection.exec_driver_sql("PRAGMA query_only=1")
                connection.exec_driver_sql("BEGIN")
            else:
                if connection.info.pop(_QUERY_ONLY, False):
                    connection.exec_driver_sql("PRAGMA query_only=0")
                if queue is not None and _TURN not in connection.info:
                    connection.info[_TURN] = queue.take()
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        if queue is not None:
            _release_turn_after_each_transaction(engine)
        return engine
    engine = create_engine(url, pool_pre_ping=True, **kwargs)

    @event.listens_for(engine, "begin")
    def _on_pg_begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_FIRST):
            # One snapshot for the whole read, as SQLite's deferred transaction reads.
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    return engine


def _release(holder: Any) -> None:
    try:
        info = holder.info
    except (AttributeError, NotImplementedError):  # the dialect's first connect: no turn
        return
    turn = info.pop(_TURN, None)
    if turn is not None:
        turn.release()


def _release_turn_after_each_transaction(engine: Engine) -> None:
    """Hand the turn on the moment COMMIT or ROLLBACK has returned (not before, or the next
    writer would meet SQLite's busy handler after all)."""
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            _release(dbapi_connection)

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            _release(dbapi_connection)

    # NOTE: SQLAlchemy has no event after a commit at the Core level; wrapping this engine's
    # dialect instance (not the class) is the narrowest hook.
    setattr(dialect, "do_commit", do_commit)  # noqa: B010
    setattr(dialect, "do_rollback", do_rollback)  # noqa: B010

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        _release(record)

    @event.listens_for(engine, "invalidate")
    def _on_invalidate(_dbapi_connection: Any, record: Any, _exception: Any) -> None:
        _release(record)


def read_first(session: Session) -> None:
    """Begin the session's transaction as a read: no write lock, writes refused.

    The slow part of a step (the passkey assertion check, the key unlock, a password hash) runs
    in it; begin_write() then ends it, and the next transaction takes the write lock in turn.
    A no-op on a session whose transaction has already begun.
    """
    if not session.in_transaction():
        # Objects loaded in earlier transactions are read again in this one: a step checked
        # in it relies on everything it read coming from one snapshot (ApprovalService.commit).
        session.expire_all()
        session.connection(execution_options={READ_FIRST: True})


def reading_first(session: Session) -> bool:
    """Whether the session is in a read_first() transaction (begin_write() is still to come)."""
    return session.in_transaction() and bool(
        session.connection().get_execution_options().get(READ_FIRST)
    )


def begin_write(session: Session, *, keep_read: bool = False) -> bool:
    """End a read_first() transaction (nothing was written in it) so that the next query takes
    the write lock; objects read so far are read again under it, unless ``keep_read``: then
    they keep what the read saw, and the caller decides what to read again. Returns whether it
    did (a no-op otherwise)."""
    if reading_first(session):
        if keep_read:
            session.commit()  # sessions here do not expire their objects at commit
        else:
            session.rollback()
        return True
    return False


def write_queue(engine: Engine) -> WriteQueue | None:
    """The FIFO queue of this engine's writers (SQLite file databases only)."""
    return (
        WriteQueue.for_url(engine.url.render_as_string())
        if engine.dialect.name == "sqlite"
        else None
    )


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


@contextmanager
def transaction_of(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits at the end, or rolls back on any exception."""
    session = sessions()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


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
