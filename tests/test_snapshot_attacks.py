"""Attacks on the step worked out in a snapshot before the write lock (ApprovalService.commit):
state a step depends on that changes without an event, a passkey counter spent outside a step,
and two steps that race on one request or one budget line. Each must be refused (and write
nothing) exactly where the check under the lock refused it, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import event

from expense_audit.errors import GuardRefused, WorkflowError
from expense_audit.webauthn import b64url_decode
from workflow.db import read_first
from workflow.models import Request

from .factories import QUOTE, QUOTE2, SECRET, School
from .softauthn import SoftAuthenticator
from .test_web_mandates import KT, mandates
from .test_web_passkeys import _confirm, _phone, _register
from .test_write_lock import WAIT, _in_thread, _until, _waiting_writers
from .web import AuthActions, Browser, text


def _sign_with_counter(
    browser: Browser, phone: SoftAuthenticator, number: str, trigger: str, sign_count: int
) -> Any:
    prepared = browser.post_json(f"/requests/{number}/decision", {"trigger": trigger})
    assert prepared.status_code == 200, text(prepared)
    payload = prepared.get_json()
    credential = phone.get(b64url_decode(payload["publicKey"]["challenge"]), sign_count=sign_count)
    return browser.post_json(
        f"/requests/{number}/sign", {"decision": payload["decision"], "credential": credential}
    )


def test_a_counter_spent_confirming_the_passkey_is_refused_on_a_later_step(
    app: Flask, auth: AuthActions, school: School
) -> None:
    """hanh's phone confirms her new passkey at counter 41; a copy of the authenticator that
    stayed at counter 7 then signs a submit. The counter went back (a cloned key): refused,
    nothing written, and the log still verifies (the verifier judges counters across every
    event the key signed, the confirmation included)."""
    hanh, phone = auth.session("hanh"), _phone()
    pending = _register(hanh, phone, old_secret=SECRET)
    phone.sign_count = 40
    _confirm(hanh, phone, pending)
    number = school.draft(owner="hanh")
    before = school.snapshot(number)
    signed = _sign_with_counter(hanh, phone, number, "submit", sign_count=7)
    assert signed.status_code == 422, text(signed)
    assert signed.get_json()["code"] == "signature_refused"
    assert school.snapshot(number) == before
    assert school.request(number) is None
    report = school.verification()
    assert report.valid, report.problems


def test_a_counter_spent_granting_a_mandate_is_refused_on_a_later_step(
    app: Flask, auth: AuthActions, school: School
) -> None:
    """Toàn grants a mandate with his passkey at counter 31; a copy of the authenticator at
    counter 12 then approves a request: refused, nothing written, the log still verifies."""
    number = school.to_state("forwarded")
    toan, phone = auth.session("toan"), _phone()
    _confirm(toan, phone, _register(toan, phone, old_secret=SECRET))
    body = {**KT, "csrf_token": toan.token}
    prepared = toan.post_json("/mandates/decision", body)
    assert prepared.status_code == 200, text(prepared)
    payload = prepared.get_json()
    credential = phone.get(b64url_decode(payload["publicKey"]["challenge"]), sign_count=31)
    granted = toan.post_json(
        "/mandates/sign", {"decision": payload["decision"], "credential": credential}
    )
    assert granted.status_code == 200 and mandates(school), text(granted)
    before = school.snapshot(number)
    signed = _sign_with_counter(toan, phone, number, "approve", sign_count=12)
    assert signed.status_code == 422, text(signed)
    assert signed.get_json()["code"] == "signature_refused"
    assert school.snapshot(number) == before
    report = school.verification()
    assert report.valid, report.problems


def test_a_draft_edit_still_open_when_its_submission_takes_the_lock_is_not_lost(
    school: School,
) -> None:
    """hanh saves a new amount in one tab (her edit has read the draft as editable and written
    it, not yet committed) while the other tab's submission, worked out in a snapshot before,
    takes the write lock. The edit appends no event; the submission must not bind the old
    amount and leave the draft saying another, "saved" after the request was sent: it waits
    for the edit and is refused, the draft keeps the new amount. (SQLite: the edit holds the
    write lock. PostgreSQL: it holds the draft's row, which the submission must read locked.)"""
    runtime = school.runtime
    number = school.draft("hanh")
    edit = runtime.sessions()
    try:
        service = runtime.service(edit)
        owner = service.directory.get_user("hanh")
        assert owner is not None
        service.update_draft(number, owner, amount="1.500.000")
        waiting = _waiting_writers(runtime)
        thread, result = _in_thread(lambda: school.act(number, "submit", "hanh"))
        _until(lambda: not thread.is_alive() or _waiting_writers(runtime) > waiting)
        edit.commit()
    finally:
        edit.close()
    thread.join(WAIT * 2)
    assert not thread.is_alive()
    with runtime.transaction() as session:
        draft = runtime.service(session).current(number).draft
        assert draft is not None and draft.amount_vnd == 1_500_000
    row = school.request(number)
    if row is not None:  # submitted: then with the amount the draft says, never the old one
        assert row.amount_vnd == 1_500_000, "submitted 1.800.000; the draft says 1.500.000"
    else:
        assert isinstance(result.get("error"), WorkflowError), result


def test_two_approvals_checked_in_snapshots_before_either_commits_do_not_overrun_the_line(
    school: School,
) -> None:
    """Two requests on the library line, 10 million each, 18 million a year: each alone
    fits. The principal approves both in two tabs, each checked (allocation guard included)
    before the other was written. The second one's head has moved under the lock, so it is
    checked again with the first's commitment (the budget totals' row moved by an increment)
    and refused: the line is not overrun."""
    runtime = school.runtime
    first, second = (
        school.to_state(
            "forwarded",
            line="SW-LIB",
            amount="10.000.000",
            budget_year=2025,
            attachments=[QUOTE, QUOTE2],
        )
        for _ in range(2)
    )
    tabs = [runtime.sessions(), runtime.sessions()]
    try:
        services = []
        for tab, number in zip(tabs, (first, second), strict=True):
            read_first(tab)
            service = runtime.service(tab)
            toan = service.directory.get_user("toan")
            assert toan is not None
            service.prepare(number, "approve", toan)  # both snapshots begin here
            services.append((service, toan))
        for (service, toan), tab, number in zip(services, tabs, (first, second), strict=True):
            try:
                service.act(number, "approve", toan, SECRET)
                tab.commit()
            except GuardRefused as refusal:
                tab.rollback()
                assert number == second
                assert refusal.rule in ("within_norm", "within_allocation")
    finally:
        for tab in tabs:
            tab.close()
    assert school.request(first).state == "approved"  # type: ignore[union-attr]
    assert school.request(second).state == "forwarded"  # type: ignore[union-attr]


def test_a_step_written_after_a_moved_head_reads_no_other_request_again_under_the_lock(
    school: School,
) -> None:
    """A session that has loaded other requests (a queue, a batch) signs one whose head moved
    meanwhile (full path: everything expired and read again). Once the event is written,
    forgetting what it wrote must not load every expired request row again under the lock;
    the step's own row, asked for afterwards, shows the new state."""
    runtime = school.runtime
    others = [school.to_state("submitted") for _ in range(3)]
    mine, theirs = school.draft("hanh"), school.draft("nga")
    statements: list[str] = []
    session = runtime.sessions()
    try:
        read_first(session)
        loaded = [session.get(Request, number) for number in others]
        assert all(row is not None for row in loaded)
        hanh = runtime.directory(session).get_user("hanh")
        assert hanh is not None
        service = runtime.service(session)
        service.prepare(mine, "submit", hanh)
        school.act(theirs, "submit", "nga")  # the head moves: the full path
        listen = session.get_bind()

        def record(_c: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
            statements.append(statement)

        event.listen(listen, "before_cursor_execute", record)
        try:
            service.act(mine, "submit", hanh, SECRET)
        finally:
            event.remove(listen, "before_cursor_execute", record)
        after_insert = statements[
            next(i for i, s in enumerate(statements) if s.startswith("INSERT INTO audit_events")) :
        ]
        assert not [s for s in after_insert if "FROM requests" in s], after_insert
        row = session.get(Request, mine)
        assert row is not None and row.state == "submitted"
        session.commit()
    finally:
        session.close()
