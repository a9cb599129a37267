"""Signing for someone (SCENARIOS.md "When the principal is away"): KT. and TUQ. mandates through
the service, and the verifier catching a forged, foreign or out-of-scope mandate."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from expense_audit.decision import make_decision, server_signature
from expense_audit.errors import ActorNotAllowed, RoleNotAllowed
from expense_audit.mandates import MandateRefused
from expense_audit.verify import Kind
from workflow.audit import append_decision, format_ts
from workflow.livecheck import verify_live
from workflow.mandates import signature_line
from workflow.models import AuditEvent, MandateRow

from .conftest import SteppingClock
from .factories import SECRET, School

SMALL = {"amount": "1.800.000"}


def at(clock: SteppingClock, day: date, hour_local: int = 9) -> None:
    """Move the test clock to a local (UTC+7) hour of ``day``."""
    clock.now = datetime(day.year, day.month, day.day, hour_local - 7, 0)


def grant(school: School, delegator: str, **mandate: Any) -> AuditEvent:
    runtime = school.runtime
    with runtime.transaction() as session:
        service = runtime.service(session)
        user = service.directory.get_user(delegator)
        assert user is not None
        event = service.mandates.grant(user, SECRET, **mandate)
        session.expunge(event)
        return event


def forwarded_by(school: School, reviewer: str) -> str:
    number = school.draft(**SMALL)
    school.act(number, "submit", "hanh")
    school.act(number, "forward", reviewer, comment="Hợp lý.")
    return number


def verify(school: School) -> list[tuple[str, str]]:
    runtime = school.runtime
    with runtime.transaction() as session:
        report = verify_live(session, institution=runtime.institution, now=runtime.now())
    return [(p.kind, p.detail) for p in report.problems]


KT_TO_LONG = {
    "delegate": "long",
    "role": "approver",
    "kind": "KT",
    "valid_from": date(2025, 3, 10),
    "valid_to": date(2025, 3, 21),
}


def test_deputy_approves_under_kt_mandate_while_principal_is_away(
    school: School, clock: SteppingClock
) -> None:
    """Toàn away 10–21/03: Long approves what Dung forwarded; the event names the mandate."""
    at(clock, date(2025, 3, 7))
    mandate = grant(school, "toan", **KT_TO_LONG, comment="Đi tập huấn.")
    from_dung = forwarded_by(school, "dung")
    at(clock, date(2025, 3, 12))
    event = school.act(from_dung, "approve", "long")
    decision = json.loads(event.body)["decision"]
    assert decision["role"] == "approver"
    assert decision["data"]["mandate"] == {"seq": mandate.seq, "hash": mandate.hash}
    row = school.request(from_dung)
    assert row is not None and row.state == "approved" and row.approved_by == "long"
    [to_hanh] = [m for m in school.mails() if m.event_seq == event.seq and m.recipient == "hanh"]
    assert "KT. HIỆU TRƯỞNG / PHÓ HIỆU TRƯỞNG Nguyễn Văn Long" in to_hanh.body_text
    assert verify(school) == []


def test_deputy_cannot_approve_what_he_forwarded_even_under_mandate(
    school: School, clock: SteppingClock
) -> None:
    """A request Long forwarded waits for Toàn: separation of duties survives the mandate."""
    at(clock, date(2025, 3, 7))
    grant(school, "toan", **KT_TO_LONG)
    from_long = forwarded_by(school, "long")
    at(clock, date(2025, 3, 12))
    before = school.snapshot(from_long)
    with pytest.raises(ActorNotAllowed, match="trình đề xuất") as refused:
        school.act(from_long, "approve", "long")
    assert refused.value.rule == "actor_not_forwarder"
    assert school.snapshot(from_long) == before
    # The queue says why it waits (the same refusal the page shows).
    with school.runtime.transaction() as session:
        service = school.runtime.service(session)
        long = service.directory.get_user("long")
        assert long is not None
        why = service.check_guards(from_long, "approve", long)
    assert why is not None and "forwarded" in why.text("en")
    # Toàn keeps his own role while a deputy signs for him.
    school.act(from_long, "approve", "toan")
    assert verify(school) == []


def test_deputy_approvals_refused_again_after_mandate_ends(
    school: School, clock: SteppingClock
) -> None:
    """On 22/03 the mandate has ended: Long's approval is refused, naming its dates."""
    at(clock, date(2025, 3, 7))
    grant(school, "toan", **KT_TO_LONG)
    number = forwarded_by(school, "dung")
    at(clock, date(2025, 3, 22), hour_local=8)
    with pytest.raises(MandateRefused, match="10/03/2025–21/03/2025") as refused:
        school.act(number, "approve", "long")
    assert refused.value.problem == "mandate-expired"
    school.act(number, "approve", "toan")
    assert verify(school) == []


