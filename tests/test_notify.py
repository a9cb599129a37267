"""Mails reach the right person through a real SMTP server, survive outages and never repeat."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from workflow.mailer import SmtpSettings, failed_mails
from workflow.models import User
from workflow.runtime import Runtime

from .factories import School, pay_data
from .smtp_server import SmtpServer, password_authenticator, self_signed_tls

LINK = "https://chi.th-demo.edu.vn/requests/"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def _use_smtp(runtime: Runtime, port: int, **options: object) -> None:
    runtime.settings = replace(
        runtime.settings,
        smtp=SmtpSettings(
            host="127.0.0.1",
            port=port,
            sender="Duyệt chi <no-reply@th-demo.edu.vn>",
            max_attempts=3,
            **options,
        ),  # type: ignore[arg-type]
    )


def _received(server: SmtpServer) -> list[tuple[str, str]]:
    return [(str(m["To"]).split("@")[0], str(m["Subject"])) for m in server.messages]


def _set_user(runtime: Runtime, login: str, **values: object) -> None:
    with runtime.transaction() as session:
        user = session.query(User).filter_by(login=login).one()
        for name, value in values.items():
            setattr(user, name, value)


def test_each_transition_mails_whoever_acts_next_exactly_once(
    school: School, smtp: SmtpServer
) -> None:
    runtime = school.runtime
    _use_smtp(runtime, smtp.port)
    _set_user(runtime, "mai", language="en")
    number = school.draft()
    expected = [
        (
            "submit",
            "hanh",
            {},
            [
                ("long", f"[{number}] Đề xuất mới chờ xem xét"),
                ("dung", f"[{number}] Đề xuất mới chờ xem xét"),  # both deputies review
            ],
        ),
        (
            "forward",
            "long",
            {"comment": "hợp lý"},
            [("toan", f"[{number}] Đề xuất chờ hiệu trưởng duyệt")],
        ),
        (
            "approve",
            "toan",
            {},
            [
                ("hanh", f"[{number}] Đề xuất đã được duyệt chi"),
                ("mai", f"[{number}] Request approved"),
            ],
        ),
        ("pay", "mai", {"data": pay_data()}, [("hanh", f"[{number}] Đề xuất đã được thanh toán")]),
    ]
    for trigger, login, kwargs, mails in expected:
        school.act(number, trigger, login, **kwargs)
        before = len(smtp.messages)
        report = runtime.deliver_mail()
        assert report.sent == len(mails) and report.failed == report.retrying == 0
        got = _received(smtp)[before:]
        assert [(to, subject.split(":")[0]) for to, subject in got] == mails
    assert runtime.deliver_mail().sent == 0  # nothing twice
    ids = [m["Message-ID"] for m in smtp.messages]
    assert len(ids) == len(set(ids)) == 6
    english = next(m for m in smtp.messages if str(m["To"]).startswith("mai@"))
    assert english["Content-Language"] == "en"
    text = english.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Amount: 1.800.000 ₫" in text and f"{LINK}{number}" in text
    html = smtp.messages[0].get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert f'href="{LINK}{number}"' in html
    vietnamese = smtp.messages[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Số tiền: 1.800.000 ₫" in vietnamese and "Võ Thị Hạnh" in vietnamese


@pytest.mark.parametrize(
    ("start", "trigger", "login", "recipients"),
    [
        ("submitted", "return", "long", ["hanh"]),
        ("submitted", "reject", "long", ["hanh"]),
        ("forwarded", "return", "toan", ["hanh"]),
        ("forwarded", "reject", "toan", ["hanh"]),
        ("submitted", "withdraw", "hanh", []),
    ],
)
def test_decisions_mail_the_proposer_with_the_comment(
    school: School, smtp: SmtpServer, start: str, trigger: str, login: str, recipients: list[str]
) -> None:
    _use_smtp(school.runtime, smtp.port)
    number = school.to_state(start)
    school.runtime.deliver_mail()
    before = len(smtp.messages)
    school.act(number, trigger, login, comment="Thiếu báo giá thứ hai.")
    school.runtime.deliver_mail()
    new = smtp.messages[before:]
    assert [str(m["To"]).split("@")[0] for m in new] == recipients
    for message in new:
        assert "Thiếu báo giá thứ hai." in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_outage_loses_nothing_and_duplicates_nothing(
    school: School, smtp: SmtpServer, clock
) -> None:  # type: ignore[no-untyped-def]
    runtime = school.runtime
    _use_smtp(runtime, smtp.port)
    smtp.stop()
    number = school.to_state("forwarded")
    clock.step = timedelta(
        0
    )  # time stands still until we move it  # submit mails long and dung, forward mails toan
    report = runtime.deliver_mail()
    assert (report.sent, report.retrying) == (0, 3)
    assert all(
        m.status == "pending" and m.attempts == 1 and "Connection" in (m.last_error or "")
        for m in school.mails()
    )
    smtp.start()
    assert runtime.deliver_mail().sent == 0  # still backing off
    clock.now += timedelta(minutes=3)
    assert runtime.deliver_mail().sent == 3
    assert runtime.deliver_mail().sent == 0
    mails = school.mails()
    assert sorted(_received(smtp)) == sorted(
        [("long", mails[0].subject), ("dung", mails[1].subject), ("toan", mails[2].subject)]
    )
    assert all(number in str(m["Subject"]) for m in smtp.messages)


def test_a_mail_that_keeps_failing_is_marked_failed_for_the_admin(school: School, clock) -> None:  # type: ignore[no-untyped-def]
    runtime = school.runtime
    _use_smtp(runtime, SmtpServer().port)  # nobody listens there
    school.to_state("submitted")
    for _ in range(3):
        runtime.deliver_mail()
        clock.now += timedelta(hours=1)
    with runtime.transaction() as session:
        failed = list(failed_mails(session))
        assert sorted((m.recipient, m.attempts) for m in failed) == [("dung", 3), ("long", 3)]


def test_starttls_and_login(school: School, tmp_path: Path) -> None:
    context, cafile = self_signed_tls(tmp_path)
    server = SmtpServer(
        tls_context=context,
        require_starttls=True,
        authenticator=password_authenticator("school", "pw-123"),
        auth_require_tls=True,
    ).start()
    try:
        _use_smtp(
            school.runtime,
            server.port,
            security="starttls",
            user="school",
            password="pw-123",
            cafile=str(cafile),
        )
        school.to_state("submitted")
        assert school.runtime.deliver_mail().sent == 2  # long and dung, the two reviewers
        _use_smtp(
            school.runtime,
            server.port,
            security="starttls",
            user="school",
            password="wrong",
            cafile=str(cafile),
        )
        school.to_state("submitted")
        report = school.runtime.deliver_mail()
        assert report.sent == 0 and "Authentication" in report.errors[0]
    finally:
        server.stop()
    assert len(server.messages) == 2  # the first request's mails to long and dung


def test_ssl_connection(school: School, tmp_path: Path) -> None:
    context, cafile = self_signed_tls(tmp_path)
    server = SmtpServer(ssl_context=context).start()
    try:
        _use_smtp(school.runtime, server.port, security="ssl", cafile=str(cafile))
        school.to_state("submitted")
        assert school.runtime.deliver_mail().sent == 2  # long and dung, the two reviewers
    finally:
        server.stop()


def test_reminders_once_per_period_and_stop_when_the_state_changes(
    school: School, smtp: SmtpServer, clock
) -> None:  # type: ignore[no-untyped-def]
    runtime = school.runtime
    _use_smtp(runtime, smtp.port)
    number = school.to_state("submitted")
    runtime.deliver_mail()
    clock.now += timedelta(days=1)
    assert runtime.remind() == 0
    clock.now += timedelta(days=2, hours=1)
    assert runtime.remind() == 2  # both reviewers, long and dung
    assert runtime.remind() == 0  # at most once per period
    runtime.deliver_mail()
    reminders = smtp.messages[-2:]
    assert sorted(str(m["To"]).split("@")[0] for m in reminders) == ["dung", "long"]
    assert all("Nhắc việc" in str(m["Subject"]) for m in reminders)
    clock.now += timedelta(days=3, hours=1)
    # still waiting: reminded again, and the principal told once (escalate_after = 2)
    assert runtime.remind() == 3
    school.act(number, "forward", "long")
    clock.now += timedelta(days=1)
    assert runtime.remind() == 0  # left "submitted": no more reminders about it
    clock.now += timedelta(days=3)
    assert runtime.remind() == 1  # now the principal is the one who must act
    runtime.deliver_mail()
    assert str(smtp.messages[-1]["To"]).startswith("toan@")


def test_daily_digest_instead_of_one_mail_per_request(school: School, smtp: SmtpServer) -> None:
    runtime = school.runtime
    _use_smtp(runtime, smtp.port)
    _set_user(runtime, "long", digest=True)
    first, second = school.to_state("submitted"), school.to_state("submitted")
    assert runtime.deliver_mail().sent == 2  # dung, who takes no digest, gets hers at once
    assert runtime.digest() == 1
    assert runtime.digest() == 0
    assert runtime.deliver_mail().sent == 1
    digest = smtp.messages[-1]
    body = digest.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert str(digest["To"]).startswith("long@") and "2 đề xuất" in str(digest["Subject"])
    assert f"{LINK}{first}" in body and f"{LINK}{second}" in body


def test_witnesses_receive_each_new_checkpoint(school: School, smtp: SmtpServer) -> None:
    runtime = school.runtime
    _use_smtp(runtime, smtp.port)
    runtime.settings = replace(runtime.settings, witnesses=("phonggd@quan1.edu.vn",))
    school.to_state("submitted")
    runtime.deliver_mail()
    with runtime.transaction() as session:
        note = runtime.checkpoint(session).note
    with runtime.transaction() as session:
        runtime.checkpoint(session)  # nothing new: no second mail
    assert runtime.deliver_mail().sent == 1
    mail = smtp.messages[-1]
    assert str(mail["To"]) == "phonggd@quan1.edu.vn"
    assert note in mail.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert runtime.institution.fingerprint in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_console_delivery_in_development(
    school: School, capsys: pytest.CaptureFixture[str]
) -> None:
    school.to_state("submitted")
    assert school.runtime.deliver_mail().sent == 2  # long and dung
    assert "Đề xuất mới chờ xem xét" in capsys.readouterr().out
