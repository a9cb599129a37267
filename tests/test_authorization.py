"""Every role × every action × own or other's request: allowed, 403 or 404, checked on the server."""

from __future__ import annotations

from typing import Any

import pytest

from .factories import School, pay_data
from .web import AuthActions

ALLOWED, FORBIDDEN, HIDDEN, LOGIN = "allowed", 403, 404, "login"
PEOPLE = ("hanh", "nga", "long", "toan", "mai", "kiem", "admin", None)  # None: not signed in

# Pages: path -> who may open it (everyone else 403; anonymous is sent to the login page).
PAGES: dict[str, set[str]] = {
    "/requests/mine": {"hanh", "nga", "long", "toan"},
    "/requests/new": {"hanh", "nga", "long", "toan"},
    "/review": {"long"},
    "/approvals": {"toan"},
    "/payments": {"mai"},
    "/ledger": {"mai", "kiem", "toan"},
    "/audit": {"kiem", "admin", "toan"},
    "/admin/users": {"admin"},
    "/admin/mail": {"admin"},
}

# Actions on a request. owner: whose request it is; state: where it stands; expected per person.
CASES: list[tuple[str, str, str, dict[str | None, Any]]] = [
    # (action, owner, state, expected outcome per person; missing = 404 for others' drafts)
    (
        "view",
        "hanh",
        "draft",
        {
            "hanh": ALLOWED,
            "nga": HIDDEN,
            "long": HIDDEN,
            "toan": HIDDEN,
            "mai": HIDDEN,
            "kiem": HIDDEN,
            "admin": HIDDEN,
            None: LOGIN,
        },
    ),
    (
        "view",
        "hanh",
        "submitted",
        {
            "hanh": ALLOWED,
            "nga": HIDDEN,
            "long": ALLOWED,
            "toan": ALLOWED,
            "mai": ALLOWED,
            "kiem": ALLOWED,
            "admin": HIDDEN,
            None: LOGIN,
        },
    ),
    (
        "edit",
        "hanh",
        "draft",
        {
            "hanh": ALLOWED,
            "nga": HIDDEN,
            "long": HIDDEN,
            "toan": HIDDEN,
            "mai": FORBIDDEN,
            "kiem": FORBIDDEN,
            "admin": FORBIDDEN,
            None: LOGIN,
        },
    ),
    (
        "edit",
        "hanh",
        "returned",
        {
            "hanh": ALLOWED,
            "nga": HIDDEN,
            "long": FORBIDDEN,
            "toan": FORBIDDEN,
            "mai": FORBIDDEN,
            "kiem": FORBIDDEN,
            "admin": FORBIDDEN,
            None: LOGIN,
        },
    ),
    (
        "submit",
        "hanh",
        "draft",
        {
            "hanh": ALLOWED,
            "nga": HIDDEN,
            "long": HIDDEN,
            "toan": HIDDEN,
            "mai": HIDDEN,
            "kiem": HIDDEN,
            "admin": HIDDEN,
            None: LOGIN,
        },
    ),
    (
        "withdraw",
        "hanh",
        "submitted",
        {
            "hanh": ALLOWED,
            "nga": HIDDEN,
            "long": FORBIDDEN,
            "toan": FORBIDDEN,
            "mai": FORBIDDEN,
            "kiem": FORBIDDEN,
            "admin": HIDDEN,
            None: LOGIN,
        },
    ),
    (
        "forward",
        "hanh",
        "submitted",
        {
            "hanh": FORBIDDEN,
            "nga": HIDDEN,
            "long": ALLOWED,
            "toan": FORBIDDEN,
            "mai": FORBIDDEN,
            "kiem": FORBIDDEN,
            "admin": HIDDEN,
            None: LOGIN,
        },
    ),
    (
        "forward",
        "long",
        "submitted",
        {"long": FORBIDDEN, "hanh": HIDDEN, "toan": FORBIDDEN},
    ),  # own request
    (
        "approve",
        "hanh",
        "forwarded",
        {
            "hanh": FORBIDDEN,
            "nga": HIDDEN,
            "long": FORBIDDEN,
            "toan": ALLOWED,
            "mai": FORBIDDEN,
            "kiem": FORBIDDEN,
            "admin": HIDDEN,
            None: LOGIN,
        },
    ),
    ("approve", "toan", "forwarded", {"toan": FORBIDDEN, "long": FORBIDDEN}),  # own request
    (
        "pay",
        "hanh",
        "approved",
        {
            "hanh": FORBIDDEN,
            "nga": HIDDEN,
            "long": FORBIDDEN,
            "toan": FORBIDDEN,
            "mai": ALLOWED,
            "kiem": FORBIDDEN,
            "admin": HIDDEN,
            None: LOGIN,
        },
    ),
]