def test_revoked_mandate_stops_at_once(school: School, clock: SteppingClock) -> None:
    """Toàn comes back early and revokes the mandate: Long's next approval is refused."""
    at(clock, date(2025, 3, 7))
    mandate = grant(school, "toan", **KT_TO_LONG)
    number = forwarded_by(school, "dung")
    at(clock, date(2025, 3, 14))
    with school.runtime.transaction() as session:
        service = school.runtime.service(session)
        toan = service.directory.get_user("toan")
        assert toan is not None
        service.mandates.revoke(toan, mandate.seq, SECRET, "Đã về sớm.")
    with pytest.raises(RoleNotAllowed):
        school.act(number, "approve", "long")
    assert verify(school) == []


def test_only_delegator_may_revoke_and_delegate_cannot_pass_mandate_on(
    school: School, clock: SteppingClock
) -> None:
    """Long may not revoke Toàn's mandate, nor hand the approver's role on to Dung."""
    at(clock, date(2025, 3, 11))
    mandate = grant(school, "toan", **KT_TO_LONG)
    with school.runtime.transaction() as session:
        service = school.runtime.service(session)
        long = service.directory.get_user("long")
        assert long is not None
        with pytest.raises(MandateRefused) as refused:
            service.mandates.revoke(long, mandate.seq, SECRET)
        assert refused.value.problem == "mandate-not-by-delegator"
        with pytest.raises(MandateRefused) as passed_on:
            service.mandates.grant(
                long, SECRET, **{**KT_TO_LONG, "delegate": "dung", "kind": "TUQ"}
            )
        assert passed_on.value.problem == "mandate-redelegated"


def test_tuq_payment_mandate_refuses_amount_above_its_cap(
    school: School, clock: SteppingClock
) -> None:
    """A TUQ. mandate for payments on SW-* up to 5,000,000 ₫ refuses a 6,000,000 ₫ payment."""
    # NOTE: in the demo Mai is the accountant herself; here the payment role is held by the chief
    # accountant "thu" and Mai pays only under the mandate.
    with school.runtime.transaction() as session:
        directory = school.runtime.directory(session)
        directory.create_user(
            login="thu",
            name="Lê Thị Thu",
            email="thu@th-demo.edu.vn",
            roles=("accountant",),
            password="demo-2024-thu",
            signing_secret=SECRET,
        )
        mai = directory.get_user("mai")
        assert mai is not None
        directory.set_roles(mai, ("proposer",), by="setup")
    at(clock, date(2025, 3, 3))
    grant(
        school,
        "thu",
        delegate="mai",
        role="accountant",
        kind="TUQ",
        valid_from=date(2025, 3, 3),
        valid_to=date(2025, 3, 31),
        lines=["SW-*"],
        max_amount_vnd=5_000_000,
    )
    big = school.draft(
        line="SW-KDCL", amount="6.000.000", title="Phần mềm kiểm định chất lượng (3 năm)"
    )
    small = school.draft()
    web = school.draft(line="WEB", amount="2.400.000", title="Tên miền và hosting")
    for number in (big, small, web):
        school.act(number, "submit", "hanh")
        school.act(number, "forward", "long")
        school.act(number, "approve", "toan")
    paid = {"voucher": "PC-2025-0040", "paid_on": "2025-03-04"}
    with pytest.raises(MandateRefused, match="5.000.000") as refused:
        school.act(big, "pay", "mai", data={**paid, "amount_paid_vnd": 6_000_000})
    assert refused.value.problem == "mandate-out-of-scope"
    with pytest.raises(MandateRefused, match="SW-"):
        school.act(web, "pay", "mai", data={**paid, "amount_paid_vnd": 2_400_000})
    school.act(small, "pay", "mai", data={**paid, "amount_paid_vnd": 1_800_000})
    assert verify(school) == []


