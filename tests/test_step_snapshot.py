"""A step is worked out in one snapshot before the write lock and written as worked out only if
nothing it depends on changed meanwhile: the log head (every change of a request, person, role,
key or mandate is an event), the draft a submission binds (not an event) and the day.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from expense_audit.errors import GuardRefused, WorkflowError
from workflow.db import read_first
from workflow.enrollment import SETUP
from workflow.errors import AccountLocked
from workflow.models import OutboxMail, User
from workflow.runtime import Runtime
from workflow.service import ApprovalService

from .factories import QUOTE, QUOTE2, SECRET, School
from .test_write_lock import WAIT, _in_thread, unlock_held_for
from .web import AuthActions


@contextmanager
def signing_session(
    runtime: Runtime, login: str
) -> Iterator[tuple[Session, ApprovalService, User]]:
    """A session as the web's signing views keep one: it reads first, and ``login`` is loaded in
    it; yields the session, a service on it and the user."""
    session = runtime.sessions()
    try:
        read_first(session)
        user = runtime.directory(session).get_user(login)
        assert user is not None
        yield session, runtime.service(session), user
    finally:
        session.close()


def _submit_while_unlocking(
    auth: AuthActions,
    school: School,
    monkeypatch: pytest.MonkeyPatch,
    meanwhile: Callable[[str], None],
) -> tuple[str, Any, tuple[Any, ...]]:
    """hanh submits a new draft from her phone; ``meanwhile`` runs while her key unlocks. Returns
    the request's number, the web answer and the snapshot of request, log and outbox taken
    after ``meanwhile`` (what the submission must leave as it found)."""
    number = school.draft("hanh")
    tab = auth.session("hanh")
    tab.get(f"/requests/{number}")
    with unlock_held_for("hanh", monkeypatch) as held:
        thread, result = _in_thread(
            lambda: tab.post(f"/requests/{number}/act", {"trigger": "submit", "secret": SECRET})
        )
        assert held["entered"].wait(WAIT)
        meanwhile(number)
        before = school.snapshot(number)
        held["go"].set()
        thread.join(WAIT * 2)
    assert "error" not in result, result
    return number, result["value"], before


def test_a_draft_edited_while_its_submission_unlocks_is_not_submitted_unseen(
    app: Flask, auth: AuthActions, school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hanh submits in one tab and changes the title in another while the key unlocks. Editing a
    draft appends no event, so the head has not moved; the submission, which signed the old
    title, is still refused under the lock and writes nothing."""

    def edit(number: str) -> None:
        with school.runtime.transaction() as session:
            service = school.runtime.service(session)
            owner = service.directory.get_user("hanh")
            assert owner is not None
            service.update_draft(number, owner, title="Gia hạn phần mềm tài sản (sửa)")

    number, answer, before = _submit_while_unlocking(auth, school, monkeypatch, edit)
    page = answer.get_data(as_text=True)
    assert "Nội dung được ký khác với bước này. Không có gì được ghi." in page
    assert school.snapshot(number) == before
    assert school.request(number) is None  # still a draft: nothing was submitted
    with school.runtime.transaction() as session:
        draft = school.runtime.service(session).current(number).draft
        assert draft is not None and draft.title == "Gia hạn phần mềm tài sản (sửa)"


