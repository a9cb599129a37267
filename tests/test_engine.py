"""The engine: every path of the chain, and every refusal leaves request, log and outbox as they were."""

from __future__ import annotations

import json

import pytest

from expense_audit.errors import (
    AmountInvalid,
    CommentRequired,
    DataInvalid,
    GuardRefused,
    NotPermitted,
    RoleNotAllowed,
    TransitionNotAllowed,
)
from workflow.audit import event_view
from workflow.errors import ConcurrentChange, WrongSecret

from .factories import QUOTE, QUOTE2, School, pay_data


def test_ordinary_path_submit_forward_approve_pay(school: School) -> None:
    number = school.draft()
    assert number == "2024-2025/0001"
    steps = [
        ("submit", "hanh", "proposer", "draft", "submitted", {}),
        ("forward", "long", "reviewer", "submitted", "forwarded", {"comment": "hợp lý"}),
        ("approve", "toan", "approver", "forwarded", "approved", {}),
        ("pay", "mai", "accountant", "approved", "paid", {"data": pay_data()}),
    ]
    for trigger, login, role, source, dest, kwargs in steps:
        event = school.act(number, trigger, login, **kwargs)
        body = event_view(json.loads(event.body))
        assert (body["action"], body["actor"], body["role"], body["from"], body["to"]) == (
            trigger,
            login,
            role,
            source,
            dest,
        )
        assert body["data"]["content"]["amount_vnd"] == 1_800_000
        assert body["data"]["content"]["attachments"] == [QUOTE]
        assert school.request(number).state == dest  # type: ignore[union-attr]
    row = school.request(number)
    assert row is not None
    assert (row.owner, row.forwarded_by, row.approved_by, row.paid_by) == (
        "hanh",
        "long",
        "toan",
        "mai",
    )
    assert (row.voucher, row.paid_on, row.amount_paid_vnd) == (
        "PC-2025-0031",
        "2025-01-13",
        1_800_000,
    )
    assert row.approved_hash is not None and len(row.approved_hash) == 64
    recipients = [(m.recipient, m.subject.split("]")[0]) for m in school.mails()]
    assert recipients == [
        ("long", "[2024-2025/0001"),
        ("dung", "[2024-2025/0001"),  # the second deputy reviews too
        ("toan", "[2024-2025/0001"),
        ("hanh", "[2024-2025/0001"),
        ("mai", "[2024-2025/0001"),
        ("hanh", "[2024-2025/0001"),
    ]


@pytest.mark.parametrize(
    "typed", ["1.800.000", "1,800,000", "1800000", "1tr8", "1,8tr", "1.800.000 ₫"]
)
def test_amount_typed_the_vietnamese_ways_means_the_same(school: School, typed: str) -> None:
    number = school.draft(amount=typed)
    event = school.act(number, "submit", "hanh")
    assert event_view(json.loads(event.body))["data"]["content"]["amount_vnd"] == 1_800_000


@pytest.mark.parametrize(
    "typed", ["1.8", "1,80,000", "abc", "1.000,000", "0", "-500000", "999999999999999"]
)
def test_unreadable_amounts_are_refused_with_an_example(school: School, typed: str) -> None:
    with pytest.raises(AmountInvalid) as refusal:
        school.draft(amount=typed)
    assert refusal.value.reason in {"unreadable", "zero", "negative", "too_large"}
    if refusal.value.reason == "unreadable":
        assert "1.800.000" in refusal.value.message


def test_return_then_resubmit_binds_the_new_attachments(school: School) -> None:
    number = school.to_state("submitted")
    school.act(number, "return", "long", comment="thiếu báo giá thứ hai")
    with school.runtime.transaction() as session:
        service = school.runtime.service(session)
        service.update_draft(
            number, service.directory.get_user("hanh"), attachments=[QUOTE, QUOTE2]
        )  # type: ignore[arg-type]
    again = school.act(number, "submit", "hanh")
    assert event_view(json.loads(again.body))["data"]["content"]["attachments"] == [QUOTE, QUOTE2]
    school.act(number, "forward", "long")
    with school.runtime.transaction() as session:
        from workflow.models import AuditEvent

        trail = [
            event_view(json.loads(e.body))
            for e in session.query(AuditEvent).filter_by(request=number).order_by(AuditEvent.seq)
        ]
    assert [e["action"] for e in trail] == ["submit", "return", "submit", "forward"]
    assert trail[1]["comment"] == "thiếu báo giá thứ hai"
    assert trail[0]["data"]["content"]["attachments"] == [QUOTE]


