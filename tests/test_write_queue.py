"""SQLite's writers' queue gives up after the write timeout, and the queue goes on behind it.

A writer stuck inside its transaction must not make every later writer (every thread, every
gunicorn worker) wait forever: the next one is told the system is busy, and those queued behind
the one that gave up still get their turn, in order, as soon as the stuck one ends.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask

from workflow.audit import lock_head
from workflow.db import WriteBusy, WriteQueue
from workflow.runtime import Runtime

from .conftest import SteppingClock
from .test_write_lock import WAIT, _in_thread
from .web import AuthActions


def _queued(queue: WriteQueue, count: int) -> None:
    """Wait until ``count`` writers have drawn their ticket."""
    deadline = time.monotonic() + WAIT
    while queue.tickets() < count:
        assert time.monotonic() < deadline, "a writer never reached the queue"
        time.sleep(0.01)


def test_a_stuck_writer_makes_the_next_one_give_up_and_the_one_after_still_gets_its_turn(
    tmp_path: Path,
) -> None:
    """The first writer holds its turn (stuck); the second, with a short timeout, is told the
    system is busy; the third, queued behind the second, gets its turn once the first ends
    (not before: the second's abandoned place does not let it in alongside the first)."""
    folder = tmp_path / "writers"
    patient = WriteQueue(folder, timeout=WAIT * 2)
    impatient = WriteQueue(folder, timeout=1)
    stuck = patient.take()
    second_thread, second = _in_thread(impatient.take)
    _queued(patient, 2)
    third_has_turn = threading.Event()

    def third_writer() -> None:
        turn = patient.take()
        third_has_turn.set()
        turn.release()

    third_thread, third = _in_thread(third_writer)
    _queued(patient, 3)
    second_thread.join(WAIT)
    assert isinstance(second.get("error"), WriteBusy), second
    assert second["error"].code == "write_busy"
    assert "thử lại" in second["error"].text("vi") and "try again" in second["error"].text("en")
    assert not third_has_turn.is_set(), "the third writer ran alongside the stuck one"
    stuck.release()
    third_thread.join(WAIT)
    assert third_has_turn.is_set() and "error" not in third, third
    patient.take().release()  # and the queue goes on


def test_a_writer_whose_process_died_holding_the_turn_holds_nobody_up(tmp_path: Path) -> None:
    """A gunicorn worker killed inside its transaction: the kernel lets its turn go."""
    folder = tmp_path / "writers"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from workflow.db import WriteQueue\n"
        "WriteQueue(Path(sys.argv[1])).take()\n"
        "print('holding', flush=True)\n"
        "time.sleep(600)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE, text=True
    ) as worker:
        try:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "holding"
        finally:
            worker.kill()
    WriteQueue(folder, timeout=WAIT).take().release()


@pytest.fixture
def impatient_app(app: Flask, runtime: Runtime, clock: SteppingClock) -> Iterator[Flask]:
    """The app with a one-second write timeout (EXPENSES_WRITE_TIMEOUT=1)."""
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("the writers' queue is SQLite's (PostgreSQL queues on its own locks)")
    quick = Runtime(replace(runtime.settings, write_timeout=1), clock=clock)
    app.extensions["runtime"] = quick
    yield app
    quick.dispose()


def test_a_writer_left_waiting_too_long_is_told_the_system_is_busy(
    impatient_app: Flask, auth: AuthActions, runtime: Runtime
) -> None:
    """While another writer is stuck, a post gets the busy page (503) in Vietnamese, and
    nothing of it is recorded; once the writer ends, the same post goes through."""
    hanh = auth.session("hanh")
    hanh.get("/")
    holding, done = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with runtime.transaction() as session:
            lock_head(session)
            holding.set()
            done.wait(WAIT * 2)

    blocker, _ = _in_thread(hold_the_lock)
    try:
        assert holding.wait(WAIT)
        response = hanh.post("/language", {"language": "en"})
    finally:
        done.set()
        blocker.join(WAIT)
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert "Hệ thống đang bận" in response.get_data(as_text=True)
    assert hanh.post("/language", {"language": "en"}).status_code == 302
