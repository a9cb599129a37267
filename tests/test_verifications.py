"""Each live verification is kept (when, how many events, the result), for the audit page, the
district dashboard and the metrics."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import text

from workflow.livecheck import verify_live
from workflow.queries import event_count
from workflow.verifications import latest_verification, latest_verifications

from .factories import School
from .web import Browser
from .web import text as page_text

ORIGIN = "th-demo.edu.vn/expenses"


def test_a_log_never_verified_has_no_record(school: School) -> None:
    with school.runtime.transaction() as session:
        assert latest_verification(session, origin=ORIGIN) is None
        assert latest_verifications(session) == {}


def test_cli_verification_is_recorded_with_its_size_and_result(
    school: School, runner: FlaskCliRunner
) -> None:
    school.to_state("approved")
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    with school.runtime.transaction() as session:
        kept = latest_verification(session, origin=ORIGIN)
        size = event_count(session)
    assert kept is not None
    assert (kept.valid, kept.problems, kept.source, kept.origin) == (True, 0, "cli", ORIGIN)
    assert kept.size == size


def test_a_failed_verification_is_recorded_as_failed(school: School) -> None:
    """Someone edits an approved amount in the database: the record says the log did not verify."""
    runtime = school.runtime
    number = school.to_state("approved")
    with runtime.transaction() as session:
        session.execute(
            text("UPDATE requests SET amount_vnd = 18000000 WHERE number = :n"), {"n": number}
        )
    with runtime.transaction() as session:
        report = verify_live(
            session, institution=runtime.institution, now=runtime.now(), source="web"
        )
    with runtime.transaction() as session:
        kept = latest_verification(session, origin=ORIGIN)
        by_origin = latest_verifications(session)
    assert not report.valid
    assert kept is not None and not kept.valid and kept.problems == len(report.problems)
    assert kept.source == "web" and by_origin[ORIGIN].id == kept.id


def test_a_verification_without_a_source_is_not_recorded(school: School) -> None:
    runtime = school.runtime
    with runtime.transaction() as session:
        verify_live(session, institution=runtime.institution, now=runtime.now())
    with runtime.transaction() as session:
        assert latest_verification(session) is None


def test_the_audit_page_says_when_the_log_was_last_verified(app: Flask, school: School) -> None:
    school.to_state("approved")
    kiem = Browser(app).login("kiem")
    assert "Chưa lần nào" in page_text(kiem.get("/audit"))
    kiem.post("/audit/verify")
    page = page_text(kiem.get("/audit"))
    with school.runtime.transaction() as session:
        kept = latest_verification(session, origin=ORIGIN)
    assert kept is not None and kept.source == "web" and kept.valid
    assert f"{kept.size} sự kiện, đạt" in page