def test_an_account_locked_while_its_step_unlocks_signs_nothing(
    app: Flask, auth: AuthActions, school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin locks hanh's account while her submission's key unlocks: refused under the lock."""

    def lock_account(_number: str) -> None:
        with school.runtime.transaction() as session:
            directory = school.runtime.directory(session)
            hanh, admin = directory.get_user("hanh"), directory.get_user("admin")
            assert hanh is not None and admin is not None
            directory.set_active(hanh, False, by=admin)

    number, _answer, before = _submit_while_unlocking(auth, school, monkeypatch, lock_account)
    assert school.snapshot(number) == before
    assert school.request(number) is None


def test_a_session_that_signs_again_reads_the_signer_again(school: School) -> None:
    """Like the approval queue's batch: one session, one transaction per step. The account is
    locked between two steps; the second step sees it, not what the first transaction read."""
    first, second = school.draft("hanh"), school.draft("hanh")
    runtime = school.runtime
    with signing_session(runtime, "hanh") as (session, service, hanh):
        service.act(first, "submit", hanh, SECRET)
        session.commit()
        with runtime.transaction() as other:
            directory = runtime.directory(other)
            admin, again = directory.get_user("admin"), directory.get_user("hanh")
            assert admin is not None and again is not None
            directory.set_active(again, False, by=admin)
        read_first(session)
        with pytest.raises(AccountLocked):
            runtime.service(session).act(second, "submit", hanh, SECRET)
        session.rollback()
    assert school.request(first) is not None
    assert school.request(second) is None


def test_a_step_after_an_unrelated_one_is_recorded(school: School) -> None:
    """Another request's step moves the head between the read and the lock: the step is still
    recorded, after it."""
    mine, theirs = school.draft("hanh"), school.draft("nga")
    runtime = school.runtime
    with signing_session(runtime, "hanh") as (session, service, hanh):
        prepared = service.prepare(mine, "submit", hanh)
        school.act(theirs, "submit", "nga")  # committed while this step was being worked out
        try:
            event = service.act(mine, "submit", hanh, SECRET)
        except WorkflowError as refusal:  # pragma: no cover - the failure this test is about
            pytest.fail(f"refused: {refusal}")
        session.commit()
    assert prepared.decision["request"] == mine
    row = school.request(mine)
    assert row is not None and row.state == "submitted" and row.last_seq == event.seq


@pytest.mark.parametrize(
    "theirs",
    [
        pytest.param(("nga", "submit", {"line": "WEB", "amount": "2.400.000"}), id="other-line"),
        pytest.param(("long", "forward", {}), id="same-line-totals-unmoved"),
    ],
)
def test_another_persons_step_does_not_make_a_step_check_again_under_the_lock(
    school: School, theirs: tuple[str, str, dict[str, str]]
) -> None:
    """Under load some step is appended between almost every step's read and its lock. One by
    another person on another request, which leaves this budget line's totals as the guards saw
    them (another line; or a forward, which commits nothing new), changes nothing this step
    depends on: the step is written as worked out, after it in the chain (its mails numbered
    after it too), without reading and checking everything again while every writer waits."""
    login, trigger, content = theirs
    mine = school.draft("hanh")
    other_number = school.draft("nga", **content)
    if trigger == "forward":
        school.act(other_number, "submit", "nga")
    runtime = school.runtime
    statements: list[str] = []
    with signing_session(runtime, "hanh") as (session, service, hanh):
        service.prepare(mine, "submit", hanh)  # the snapshot begins here
        other = school.act(other_number, trigger, login)

        def record(_c: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
            statements.append(statement)

        event.listen(runtime.engine, "before_cursor_execute", record)
        try:
            written = service.act(mine, "submit", hanh, SECRET)
        finally:
            event.remove(runtime.engine, "before_cursor_execute", record)
        session.commit()
    insert = next(i for i, s in enumerate(statements) if s.startswith("INSERT INTO audit_events"))
    locked = max(i for i, s in enumerate(statements[:insert]) if "FROM log_head" in s)
    under_lock = statements[locked:insert]
    for table in ("users", "signing_keys", "requests ", "mandates"):
        assert not [s for s in under_lock if f"FROM {table}" in s], (table, under_lock)
    # at most the line's totals, read once to compare with what the guards saw
    assert len([s for s in under_lock if "FROM budget_totals" in s]) <= 1, under_lock
    assert written.seq == other.seq + 1 and written.prev == other.hash
    with runtime.transaction() as check:
        mails = check.scalars(select(OutboxMail).where(OutboxMail.request == mine)).all()
        assert mails and {m.event_seq for m in mails} == {written.seq}
        assert all(f".{written.seq}." in m.message_id for m in mails)
    row = school.request(mine)
    assert row is not None and row.state == "submitted" and row.last_seq == written.seq
    report = school.verification()
    assert report.valid, report.problems


def test_two_approvers_on_one_line_do_not_overrun_it_though_neither_step_is_read_again(
    school: School,
) -> None:
    """The library line allows 18 million a year. Two requests of 10 million each wait for
    approval; Toàn approves one while Vinh, a second approver, approves the other, each
    checked before the other was written. Toàn's approval commits its 10 million: when Vinh's
    step takes the lock, the line's totals have moved, its guards are judged again on them and
    it is refused; the line is not overrun and nothing of Vinh's step is written."""
    runtime = school.runtime
    with runtime.transaction() as session:
        runtime.directory(session).create_user(
            login="vinh",
            name="Lê Quang Vinh",
            email="vinh@th-demo.edu.vn",
            roles=["approver"],
            password="vinh-mat-khau-dai",
            signing_secret=SECRET,
            by=SETUP,
        )
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
    with signing_session(runtime, "vinh") as (session, service, vinh):
        service.prepare(second, "approve", vinh)  # Vinh's snapshot begins here
        school.act(first, "approve", "toan")
        before = school.snapshot(second)
        with pytest.raises(GuardRefused) as refused:
            service.act(second, "approve", vinh, SECRET)
        session.rollback()
    assert refused.value.rule in ("within_norm", "within_allocation")
    assert school.snapshot(second) == before
    assert school.request(first).state == "approved"  # type: ignore[union-attr]
    assert school.request(second).state == "forwarded"  # type: ignore[union-attr]
