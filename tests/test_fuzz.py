"""Hostile input to the service layer: a clear WorkflowError or success, never a crash, nothing half-written."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expense_audit.errors import AmountInvalid, WorkflowError
from expense_audit.money import MAX_AMOUNT_VND, parse_amount

from .factories import School

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=50),
    st.text(min_size=5000, max_size=20000),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.binary(max_size=20),
)


@given(st.one_of(st.text(max_size=40), junk))
@settings(max_examples=500, deadline=None)
def test_parse_amount_never_crashes(value: Any) -> None:
    try:
        amount = parse_amount(value)
    except AmountInvalid as refusal:
        assert refusal.message
    else:
        assert 0 < amount <= MAX_AMOUNT_VND


@given(st.integers(min_value=1, max_value=MAX_AMOUNT_VND))
@settings(max_examples=300, deadline=None)
def test_every_way_of_writing_an_amount_reads_back_the_same(amount: int) -> None:
    grouped = f"{amount:,}"
    for text in (str(amount), grouped, grouped.replace(",", "."), f"{grouped.replace(',', '.')} ₫"):
        assert parse_amount(text) == amount


@FUZZ
@given(
    title=junk,
    description=junk,
    line=st.one_of(junk, st.sampled_from(["PRINT", "LMS", "SW-ASSET"])),
    source=junk,
    budget_year=st.one_of(junk, st.sampled_from([2024, 2025])),
    amount=junk,
    quantity=junk,
    attachments=junk,
)
def test_drafts_from_hostile_fields(school: School, **fields: Any) -> None:
    before = school.snapshot("2024-2025/0001")
    try:
        number = school.draft(**fields)
    except WorkflowError as refusal:
        assert refusal.message
        assert school.snapshot("2024-2025/0001") == before
        return
    try:
        school.act(number, "submit", "hanh")
    except WorkflowError as refusal:
        assert refusal.message


@FUZZ
@given(
    number=st.one_of(
        st.text(max_size=60), st.sampled_from(["2024-2025/0001", "2024-2025/9999", "../../etc"])
    ),
    trigger=st.one_of(
        st.text(max_size=30),
        st.sampled_from(["submit", "forward", "approve", "pay", "__init__", "to_draft"]),
    ),
    login=st.sampled_from(["hanh", "long", "toan", "mai", "admin"]),
    secret=st.one_of(st.text(max_size=20), st.just("ky-demo-2024")),
    comment=st.one_of(st.none(), st.text(max_size=3000)),
    data=st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(["voucher", "paid_on", "amount_paid_vnd", "x"]), junk, max_size=4
        ),
    ),
)
def test_actions_from_hostile_input(
    school: School,
    number: str,
    trigger: str,
    login: str,
    secret: str,
    comment: str | None,
    data: Any,
) -> None:
    if school.request("2024-2025/0001") is None:
        school.to_state("approved")  # one real request to aim at, created on the first example
    before = school.snapshot("2024-2025/0001")
    try:
        school.act(number, trigger, login, secret=secret, comment=comment, data=data)
    except WorkflowError as refusal:
        assert refusal.message
        assert school.snapshot("2024-2025/0001") == before