def test_signature_line_reads_kt_principal_deputy_name(school: School) -> None:
    """Papers and mails sign "KT. HIỆU TRƯỞNG / PHÓ HIỆU TRƯỞNG Nguyễn Văn Long"."""
    from expense_audit.mandates import Mandate

    mandate = Mandate(
        seq=5,
        hash="a" * 64,
        delegator="toan",
        delegate="long",
        role="approver",
        kind="KT",
        valid_from=date(2025, 3, 10),
        valid_to=date(2025, 3, 21),
    )
    assert (
        signature_line(mandate, school.user("long"))
        == "KT. HIỆU TRƯỞNG / PHÓ HIỆU TRƯỞNG Nguyễn Văn Long"
    )


# --- The verifier: a server that lies about mandates is caught. ---------------------------------


def _sign_as(school: School, login: str, action: str, role: str, data: dict[str, Any]) -> int:
    """Append a decision signed by ``login``'s own key, bypassing the engine's mandate checks."""
    runtime = school.runtime
    with runtime.transaction() as session:
        directory = runtime.directory(session)
        user = directory.get_user(login)
        assert user is not None
        key, signer = directory.keyring.unlock(user, SECRET)
        decision = make_decision(
            origin=directory.keyring.origin,
            request=None,
            request_prev=None,
            action=action,
            from_state=None,
            to_state=None,
            actor=login,
            role=role,
            key=key.key_id,
            definition=None,
            budget=None,
            data=data,
            comment=None,
            issued=format_ts(runtime.now()),
        )
        event = append_decision(
            session,
            decision=decision,
            signature=server_signature(decision, signer.private),
            ts=runtime.now(),
        )
        session.add(
            MandateRow(
                seq=event.seq,
                hash=event.hash,
                delegator=str(data["delegator"]),
                delegate=str(data["delegate"]),
                role=str(data["role"]),
                kind=str(data["kind"]),
                valid_from=str(data["from"]),
                valid_to=str(data["to"]),
                lines=list(data["lines"]),
                max_amount_vnd=data["max_amount_vnd"],
            )
        )
        return event.seq


def _kinds(problems: list[tuple[str, str]]) -> set[str]:
    return {kind for kind, _detail in problems}


def test_verifier_catches_mandate_signed_by_someone_else_than_the_delegator(
    school: School, clock: SteppingClock
) -> None:
    """Long signs "Toàn delegates to Long" with his own key; the server indexes it anyway."""
    at(clock, date(2025, 3, 11))
    forged = {
        "delegator": "toan",
        "delegate": "long",
        "role": "approver",
        "kind": "KT",
        "from": "2025-03-10",
        "to": "2025-03-21",
        "lines": [],
        "max_amount_vnd": None,
    }
    _sign_as(school, "long", "mandate.grant", "approver", forged)
    number = forwarded_by(school, "dung")
    school.act(number, "approve", "long")  # the compromised index lets it through
    kinds = _kinds(verify(school))
    assert Kind.MANDATE_NOT_BY_DELEGATOR in kinds
    assert Kind.MANDATE_UNKNOWN in kinds  # the approval stands on a mandate never granted


def test_verifier_catches_step_beyond_mandate_scope(school: School, clock: SteppingClock) -> None:
    """The server's index widened Long's mandate to 2025-04-30; the log still says 21/03."""
    at(clock, date(2025, 3, 7))
    mandate = grant(school, "toan", **KT_TO_LONG)
    with school.runtime.transaction() as session:
        row = session.get(MandateRow, mandate.seq)
        assert row is not None
        row.valid_to = "2025-04-30"
    number = forwarded_by(school, "dung")
    at(clock, date(2025, 4, 2))
    school.act(number, "approve", "long")
    problems = verify(school)
    assert _kinds(problems) == {Kind.MANDATE_EXPIRED}, problems


