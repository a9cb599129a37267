"""On a phone (390x844): a large request the principal approved waits for the district finance
officer (issue 15); Thành opens his queue, reads why it is his, and approves with his secret. The
pages fit the screen, read in Vietnamese and pass axe-core like every other page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..factories import SECRET, School
from ..test_district_approval import to_district
from .test_phone_pages import english_codes, problems_of


def test_district_officer_approves_a_large_request_on_a_phone(
    phone: Callable[[str], Any], school: School, axe_source: str, shots: Path
) -> None:
    number = to_district(school)
    codes = english_codes(school.runtime)
    district = school.runtime.definitions.workflow("expense_approval_district")
    codes |= {"district_review", "district_approve", "district_finance"}
    codes |= {t.trigger for t in district.transitions}

    thanh = phone("thanh")  # his home is the district queue
    main = thanh.inner_text("main")
    assert "Chờ Phòng Tài chính – Kế hoạch duyệt" in main and "40.500.000" in main
    thanh.screenshot(path=shots / "district-1-queue.png", full_page=True)
    failures = problems_of(thanh, axe_source, codes)
    thanh.click(f"a:has-text('{number.split('/')[1]}')")
    thanh.wait_for_load_state()
    assert "Chờ Phòng Tài chính – Kế hoạch duyệt" in thanh.inner_text("main")
    failures += problems_of(thanh, axe_source, codes)
    action = thanh.locator(
        "details.action", has=thanh.locator("summary:text-is('Phòng Tài chính – Kế hoạch duyệt')")
    )
    if action.get_attribute("open") is None:
        action.locator("summary").click()
    action.locator("input[type=password]").fill(SECRET)
    action.locator("button").last.click()
    thanh.wait_for_load_state()
    assert "Đã ký và ghi nhận" in thanh.inner_text("main")
    timeline = thanh.inner_text(".timeline")
    assert "Phòng Tài chính – Kế hoạch duyệt" in timeline and "Đỗ Văn Thành" in timeline
    thanh.screenshot(path=shots / "district-2-approved.png", full_page=True)
    failures += problems_of(thanh, axe_source, codes)
    assert not failures, "\n".join(failures)
    assert school.request(number).state == "approved"  # type: ignore[union-attr]
