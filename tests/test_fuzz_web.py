"""Hostile form posts: never a server error, a clear answer, nothing written."""

from __future__ import annotations

from typing import Any

from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .factories import School
from .web import Browser

FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
value = st.one_of(
    st.text(max_size=40),
    st.text(min_size=3000, max_size=6000),
    st.integers().map(str),
    st.sampled_from(["", "0", "-1", "1.800.000", "1tr8", "2025", "SW-ASSET", "\x00", "<script>"]),
)
_BROWSERS: dict[tuple[int, str], Browser] = {}


def _signed_in(app: Flask, login: str) -> Browser:
    """One signed-in browser per user and app: many sign-ins would (rightly) hit the rate limit."""
    key = (id(app), login)
    if key not in _BROWSERS:
        if len(_BROWSERS) > 8:
            _BROWSERS.clear()
        _BROWSERS[key] = Browser(app).login(login)
    return _BROWSERS[key]


FIELDS = [
    "title",
    "line",
    "amount",
    "quantity",
    "unit_price",
    "source",
    "budget_year",
    "description",
]


@FUZZ
@given(form=st.dictionaries(st.sampled_from(FIELDS), value, max_size=8))
def test_new_request_posts(app: Flask, school: School, form: dict[str, Any]) -> None:
    browser = _signed_in(app, "hanh")
    before = school.snapshot("2024-2025/0001")
    response = browser.post("/requests/new", form)
    assert response.status_code in (200, 302, 400, 422), response.status_code
    if response.status_code != 302:
        assert school.snapshot("2024-2025/0001") == before


@FUZZ
@given(
    trigger=st.one_of(
        st.text(max_size=20), st.sampled_from(["submit", "forward", "approve", "pay", "return"])
    ),
    secret=st.one_of(st.text(max_size=20), st.just("ky-demo-2024")),
    comment=value,
    expected=value,
    voucher=value,
    paid_on=value,
    amount=value,
    login=st.sampled_from(["hanh", "long", "toan", "mai"]),
)
def test_action_posts(
    app: Flask,
    school: School,
    trigger: str,
    secret: str,
    comment: str,
    expected: str,
    voucher: str,
    paid_on: str,
    amount: str,
    login: str,
) -> None:
    if school.request("2024-2025/0001") is None:
        school.to_state("approved")
    browser = _signed_in(app, login)
    before = school.snapshot("2024-2025/0001")
    response = browser.post(
        "/requests/2024-2025/0001/act",
        {
            "trigger": trigger,
            "secret": secret,
            "comment": comment,
            "expected_seq": expected,
            "voucher": voucher,
            "paid_on": paid_on,
            "amount_paid": amount,
        },
    )
    assert response.status_code in (302, 400, 403, 422), response.status_code
    if response.status_code != 302:
        assert school.snapshot("2024-2025/0001") == before
