"""What a district's IT staff watch: /metrics, /healthz and /readyz, and the structured logs."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, update

from workflow.mailer import SmtpSettings, deliver_due
from workflow.migrate import upgrade
from workflow.models import OutboxMail
from workflow.queries import event_count
from workflow.runtime import Runtime, Settings

from .factories import School
from .smtp_server import SmtpServer, free_port
from .web import Browser

ORIGIN = "th-demo.edu.vn/expenses"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(app: Flask, **headers: str) -> Samples:
    """Every sample of a scrape of /metrics, by name and labels."""
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """How each labelled sample of ``name`` changed between two scrapes (only those that did)."""
    keys = {k for k in (*before, *after) if k[0] == name}
    changes = {k[1]: after.get(k, 0.0) - before.get(k, 0.0) for k in keys}
    return {labels: delta for labels, delta in changes.items() if delta}


# --- /metrics ------------------------------------------------------------------------------------


def test_a_signed_step_moves_the_step_count_and_the_queues(app: Flask, school: School) -> None:
    number = school.to_state("submitted")
    before = scrape(app)
    assert value(before, "expenses_requests", origin=ORIGIN, state="submitted") == 1
    assert (
        value(before, "expenses_request_oldest_age_seconds", origin=ORIGIN, state="submitted") > 0
    )
    assert Browser(app).login("long").act(number, "forward", comment="hợp lý").status_code == 302
    after = scrape(app)
    assert moved(before, after, "expenses_signed_steps_total") == {
        frozenset({("origin", ORIGIN), ("action", "forward")}): 1.0
    }
    assert value(after, "expenses_requests", origin=ORIGIN, state="submitted") == 0
    assert value(after, "expenses_requests", origin=ORIGIN, state="forwarded") == 1
    assert value(after, "expenses_database_up") == 1


def test_a_refusal_is_counted_by_its_rule(app: Flask, school: School) -> None:
    number = school.to_state("submitted")
    before = scrape(app)
    refused = Browser(app).login("long").act(number, "return")  # a return needs a comment
    assert refused.status_code == 422
    after = scrape(app)
    assert moved(before, after, "expenses_refusals_total") == {
        frozenset({("code", "comment_required"), ("rule", "")}): 1.0
    }
    assert moved(before, after, "expenses_signed_steps_total") == {}


def test_a_guard_refusal_is_counted_with_the_guard(app: Flask, school: School) -> None:
    """The proposer tries to forward her own request: refused by the separation-of-duties guard."""
    number = school.draft(owner="long")
    school.act(number, "submit", "long")
    before = scrape(app)
    refused = Browser(app).login("long").act(number, "forward", comment="tự trình")
    assert refused.status_code in (403, 422)
    after = scrape(app)
    (labels,) = moved(before, after, "expenses_refusals_total")
    assert dict(labels)["rule"] == "actor_not_owner"


def test_failed_mails_and_the_backlog_are_shown(app: Flask, school: School) -> None:
    school.to_state("submitted")  # mails the reviewer
    with school.runtime.transaction() as session:
        pending = session.query(OutboxMail).filter(OutboxMail.status == "pending").count()
        first = (
            session.query(OutboxMail)
            .filter(OutboxMail.status == "pending")
            .order_by(OutboxMail.id)
            .first()
        )
        assert first is not None and pending >= 1
        session.execute(update(OutboxMail).where(OutboxMail.id == first.id).values(status="failed"))
    samples = scrape(app)
    assert value(samples, "expenses_outbox_mails", origin=ORIGIN, status="failed") == 1
    assert value(samples, "expenses_outbox_mails", origin=ORIGIN, status="pending") == pending - 1
    assert value(samples, "expenses_outbox_oldest_due_age_seconds", origin=ORIGIN) > 0


def test_checkpoint_and_verification_are_shown_after_they_happen(
    app: Flask, school: School, runner: FlaskCliRunner
) -> None:
    school.to_state("approved")
    assert runner.invoke(args=["checkpoint"]).exit_code == 0
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    with school.runtime.transaction() as session:
        size = event_count(session)
    samples = scrape(app)
    assert value(samples, "expenses_checkpoint_size", origin=ORIGIN) == size
    assert value(samples, "expenses_checkpoint_timestamp_seconds", origin=ORIGIN) > 1.7e9
    assert value(samples, "expenses_verification_valid", origin=ORIGIN) == 1
    assert value(samples, "expenses_verification_size", origin=ORIGIN) == size
    assert value(samples, "expenses_verification_timestamp_seconds", origin=ORIGIN) > 1.7e9


def test_metrics_need_the_token_when_one_is_set(app: Flask) -> None:
    app.config["METRICS_TOKEN"] = "s3cret-scraper-token"
    client = app.test_client()
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert scrape(app, Authorization="Bearer s3cret-scraper-token")


def test_without_a_token_metrics_are_for_loopback_clients_only(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/metrics").status_code == 200  # the test client comes from 127.0.0.1
    away = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert away.status_code == 403
    # a balancer on the same host forwards a stranger's scrape: refused too
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert proxied.status_code == 403


# --- /healthz and /readyz -----------------------------------------------------------------------


def _app_on(settings: Settings) -> Flask:
    from webapp import create_app

    return create_app({"SETTINGS": settings, "TESTING": True})


def test_a_working_node_is_live_and_ready(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "institution_key": "ok"},
    }


def test_a_stopped_database_makes_the_node_not_ready_but_alive(runtime: Runtime) -> None:
    port = free_port()  # nothing listens there: the database server is down
    app = _app_on(
        replace(runtime.settings, database_url=f"postgresql+psycopg://app@127.0.0.1:{port}/x")
    )
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    checks = ready.get_json()["checks"]
    assert checks["database"] != "ok" and checks["institution_key"] == "ok"
    assert value(scrape(app), "expenses_database_up") == 0
    app.extensions["runtime"].dispose()


def test_a_database_behind_the_migrations_is_not_ready(runtime: Runtime, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = create_engine(url)
    upgrade(engine, "0001")
    engine.dispose()
    app = _app_on(replace(runtime.settings, database_url=url))
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["migrations"].startswith("at ['0001'], head is")
    app.extensions["runtime"].dispose()


def test_a_missing_institution_key_makes_the_node_not_ready(
    runtime: Runtime, tmp_path: Path
) -> None:
    app = _app_on(replace(runtime.settings, keys_dir=tmp_path / "no-keys"))
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503
    checks = ready.get_json()["checks"]
    assert checks["database"] == "ok" and "not found" in checks["institution_key"]
    app.extensions["runtime"].dispose()


# --- logs ---------------------------------------------------------------------------------------


def _json_app(runtime: Runtime, tmp_path: Path, stream: io.StringIO) -> Flask:
    from webapp import create_app

    app = create_app(
        {
            "SETTINGS": runtime.settings,
            "CLOCK": runtime.clock,
            "TESTING": True,
            "ATTACHMENTS_DIR": str(tmp_path / "attachments"),
            "LOG_FORMAT": "json",
            "LOG_STREAM": stream,
        }
    )
    app.extensions["runtime"].engine.dispose()
    app.extensions["runtime"] = runtime
    return app


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_request_is_one_json_line_with_its_request_id(
    runtime: Runtime, school: School, tmp_path: Path
) -> None:
    stream = io.StringIO()
    app = _json_app(runtime, tmp_path, stream)
    number = school.to_state("submitted")
    browser = Browser(app).login("hanh")
    stream.truncate(0), stream.seek(0)
    response = browser.get(f"/requests/{number}", headers={"X-Request-ID": "lb-7f3a.42"})
    assert response.status_code == 200 and response.headers["X-Request-ID"] == "lb-7f3a.42"
    (line,) = _lines(stream)
    assert line["request_id"] == "lb-7f3a.42" and line["origin"] == ORIGIN
    assert (line["method"], line["route"], line["status"], line["user"]) == (
        "GET",
        "/requests/<reqno:number>",
        200,
        "hanh",
    )
    assert line["path"] == f"/requests/{number}" and isinstance(line["duration_ms"], float)
    assert line["logger"] == "webapp.requests" and line["level"] == "INFO"


def test_a_forged_request_id_is_replaced_not_echoed(
    runtime: Runtime, school: School, tmp_path: Path
) -> None:
    stream = io.StringIO()
    app = _json_app(runtime, tmp_path, stream)
    forged = 'x" "user": "admin" ' + "A" * 200  # quotes, spaces, too long
    response = app.test_client().get("/login", headers={"X-Request-ID": forged})
    made = response.headers["X-Request-ID"]
    assert len(made) == 32 and int(made, 16) >= 0
    assert _lines(stream)[-1]["request_id"] == made and _lines(stream)[-1]["user"] is None


def test_an_error_is_logged_with_the_request_id(
    runtime: Runtime, school: School, tmp_path: Path
) -> None:
    stream = io.StringIO()
    app = _json_app(runtime, tmp_path, stream)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("the disk is full")

    response = app.test_client().get("/boom", headers={"X-Request-ID": "err-1"})
    assert response.status_code == 500
    error = next(line for line in _lines(stream) if line["level"] == "ERROR")
    assert error["request_id"] == "err-1" and "the disk is full" in str(error["exc_info"])
    assert _lines(stream)[-1]["status"] == 500


def test_the_default_log_is_readable_text(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    from webapp.ops.logs import LOGGERS

    handler = next(h for h in logging.getLogger(LOGGERS[0]).handlers if hasattr(h, "stream"))
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    app.test_client().get("/login", headers={"X-Request-ID": "plain-1"})
    line = stream.getvalue().strip()
    assert "GET /login 200" in line and line.endswith("[plain-1]") and not line.startswith("{")


def test_mail_delivery_is_logged_sent_or_failed(
    school: School, caplog: pytest.LogCaptureFixture
) -> None:
    school.to_state("submitted")
    runtime = school.runtime
    down = SmtpSettings(host="127.0.0.1", port=free_port(), timeout=2)
    with caplog.at_level(logging.INFO, logger="workflow.mailer"):
        deliver_due(runtime.transaction, settings=down, now=runtime.now())
        retried = [r for r in caplog.records if r.name == "workflow.mailer"]
        caplog.clear()
        smtp = SmtpServer().start()
        try:
            up = SmtpSettings(host="127.0.0.1", port=smtp.port)
            deliver_due(runtime.transaction, settings=up, now=runtime.now() + timedelta(hours=1))
        finally:
            smtp.stop()
        sent = [r for r in caplog.records if r.name == "workflow.mailer"]
    assert retried and all(r.levelname == "WARNING" for r in retried)
    assert retried[0].mail_status == "pending" and "Connection refused" in retried[0].error  # type: ignore[attr-defined]
    assert {r.message_id for r in sent} == {r.message_id for r in retried}  # type: ignore[attr-defined]
    assert all(r.mail_status == "sent" and r.error is None for r in sent)  # type: ignore[attr-defined]


# --- the checkpoint schedule ---------------------------------------------------------------------


def test_the_checkpoint_schedule_signs_only_when_the_log_grew_and_the_last_is_old(
    school: School, runner: FlaskCliRunner
) -> None:
    runtime = school.runtime
    every = timedelta(minutes=60)
    first = runtime.scheduled_checkpoint(every)
    assert first is not None  # the log has events and no checkpoint yet
    school.to_state("submitted")
    assert runtime.scheduled_checkpoint(every) is None  # grew, but the last one is fresh
    runtime.clock.now += timedelta(hours=2)  # type: ignore[attr-defined]
    second = runtime.scheduled_checkpoint(every)
    assert second is not None and second.size > first.size
    runtime.clock.now += timedelta(hours=2)  # type: ignore[attr-defined]
    assert runtime.scheduled_checkpoint(every) is None  # old, but nothing new to cover
    result = runner.invoke(args=["checkpoint", "--if-older-than", "60"])
    assert result.exit_code == 0 and result.output == "No checkpoint due.\n"
