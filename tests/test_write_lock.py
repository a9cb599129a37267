"""The write lock is taken only for the append, and writers get it in the order they came.

Slow work (a key unlock, a passkey assertion check, a password hash) runs before the lock; a
step whose request changed meanwhile is refused under the lock and writes nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from workflow.audit import lock_head
from workflow.db import NestedWrite, read_first, write_queue
from workflow.enrollment import Keyring
from workflow.models import AuditEvent, User
from workflow.runtime import Runtime

from .factories import SECRET, School
from .web import AuthActions

WAIT = 20  # seconds a test waits for another thread before it gives up (and fails)


@contextmanager
def unlock_held_for(login: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """``login``'s key unlock stops half-way until the test lets it go (a slow scrypt).

    ``state["entered"]`` is set when the unlock started; setting ``state["go"]`` lets it end;
    ``state["released"]`` says whether the test let it go (False: it gave up waiting).
    """
    state: dict[str, Any] = {"entered": threading.Event(), "go": threading.Event()}
    original = Keyring.unlock

    def unlock(self: Keyring, user: User, secret: str, **kwargs: Any) -> Any:
        if user.login == login:
            state["entered"].set()
            state["released"] = state["go"].wait(WAIT)
        return original(self, user, secret, **kwargs)

    monkeypatch.setattr(Keyring, "unlock", unlock)
    yield state


def _in_thread(action: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = action()
        except BaseException as error:  # reported by the test, not lost in the thread
            result["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_a_slow_key_unlock_holds_nobody_up(
    app: Flask, auth: AuthActions, school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While hanh's key unlocks (slow, by design), nga's signed submit is recorded."""
    slow, quick = school.draft("hanh"), school.draft("nga")
    hanh, nga = auth.session("hanh"), auth.session("nga")
    hanh.get(f"/requests/{slow}")
    nga.get(f"/requests/{quick}")
    with unlock_held_for("hanh", monkeypatch) as held:
        thread, result = _in_thread(
            lambda: hanh.post(f"/requests/{slow}/act", {"trigger": "submit", "secret": SECRET})
        )
        assert held["entered"].wait(WAIT)
        response = nga.post(f"/requests/{quick}/act", {"trigger": "submit", "secret": SECRET})
        assert response.status_code == 302
        quick_row = school.request(quick)
        assert quick_row is not None and quick_row.state == "submitted"
        held["go"].set()
        thread.join(WAIT * 2)
    assert held["released"], "nga's step waited for hanh's unlock to end"
    assert result["value"].status_code == 302
    slow_row = school.request(slow)
    assert slow_row is not None and slow_row.state == "submitted"


def test_a_step_refused_because_the_request_changed_during_the_unlock_writes_nothing(
    app: Flask, auth: AuthActions, school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hanh submits in one tab and withdraws in another while the submit's key unlocks: the
    submit, checked before the lock, is refused under it; request, log and outbox stay as the
    withdrawal left them."""
    number = school.draft("hanh")
    first, second = auth.session("hanh"), auth.session("hanh")
    first.get(f"/requests/{number}")
    second.get(f"/requests/{number}")
    with unlock_held_for("hanh", monkeypatch) as held:
        thread, result = _in_thread(
            lambda: first.post(f"/requests/{number}/act", {"trigger": "submit", "secret": SECRET})
        )
        assert held["entered"].wait(WAIT)
        monkeypatch.undo()  # the second tab's unlock is not held
        response = second.post(f"/requests/{number}/act", {"trigger": "withdraw", "secret": SECRET})
        assert response.status_code == 302
        after_withdrawal = school.snapshot(number)
        held["go"].set()
        thread.join(WAIT * 2)
    refused = result["value"]
    assert refused.status_code == 302  # back to the request, with the reason
    page = first.get(f"/requests/{number}").get_data(as_text=True)
    assert "trước bạn" in page  # "... did 'withdraw' on this request at ..., before you"
    assert school.snapshot(number) == after_withdrawal
    row = school.request(number)
    assert row is not None and row.state == "withdrawn"


def _waiting_writers(runtime: Runtime) -> int:
    """Writers queued for the write lock: SQLite's ticket count, PostgreSQL's lock waits."""
    queue = write_queue(runtime.engine)
    if queue is not None:
        return queue.tickets()
    with runtime.engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
        )


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "a writer never reached the queue"
        time.sleep(0.01)


def test_writers_append_in_the_order_they_came(school: School) -> None:
    """Five proposers' steps queue behind a long write; they are appended first come, first
    served (SQLite's own busy handler lets whoever polls at the right moment in first)."""
    runtime = school.runtime
    numbers = [school.draft("hanh") for _ in range(5)]

    def submit(number: str) -> Callable[[], None]:
        def run() -> None:
            session = runtime.sessions()
            try:
                read_first(session)  # as the web's signing views do
                user = runtime.directory(session).get_user("hanh")
                assert user is not None
                runtime.service(session).act(number, "submit", user, SECRET)
                session.commit()
            finally:
                session.close()

        return run

    holding, done = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with runtime.transaction() as session:
            lock_head(session)
            holding.set()
            done.wait(WAIT * 2)

    blocker, _ = _in_thread(hold_the_lock)
    assert holding.wait(WAIT)
    queued = _waiting_writers(runtime)
    threads = []
    for position, number in enumerate(numbers, start=1):
        thread, result = _in_thread(submit(number))
        threads.append((thread, result))
        _until(lambda position=position: _waiting_writers(runtime) >= queued + position)
    done.set()
    blocker.join(WAIT)
    for thread, result in threads:
        thread.join(WAIT * 2)
        assert "error" not in result, result
    with runtime.transaction() as session:
        order = session.scalars(
            select(AuditEvent.request)
            .where(AuditEvent.request.in_(numbers))
            .order_by(AuditEvent.seq)
        ).all()
    assert list(order) == numbers


def test_a_second_write_transaction_in_the_same_thread_is_refused_not_left_waiting(
    school: School,
) -> None:
    """Queued behind its own first transaction it would wait forever, and every writer after it."""
    runtime = school.runtime
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("the writers' queue is SQLite's (PostgreSQL queues on its own locks)")
    with runtime.transaction() as first:
        first.execute(text("SELECT 1"))
        with pytest.raises(NestedWrite), runtime.transaction() as second:
            second.execute(text("SELECT 1"))
    number = school.to_state("submitted")  # the queue goes on: the refused one took no ticket
    assert school.request(number).state == "submitted"  # type: ignore[union-attr]
