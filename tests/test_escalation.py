"""Escalation written in the definition: after N reminders the next role up is told, once."""

from __future__ import annotations

from datetime import timedelta

from workflow.models import OutboxMail

from .conftest import SteppingClock
from .factories import School


def _escalations(school: School) -> list[OutboxMail]:
    return [m for m in school.mails() if "escalate." in m.message_id]


def test_principal_is_told_once_when_a_review_stays_stuck(
    school: School, clock: SteppingClock
) -> None:
    """Two reminders to the deputies go unanswered: Toàn gets one mail, then nothing more."""
    runtime = school.runtime
    number = school.to_state("submitted")
    clock.now += timedelta(days=3, hours=1)
    assert runtime.remind() == 2  # long and dung; no escalation after the first reminder
    assert _escalations(school) == []
    clock.now += timedelta(days=3, hours=1)
    assert runtime.remind() == 3  # the second reminder to both, and the principal once
    [mail] = _escalations(school)
    assert mail.recipient == "toan" and mail.request == number
    assert "đã nhắc 2 lần" in mail.subject and "Chờ xem xét" in mail.body_text
    clock.now += timedelta(days=3, hours=1)
    assert runtime.remind() == 2  # reminders go on; the principal is not told again
    assert len(_escalations(school)) == 1


def test_escalation_stops_when_the_state_changes(school: School, clock: SteppingClock) -> None:
    """Forwarded before the second reminder: nobody up the chain is bothered about the review."""
    runtime = school.runtime
    number = school.to_state("submitted")
    clock.now += timedelta(days=3, hours=1)
    assert runtime.remind() == 2
    school.act(number, "forward", "long")
    clock.now += timedelta(days=3, hours=1)
    runtime.remind()
    assert _escalations(school) == []


def test_deputies_are_told_when_a_payment_stays_stuck(school: School, clock: SteppingClock) -> None:
    """An approved request unpaid after two reminders to Mai: the deputies are told, once."""
    runtime = school.runtime
    number = school.to_state("approved")
    for _ in range(2):
        clock.now += timedelta(days=10, hours=1)
        runtime.remind()
    told = sorted(m.recipient for m in _escalations(school))
    assert told == ["dung", "long"]
    assert all(m.request == number and m.language in ("vi", "en") for m in _escalations(school))
