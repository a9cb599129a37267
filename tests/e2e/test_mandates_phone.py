"""On a phone (390x844): Toàn hands the approver's role to Long before a training (KT.), and
Long approves under it between lessons; the request page signs "KT. HIỆU TRƯỞNG / ...".

The demo people sign with their server-held keys (secret ky-demo-2024); the passkey path of the
same page is covered by tests/test_web_mandates.py with the software authenticator."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..conftest import SteppingClock
from ..factories import SECRET, School

WIDTH = 390


def at(clock: SteppingClock, day: date, hour_local: int = 9) -> None:
    clock.now = datetime(day.year, day.month, day.day, hour_local - 7, 0)


def fits(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth") <= WIDTH)


def test_kt_mandate_granted_and_used_on_a_phone(
    phone: Callable[[str], Any], school: School, clock: SteppingClock, shots: Path
) -> None:
    at(clock, date(2025, 3, 7))
    number = school.draft()
    school.act(number, "submit", "hanh")
    school.act(number, "forward", "dung", comment="Hợp lý.")

    # 1. Toàn, before leaving for the training: the mandates page, signed with his secret.
    toan = phone("toan")
    toan.click("nav.tabs a:text('Ủy quyền')")
    toan.wait_for_load_state()
    toan.select_option("#delegate", "long")
    toan.select_option("#role", "approver")
    toan.check("input[name=kind][value=KT]")
    toan.fill("#valid_from", "2025-03-10")
    toan.fill("#valid_to", "2025-03-21")
    toan.fill("#comment", "Đi tập huấn 10–21/03.")
    toan.fill("#secret", SECRET)
    toan.screenshot(path=shots / "mandate-1-grant.png", full_page=True)
    assert fits(toan)
    toan.click("button:text('Ký giấy ủy quyền')")
    toan.wait_for_load_state()
    main = toan.inner_text("main")
    assert "Đã ký và ghi nhận giấy ủy quyền" in main and "chưa bắt đầu" in main
    toan.screenshot(path=shots / "mandate-2-granted.png", full_page=True)
    assert fits(toan)

    # 2. Long, on 12/03 between lessons: the approval queue is his while Toàn is away.
    at(clock, date(2025, 3, 12), hour_local=10)
    long = phone("long")
    long.click("nav.tabs a:text('Duyệt chi')")
    long.wait_for_load_state()
    assert "Bạn ký KT. hiệu trưởng đến hết ngày 21/03/2025" in long.inner_text("main")
    long.screenshot(path=shots / "mandate-3-queue.png", full_page=True)
    assert fits(long)
    long.click("a:has-text('Gia hạn phần mềm')")
    long.wait_for_load_state()
    action = long.locator("details.action", has=long.locator("summary:text-is('Duyệt chi')"))
    if action.get_attribute("open") is None:
        action.locator("summary").click()
    action.locator("input[type=password]").fill(SECRET)
    action.locator("button").last.click()
    long.wait_for_load_state()
    main = long.inner_text("main")
    assert "Đã ký và ghi nhận" in main
    assert "KT. HIỆU TRƯỞNG / PHÓ HIỆU TRƯỞNG Nguyễn Văn Long" in long.inner_text(".timeline")
    long.screenshot(path=shots / "mandate-4-approved.png", full_page=True)
    assert fits(long)
    assert school.request(number).state == "approved"  # type: ignore[union-attr]
