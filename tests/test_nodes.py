"""Two app nodes (gunicorn processes on two ports) and two workers on one PostgreSQL database:
sessions, sign-in limits, mail claims and scheduled checkpoints hold across them."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text

from workflow.models import CheckpointRow, OutboxMail
from workflow.runtime import Settings

from .conftest import SETTINGS, Templates
from .factories import School
from .nodes import ROOT, Browser, Node, node_env
from .smtp_server import Recorder, SmtpServer

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"), reason="app nodes share a PostgreSQL database"
)
PASSWORD = "demo-2024"


@pytest.fixture(scope="module")
def nodes(
    templates: Templates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Node, Node]]:
    """Node A and node B, two gunicorn workers each, behind a balancer (X-Forwarded-For), on one
    database with the demo school; each test's browsers come from their own addresses."""
    folder = tmp_path_factory.mktemp("nodes")
    database = templates.copy("school", folder)
    keys = folder / "keys"
    shutil.copytree(templates.get("school").keys_dir, keys)
    settings = replace(SETTINGS, database_url=next(database), keys_dir=keys)
    env = {
        "EXPENSES_TRUSTED_PROXIES": "1",
        "EXPENSES_LOGIN_FAILURES_PER_ACCOUNT": "3",
        "EXPENSES_LOGIN_TRIES_PER_MINUTE": "8",
        "EXPENSES_LOG_FORMAT": "json",
    }
    started: list[Node] = []
    try:
        started.append(Node.start(settings, folder, **env))
        started.append(Node.start(settings, folder, **env))
        yield started[0], started[1]
    finally:
        for node in started:
            node.stop()
        next(database, None)  # drops the database


def test_a_session_opened_on_one_node_works_on_the_other_and_ends_on_both(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    browser = Browser("198.51.100.1")
    assert browser.login(a, "hanh", PASSWORD).status == 302
    assert browser.get(b, "/requests/mine").status == 200  # the cookie node A gave
    kept = browser.cookie  # what a thief copied, or the same person's other tab
    assert browser.get(a, "/requests/mine").status == 200
    assert browser.post(a, "/logout", {}).status == 302
    replayed = Browser("198.51.100.1", cookie=kept).get(b, "/requests/mine")
    assert replayed.status == 302 and "/login" in replayed.headers["Location"]


def test_sign_in_limits_count_across_nodes(nodes: tuple[Node, Node]) -> None:
    """Guesses spread over both nodes are counted together, and so is a flood of tries."""
    a, b = nodes
    botnet = [Browser(f"203.0.113.{i}").login((a, b)[i % 2], "mai", f"guess-{i}") for i in range(4)]
    assert [r.status for r in botnet] == [200, 200, 200, 429]  # 3 failures allowed per account
    # one address: 8 tries a minute, whatever their outcome and whichever node takes them
    flood = "198.51.100.200"
    for i in range(8):
        assert Browser(flood).login((b, a)[i % 2], "nga", PASSWORD).status == 302
    assert Browser(flood).login(a, "nga", PASSWORD).status == 429
    assert Browser(flood).login(b, "long", PASSWORD).status == 429
    assert Browser("198.51.100.201").login(b, "long", PASSWORD).status == 302


def _scrape(node: Node) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body = node.request("GET", "/metrics").body
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def test_every_worker_is_counted_and_every_request_logged(nodes: tuple[Node, Node]) -> None:
    a, _ = nodes
    for i in range(12):
        assert a.request("GET", "/healthz", headers={"X-Request-ID": f"probe-{i}"}).status == 200
    healthz = frozenset({("method", "GET"), ("route", "/healthz"), ("status", "200")})
    # summed over node A's two workers, whichever of them answered each probe
    assert _scrape(a)[("expenses_http_requests_total", healthz)] == 12
    lines = [json.loads(line) for line in a.log.read_text().splitlines() if line.startswith("{")]
    probes = [line for line in lines if str(line.get("request_id", "")).startswith("probe-")]
    assert sorted(line["request_id"] for line in probes) == sorted(f"probe-{i}" for i in range(12))
    assert {(line["route"], line["status"]) for line in probes} == {("/healthz", 200)}


class SlowRecorder(Recorder):
    """A mail server that takes its time, so two senders are surely at work at once."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(0.15)
        return await super().handle_DATA(server, session, envelope)


def _flask(settings: Settings, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=node_env(settings, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_mail_workers_at_once_never_send_a_mail_twice(school: School) -> None:
    for line, amount in [("SW-ASSET", "1.800.000"), ("WEB", "2.400.000"), ("PRINT", "300.000")]:
        school.to_state("approved", line=line, amount=amount)
    with school.runtime.transaction() as session:
        due = set(
            session.scalars(select(OutboxMail.message_id).where(OutboxMail.status == "pending"))
        )
    assert len(due) >= 6
    smtp = SmtpServer()
    smtp.recorder = SlowRecorder()
    smtp.start()
    try:
        env = {"EXPENSES_SMTP_HOST": "127.0.0.1", "EXPENSES_SMTP_PORT": str(smtp.port)}
        workers = [_flask(school.runtime.settings, "notify", "send", **env) for _ in range(2)]
        outputs = [worker.communicate(timeout=120) for worker in workers]
    finally:
        smtp.stop()
    assert all(worker.returncode == 0 for worker in workers), outputs
    received = Counter(str(m["Message-ID"]) for m in smtp.recorder.messages)
    assert set(received) == due and set(received.values()) == {1}
    with school.runtime.transaction() as session:
        left = session.scalar(
            select(func.count()).select_from(OutboxMail).where(OutboxMail.status != "sent")
        )
    assert left == 0


def _waiting_on_locks(school: School, count: int) -> None:
    """Until ``count`` other sessions wait on a lock (the head this test holds)."""
    for _ in range(300):
        with school.runtime.engine.connect() as connection:
            waiting = connection.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            ).scalar_one()
        if waiting >= count:
            return
        time.sleep(0.1)
    raise AssertionError("the checkpoint commands never reached the head lock")


def test_of_two_nodes_running_the_checkpoint_schedule_at_once_one_signs(school: School) -> None:
    school.to_state("submitted")
    settings = school.runtime.settings
    env = {"EXPENSES_WITNESSES": "giamsat@pgd.example.vn"}
    with school.runtime.engine.connect() as holder:
        before = holder.execute(select(func.count()).select_from(CheckpointRow)).scalar_one()
        holder.execute(text("SELECT seq FROM log_head WHERE id = 1 FOR UPDATE"))
        # both nodes' cron fire while the log head is busy: they queue on it together
        runs = [_flask(settings, "checkpoint", "--if-older-than", "60", **env) for _ in range(2)]
        _waiting_on_locks(school, 2)
        holder.rollback()  # the head is free: one goes first
    outputs = [run.communicate(timeout=60)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    assert sorted(o.startswith("th-demo.edu.vn/expenses\n") for o in outputs) == [False, True]
    assert "No checkpoint due." in "".join(outputs)
    with school.runtime.transaction() as session:
        after = session.scalar(select(func.count()).select_from(CheckpointRow))
        witness_mails = session.scalar(
            select(func.count()).select_from(OutboxMail).where(OutboxMail.kind == "checkpoint")
        )
    assert after == before + 1 and witness_mails == 1