@pytest.mark.parametrize(
    ("start", "trigger", "login", "dest"),
    [
        ("submitted", "reject", "long", "rejected"),
        ("submitted", "return", "long", "returned"),
        ("forwarded", "reject", "toan", "rejected"),
        ("forwarded", "return", "toan", "returned"),
        ("draft", "withdraw", "hanh", "withdrawn"),
        ("submitted", "withdraw", "hanh", "withdrawn"),
        ("returned", "withdraw", "hanh", "withdrawn"),
        ("returned", "submit", "hanh", "submitted"),
    ],
)
def test_every_other_transition(
    school: School, start: str, trigger: str, login: str, dest: str
) -> None:
    number = school.to_state(start)
    school.act(number, trigger, login, comment="Lý do cụ thể.")
    assert school.request(number).state == dest  # type: ignore[union-attr]


def _refused(
    school: School, number: str, error: type[Exception], *args: object, **kwargs: object
) -> Exception:
    before = school.snapshot(number)
    with pytest.raises(error) as refusal:
        school.act(number, *args, **kwargs)  # type: ignore[arg-type]
    assert school.snapshot(number) == before, "a refused action must write nothing"
    return refusal.value


def test_role_refusals(school: School) -> None:
    number = school.to_state("submitted")
    refusal = _refused(school, number, RoleNotAllowed, "forward", "mai")
    assert refusal.needed == ["reviewer"]
    _refused(school, number, RoleNotAllowed, "forward", "nga")
    number = school.to_state("forwarded")
    _refused(school, number, RoleNotAllowed, "approve", "long")
    _refused(school, number, RoleNotAllowed, "approve", "admin")


def test_ownership_refusals(school: School) -> None:
    number = school.draft(owner="hanh")
    refusal = _refused(school, number, GuardRefused, "submit", "nga")
    assert refusal.rule == "actor_is_owner"
    _refused(school, number, GuardRefused, "withdraw", "nga")


def test_nobody_reviews_their_own_request(school: School) -> None:
    number = school.draft(owner="long", line="WEB", amount="2.400.000")
    school.act(number, "submit", "long")
    refusal = _refused(school, number, GuardRefused, "forward", "long", comment="ok")
    assert refusal.rule == "actor_not_owner"
    assert school.request(number).state == "submitted"  # type: ignore[union-attr] # waits, visibly


def test_principal_cannot_approve_his_own_request(school: School) -> None:
    number = school.draft(owner="toan", line="WEB", amount="2.400.000")
    school.act(number, "submit", "toan")
    school.act(number, "forward", "long")
    refusal = _refused(school, number, GuardRefused, "approve", "toan")
    assert refusal.rule == "actor_not_owner"


def test_an_admin_account_holds_no_role_in_the_chain(school: School) -> None:
    with school.runtime.transaction() as session, pytest.raises(NotPermitted, match="quản trị"):
        school.runtime.directory(session).create_user(
            login="sieu",
            name="Siêu Quyền",
            email="sieu@th-demo.edu.vn",
            roles=["admin", "approver"],
            password="mat-khau-dai",
            signing_secret=None,
        )


def test_separation_of_duties_binds_one_person_with_every_chain_role(school: School) -> None:
    with school.runtime.transaction() as session:
        school.runtime.directory(session).create_user(
            login="sieu",
            name="Siêu Quyền",
            email="sieu@th-demo.edu.vn",
            roles=["proposer", "reviewer", "approver", "accountant"],
            password="mat-khau-dai",
            signing_secret="khoa-rieng-sieu",
        )
    number = school.draft(owner="sieu")
    school.act(number, "submit", "sieu", secret="khoa-rieng-sieu")
    _refused(school, number, GuardRefused, "forward", "sieu", secret="khoa-rieng-sieu")
    number = school.to_state("submitted")
    school.act(number, "forward", "sieu", secret="khoa-rieng-sieu")
    refusal = _refused(school, number, GuardRefused, "approve", "sieu", secret="khoa-rieng-sieu")
    assert refusal.rule == "actor_not_forwarder"


def test_printing_over_the_per_time_norm_is_refused_at_submit(school: School) -> None:
    number = school.draft(owner="nga", line="PRINT", amount="650.000", title="In tài liệu tập huấn")
    refusal = _refused(school, number, GuardRefused, "submit", "nga")
    assert refusal.rule == "within_norm"
    assert "500.000 ₫" in refusal.message and "650.000 ₫" in refusal.message


def test_lms_accounts_quantity_times_unit_norm(school: School) -> None:
    ok = school.draft(
        line="LMS", quantity=25, unit_price_vnd="1.200.000", attachments=[QUOTE, QUOTE2]
    )
    event = school.act(ok, "submit", "hanh")
    assert event_view(json.loads(event.body))["data"]["content"]["amount_vnd"] == 30_000_000
    over = school.draft(
        line="LMS", quantity=25, unit_price_vnd="1.500.000", attachments=[QUOTE, QUOTE2]
    )
    refusal = _refused(school, over, GuardRefused, "submit", "hanh")
    assert refusal.rule == "within_norm" and refusal.norm == 1_200_000


