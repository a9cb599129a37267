"""End to end on a phone: staff submits with a photo, deputy forwards, principal approves,
accountant pays and downloads the XLSX, auditor sees the log verified."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from ..factories import School

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 400


def _sign(
    page: Any, action_label: str, secret: str = "ky-demo-2024", comment: str | None = None
) -> None:
    action = page.locator("details.action", has=page.locator(f"summary:text-is('{action_label}')"))
    if action.get_attribute("open") is None:
        action.locator("summary").click()
    if comment:
        action.locator("textarea").fill(comment)
    action.locator("input[type=password]").fill(secret)
    action.locator("button[type=submit], button").last.click()
    page.wait_for_load_state()


def test_the_whole_chain_on_a_phone(
    phone: Callable[[str], Any], school: School, shots: Path, tmp_path: Path
) -> None:
    photo = tmp_path / "bao-gia.jpg"
    photo.write_bytes(JPEG)

    # 1. Hạnh, IT staff: a new request with a photographed quote, then submit with her secret.
    hanh = phone("hanh")
    hanh.screenshot(path=shots / "01-my-requests.png", full_page=True)
    hanh.click("text=Đề xuất mới")
    hanh.fill("#title", "Gia hạn phần mềm quản lý tài sản công 2025")
    hanh.select_option("#line", "SW-ASSET")
    assert "còn 3.600.000 ₫" in hanh.inner_text("#line-hint")
    hanh.fill("#amount", "1.800.000")
    hanh.select_option("#budget_year", "2025")
    hanh.set_input_files("input[type=file][multiple]", str(photo))
    hanh.screenshot(path=shots / "02-new-request.png", full_page=True)
    hanh.click("button:text('Lưu nháp')")
    hanh.wait_for_url("**/requests/2024-2025/*")  # sent by the phone's draft keeper, then shown
    assert "Đã lưu nháp" in hanh.inner_text("main")
    number = hanh.inner_text("h1")
    _sign(hanh, "Gửi đề xuất")
    assert "Đã ký và ghi nhận" in hanh.inner_text("main")
    hanh.screenshot(path=shots / "03-submitted.png", full_page=True)

    # 2. Long, deputy principal: the review queue, then forward with "hợp lý".
    long = phone("long")
    assert number in long.inner_text("main") and "Trong định mức" in long.inner_text("main")
    long.screenshot(path=shots / "04-review-queue.png", full_page=True)
    long.click(f"text={number}")
    long.wait_for_load_state()
    long.screenshot(path=shots / "05-request-page.png", full_page=True)
    _sign(long, "Trình hiệu trưởng duyệt", comment="hợp lý")
    assert "Đã ký và ghi nhận" in long.inner_text("main")

    # 3. Toàn, principal: approves from his queue.
    toan = phone("toan")
    assert number in toan.inner_text("main")
    toan.screenshot(path=shots / "06-approval-queue.png", full_page=True)
    toan.click("a:has-text('Gia hạn phần mềm')")
    toan.wait_for_load_state()
    _sign(toan, "Duyệt chi")
    assert "Đã ký và ghi nhận" in toan.inner_text("main")

    # 4. Mai, accountant: records the payment, then downloads the ledger as XLSX.
    mai = phone("mai")
    mai.click(f"text={number}")
    mai.wait_for_load_state()
    action = mai.locator("details.action").first
    action.locator("#voucher").fill("PC-2025-0031")
    action.locator("#paid_on").fill("2025-01-13")
    mai.screenshot(path=shots / "07-payment.png", full_page=True)
    _sign(mai, "Ghi nhận thanh toán")
    assert "Đã ký và ghi nhận" in mai.inner_text("main")
    mai.goto("/ledger")
    assert "PC-2025-0031" in mai.inner_text("main")
    mai.screenshot(path=shots / "08-ledger.png", full_page=True)
    with mai.expect_download() as download_info:
        mai.click("text=XLSX")
    xlsx = tmp_path / "so-chi.xlsx"
    download_info.value.save_as(xlsx)
    sheet = load_workbook(xlsx).active
    assert sheet.cell(row=2, column=1).value == number
    assert sheet.cell(row=2, column=13).value == "PC-2025-0031"

    # 5. Kiểm, district inspector: verifies the live log.
    kiem = phone("kiem")
    kiem.click("button:text('Kiểm tra ngay')")
    kiem.wait_for_load_state()
    assert "Hợp lệ" in kiem.inner_text("#result")
    kiem.screenshot(path=shots / "09-audit.png", full_page=True)
    # The verifier key (a long unbroken string) wraps inside a 390 px phone, no sideways scroll.
    box = kiem.locator("#verifier-key").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390
    assert kiem.evaluate("document.documentElement.scrollWidth") <= 390
    assert school.request(number).state == "paid"  # type: ignore[union-attr]