def _outcome(response: Any) -> Any:
    if response.status_code == 302 and "/login" in response.headers.get("Location", ""):
        return LOGIN
    if response.status_code in (200, 302):
        return ALLOWED
    return response.status_code


def _who(login: str | None) -> str:
    return login or "anonymous"


def _expected_name(expected: Any) -> str:
    return {ALLOWED: "allowed", FORBIDDEN: "403", HIDDEN: "404", LOGIN: "to-login"}[expected]


def _page_row(path: str, login: str | None) -> Any:
    expected = LOGIN if login is None else ALLOWED if login in PAGES[path] else FORBIDDEN
    name = f"{_who(login)}-opens-{path.strip('/')}-{_expected_name(expected)}"
    return pytest.param(login, path, expected, id=name)


PAGE_ROWS = [_page_row(path, login) for path in PAGES for login in PEOPLE]


@pytest.mark.parametrize(("login", "path", "expected"), PAGE_ROWS)
def test_pages_by_role(auth: AuthActions, login: str | None, path: str, expected: Any) -> None:
    browser = auth.session(login)
    assert _outcome(browser.get(path)) == expected


def _prepare(school: School, owner: str, state: str) -> str:
    number = school.draft(
        owner=owner, line="ENETVIET", quantity=10, unit_price_vnd="15.000", source="THU-DL"
    )
    reviewer = "long" if owner != "long" else None
    steps = {
        "draft": [],
        "submitted": [("submit", owner)],
        "returned": [("submit", owner), ("return", reviewer)],
        "forwarded": [("submit", owner), ("forward", reviewer)],
        "approved": [("submit", owner), ("forward", reviewer), ("approve", "toan")],
    }[state]
    for trigger, login in steps:
        school.act(number, trigger, login, comment="Ý kiến.")  # type: ignore[arg-type]
    return number


ACTION_ROWS = [
    pytest.param(
        action,
        owner,
        state,
        login,
        expected,
        id=f"{_who(login)}-{action}-{owner}s-{state}-{_expected_name(expected)}",
    )
    for action, owner, state, expected_by_person in CASES
    for login, expected in expected_by_person.items()
]


@pytest.mark.parametrize(("action", "owner", "state", "login", "expected"), ACTION_ROWS)
def test_actions_by_role_and_ownership(
    auth: AuthActions,
    school: School,
    action: str,
    owner: str,
    state: str,
    login: str | None,
    expected: Any,
) -> None:
    number = _prepare(school, owner, state)
    browser = auth.session(login)
    before = school.snapshot(number)
    if action == "view":
        response = browser.get(f"/requests/{number}")
    elif action == "edit":
        response = browser.get(f"/requests/{number}/edit")
    else:
        if login is not None:
            browser.get("/")
        fields: dict[str, Any] = {
            "trigger": action,
            "secret": "ky-demo-2024",
            "comment": "Ý kiến.",
        }
        if action == "pay":
            fields.update(voucher="PC-1", paid_on=pay_data()["paid_on"], amount_paid="150.000")
        response = browser.post(f"/requests/{number}/act", fields)
    assert _outcome(response) == expected
    if expected != ALLOWED or action in ("view", "edit"):
        assert school.snapshot(number) == before, "a refused action changed something"
