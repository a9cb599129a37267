"""Kill -9 in the middle of transitions, again and again: nothing half-written survives."""

from __future__ import annotations

import os
import random
import select as io_select
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from workflow.clock import utcnow
from workflow.livecheck import verify_live
from workflow.models import AuditEvent, OutboxMail
from workflow.runtime import Runtime

from .factories import School

KILLS = 25
NOTIFYING = {"submit", "forward", "approve", "pay", "return", "reject"}


def test_sigkill_during_transitions_leaves_a_sound_log(school: School, settings) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(13)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    completed = 0
    for _ in range(KILLS):
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.crash_worker",
                settings.database_url,
                str(settings.keys_dir),
            ],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # NOTE: wait for its first committed step (start-up time depends on the machine's load),
        # then kill it at a random moment: it is mid-transition most of the time.
        assert child.stdout is not None
        ready, _, _ = io_select.select([child.stdout], [], [], 60)
        first = child.stdout.readline() if ready else ""
        time.sleep(rng.uniform(0.0, 0.5))
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL, err
        completed += len((first + out).splitlines())
    print(f"\n{KILLS} kills, {completed} committed steps between them")
    assert completed > KILLS  # the children really did work between the kills
    _assert_sound(school.runtime)


def _assert_sound(runtime: Runtime) -> None:
    with runtime.transaction() as session:
        # NOTE: the killed workers signed with the real clock, so the checkpoint is made now too.
        report = verify_live(session, institution=runtime.institution, now=utcnow())
        assert report.valid, report.problems[:5]
        events = {e.seq: e.action for e in session.scalars(select(AuditEvent))}
        mails = session.scalars(select(OutboxMail)).all()
    mailed = {m.event_seq for m in mails if m.event_seq is not None}
    assert mailed <= set(events), "a mail without its committed event"
    assert {seq for seq, action in events.items() if action in NOTIFYING} == mailed, (
        "an event lost its mails"
    )
