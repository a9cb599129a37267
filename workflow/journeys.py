"""The ordinary path of SCENARIOS.md, written once: Hạnh proposes, Long forwards, Toàn approves, Mai
pays. The tests, the benchmarks and the crash test's worker drive requests with these functions.

Each step is its own transaction through ``ApprovalService`` (as a page post would be), so a step
that is refused leaves nothing behind and a step that returned is committed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

from .db import read_first
from .models import AuditEvent, User
from .runtime import Runtime
from .service import ApprovalService

SCHOOL_YEAR = "2024-2025"  # the demo school's year (SCENARIOS.md)

# (trigger, who) along the ordinary path, and the state each step leads to.
ORDINARY_PATH: tuple[tuple[str, str], ...] = (
    ("submit", "hanh"),
    ("forward", "long"),
    ("approve", "toan"),
    ("pay", "mai"),
)
REACHED = {"submit": "submitted", "forward": "forwarded", "approve": "approved", "pay": "paid"}

# A small request (one month of EnetViet at 15,000 ₫) that many can pass before the line runs dry.
SMALL_REQUEST: Mapping[str, Any] = {
    "title": "EnetViet",
    "line": "ENETVIET",
    "source": "THU-DL",
    "budget_year": 2025,
    "quantity": 1,
    "unit_price_vnd": "15.000",
}


def steps_to(state: str) -> list[tuple[str, str]]:
    """The ordinary path's steps from a draft up to ``state`` (``draft`` .. ``paid``)."""
    if state == "draft":
        return []
    for index, (trigger, _login) in enumerate(ORDINARY_PATH):
        if REACHED[trigger] == state:
            return list(ORDINARY_PATH[: index + 1])
    raise ValueError(f"{state!r} is not on the ordinary path")


def payment(
    amount_vnd: int, *, paid_on: date | str, voucher: str = "PC-2025-0031"
) -> dict[str, Any]:
    """The accountant's payment record, as the pay step takes it."""
    day = paid_on.isoformat() if isinstance(paid_on, date) else paid_on
    return {"voucher": voucher, "paid_on": day, "amount_paid_vnd": amount_vnd}


def propose(
    runtime: Runtime, owner: str = "hanh", *, school_year: str = SCHOOL_YEAR, **content: Any
) -> str:
    """A new draft by ``owner``; returns its number."""
    with runtime.transaction() as session:
        service = runtime.service(session)
        return service.create_draft(
            _user(service, owner), school_year=school_year, **content
        ).number


def take_step(
    runtime: Runtime, number: str, trigger: str, login: str, secret: str, **kwargs: Any
) -> AuditEvent:
    """``login`` fires ``trigger`` on the request, signed with ``secret``; returns the event."""
    with runtime.transaction() as session:
        read_first(session)  # the checks and the key's unlock before the write lock
        service = runtime.service(session)
        return service.act(number, trigger, _user(service, login), secret, **kwargs)


def _user(service: ApprovalService, login: str) -> User:
    user = service.directory.get_user(login)
    if user is None:
        raise LookupError(f"no account {login!r}: are the demo people created?")
    return user


def walk(
    runtime: Runtime,
    number: str,
    secret: str,
    *,
    until: str = "paid",
    paid: Mapping[str, Any] | None = None,
) -> Iterator[AuditEvent]:
    """Drive a draft along the ordinary path up to ``until``, yielding each committed event.

    The payment is ``paid`` if given, else the request's whole amount paid today.
    """
    for trigger, login in steps_to(until):
        data = None
        if trigger == "pay":
            data = dict(paid) if paid is not None else _full_payment(runtime, number)
        yield take_step(runtime, number, trigger, login, secret, data=data)


def _full_payment(runtime: Runtime, number: str) -> dict[str, Any]:
    with runtime.transaction() as session:
        projection = runtime.service(session).current(number).projection or {}
    return payment(int(projection["amount_vnd"]), paid_on=runtime.now().date())