def test_large_request_needs_two_quotes(school: School) -> None:
    number = school.draft(line="LMS", quantity=25, unit_price_vnd="1.200.000", attachments=[QUOTE])
    refusal = _refused(school, number, GuardRefused, "submit", "hanh")
    assert refusal.rule == "quotes_attached"


def test_second_accreditation_purchase_within_three_years_is_over_the_norm(school: School) -> None:
    first = school.to_state("approved", line="SW-KDCL", amount="6.000.000", budget_year=2024)
    assert school.request(first).state == "approved"  # type: ignore[union-attr]
    second = school.draft(line="SW-KDCL", amount="1.000.000", budget_year=2025)
    refusal = _refused(school, second, GuardRefused, "submit", "hanh")
    assert refusal.rule == "within_norm" and refusal.left == 0


def test_library_allocation_used_up_cannot_be_forwarded(school: School) -> None:
    school.to_state(
        "approved",
        line="SW-LIB",
        amount="18.000.000",
        budget_year=2024,
        attachments=[QUOTE, QUOTE2],
    )
    number = school.draft(line="SW-LIB", amount="5.000.000", budget_year=2025)
    school.act(number, "submit", "hanh")
    refusal = _refused(school, number, GuardRefused, "forward", "long")
    assert refusal.rule == "within_allocation" and refusal.left == 0
    assert "0 ₫" in refusal.message


def test_return_and_reject_need_a_comment(school: School) -> None:
    number = school.to_state("submitted")
    refusal = _refused(school, number, CommentRequired, "return", "long", comment="   ")
    assert refusal.trigger == "return"
    _refused(school, number, CommentRequired, "reject", "long")


def test_wrong_secret_writes_nothing(school: School) -> None:
    number = school.draft()
    refusal = _refused(school, number, WrongSecret, "submit", "hanh", secret="000000")
    assert "Mã ký không đúng" in refusal.message


def test_trigger_not_possible_from_state(school: School) -> None:
    number = school.to_state("submitted")
    _refused(school, number, TransitionNotAllowed, "approve", "toan")
    _refused(school, number, TransitionNotAllowed, "teleport", "toan")


@pytest.mark.parametrize(
    ("payment", "field"),
    [
        (pay_data(amount=2_000_000), "amount_paid_vnd"),
        (pay_data(voucher=""), "voucher"),
        (pay_data(paid_on="14/01/2025"), "paid_on"),
        (pay_data(paid_on="2099-01-01"), "paid_on"),
    ],
)
def test_payment_must_be_recorded_properly(
    school: School, payment: dict[str, object], field: str
) -> None:
    number = school.to_state("approved")
    refusal = _refused(school, number, DataInvalid, "pay", "mai", data=payment)
    assert refusal.field == field


def test_someone_acting_first_is_named(school: School) -> None:
    number = school.to_state("forwarded")
    seen = school.request(number).last_seq  # type: ignore[union-attr]
    school.act(number, "reject", "toan", comment="Chưa cần thiết.", expected_seq=seen)
    refusal = _refused(
        school, number, ConcurrentChange, "return", "toan", comment="x", expected_seq=seen
    )
    assert refusal.actor == "toan" and refusal.action == "reject"
    assert "Nguyễn Văn Toàn" in refusal.message


def test_drafts_only_editable_by_owner_while_editable(school: School) -> None:
    number = school.to_state("submitted")
    other = school.draft()
    with school.runtime.transaction() as session:
        service = school.runtime.service(session)
        hanh, nga = service.directory.get_user("hanh"), service.directory.get_user("nga")
        assert hanh is not None and nga is not None
        with pytest.raises(DataInvalid):
            service.update_draft(number, hanh, title="đổi")
        with pytest.raises(NotPermitted, match="người lập"):
            service.update_draft(other, nga, title="đổi")


def test_numbers_run_per_school_year(school: School) -> None:
    assert [school.draft() for _ in range(3)] == [
        "2024-2025/0001",
        "2024-2025/0002",
        "2024-2025/0003",
    ]


def test_an_incomplete_draft_can_be_withdrawn_and_the_log_still_verifies(
    school: School, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from expense_audit.verify import verify_bundle
    from workflow.bundle import export_bundle

    with school.runtime.transaction() as session:
        service = school.runtime.service(session)
        number = service.create_draft(
            service.directory.get_user("hanh"), school_year="2024-2025", title="Chưa xong"
        ).number  # type: ignore[arg-type]
    with pytest.raises(DataInvalid):
        school.act(number, "submit", "hanh")  # incomplete: cannot be submitted
    event = school.act(number, "withdraw", "hanh", comment="Nhầm, bỏ nháp.")
    assert event_view(json.loads(event.body))["data"]["content"]["line"] is None
    assert school.request(number).state == "withdrawn"  # type: ignore[union-attr]
    with school.runtime.transaction() as session:
        export_bundle(
            session,
            tmp_path / "b.zip",
            institution=school.runtime.institution,
            now=school.runtime.now(),
        )
    assert verify_bundle(tmp_path / "b.zip").valid