def test_verifier_catches_step_under_forged_mandate_reference(
    school: School, clock: SteppingClock
) -> None:
    """A mandate row pointing at an event that grants nothing (a forged mandate)."""
    at(clock, date(2025, 3, 11))
    number = forwarded_by(school, "dung")
    with school.runtime.transaction() as session:
        last = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert last is not None
        session.add(
            MandateRow(
                seq=last.seq,
                hash=last.hash,
                delegator="toan",
                delegate="long",
                role="approver",
                kind="KT",
                valid_from="2025-03-10",
                valid_to="2025-03-21",
                lines=[],
                max_amount_vnd=None,
            )
        )
    school.act(number, "approve", "long")
    assert _kinds(verify(school)) == {Kind.MANDATE_UNKNOWN}


# --- Separation of duties under a mandate (the definition's not_while_acting_for). -------------


def submitted(school: School) -> str:
    number = school.draft(**SMALL)
    school.act(number, "submit", "hanh")
    return number


def test_acting_principal_leaves_review_to_the_other_deputy(
    school: School, clock: SteppingClock
) -> None:
    """While Long signs for Toàn he does not review: the refusal names Dung, who reviews it,
    and Long then approves it; the one person never both forwards and approves."""
    at(clock, date(2025, 3, 7))
    grant(school, "toan", **KT_TO_LONG)
    at(clock, date(2025, 3, 11))
    number = submitted(school)
    before = school.snapshot(number)
    with pytest.raises(ActorNotAllowed, match="Phạm Thị Dung") as refused:
        school.act(number, "forward", "long")
    assert refused.value.rule == "not_while_acting_for"
    assert refused.value.details["others"] == ["dung"]
    assert school.snapshot(number) == before
    school.act(number, "forward", "dung", comment="Hợp lý.")
    school.act(number, "approve", "long")
    assert verify(school) == []


def test_only_deputy_acting_as_principal_keeps_request_waiting(
    school: School, clock: SteppingClock
) -> None:
    """With Dung gone, nobody else reviews: the request waits, saying so, until the mandate ends."""
    with school.runtime.transaction() as session:
        directory = school.runtime.directory(session)
        dung = directory.get_user("dung")
        assert dung is not None
        directory.set_roles(dung, ("proposer",), by="setup")
    at(clock, date(2025, 3, 7))
    grant(school, "toan", **KT_TO_LONG)
    at(clock, date(2025, 3, 11))
    number = submitted(school)
    with pytest.raises(ActorNotAllowed, match="không có người xem xét nào khác") as refused:
        school.act(number, "forward", "long")
    assert "21/03/2025" in refused.value.text("en")
    with school.runtime.transaction() as session:
        service = school.runtime.service(session)
        long = service.directory.get_user("long")
        assert long is not None
        why = service.check_guards(number, "forward", long)
    assert why is not None and "waits until the mandate ends" in why.text("en")
    at(clock, date(2025, 3, 22))
    school.act(number, "forward", "long")
    school.act(number, "approve", "toan")
    assert verify(school) == []


def test_verifier_catches_review_by_the_acting_principal(
    school: School, clock: SteppingClock
) -> None:
    """The server's index says Long's mandate starts later; the log says he was acting."""
    at(clock, date(2025, 3, 7))
    mandate = grant(school, "toan", **KT_TO_LONG)
    with school.runtime.transaction() as session:
        row = session.get(MandateRow, mandate.seq)
        assert row is not None
        row.valid_from = "2025-03-20"
    at(clock, date(2025, 3, 11))
    number = submitted(school)
    school.act(number, "forward", "long")  # the compromised index lets it through
    problems = verify(school)
    assert _kinds(problems) == {Kind.FORBIDDEN_STEP}, problems
    assert any("acts as 'approver'" in detail for _kind, detail in problems)
