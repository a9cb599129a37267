"""End to end with passkeys, on a phone: Chromium's virtual authenticator (CDP WebAuthn domain,
internal transport, user verification on) stands in for the fingerprint. The admin issues a code,
a newcomer registers a passkey with it, the demo people move from their server-held keys to
passkeys, and the request goes submit, forward, approve (bulk, one prompt), pay; the auditor
verifies the live log."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..factories import SECRET, School

NEWCOMER_PASSWORD = "mat-khau-tam-thoi"  # noqa: S105 - chosen by the admin in this test
OWN_PASSWORD = "ca-phe-sua-da-buoi-sang"  # noqa: S105
CODE = re.compile(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}")


def _fingerprint(page: Any) -> tuple[Any, str]:
    """Give this phone a platform authenticator that always verifies its user; returns the CDP
    session and the authenticator's id."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    return cdp, _new_authenticator(cdp)


def _new_authenticator(cdp: Any, transport: str = "internal", *, present: bool = True) -> str:
    answer = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": transport,
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": present,
            }
        },
    )
    return str(answer["authenticatorId"])


def _looks_right(page: Any, shots: Path, name: str) -> None:
    """A screenshot, and what a phone user would notice: sideways scrolling, small targets."""
    page.screenshot(path=shots / f"{name}.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), name
    small = page.evaluate(
        """() => Array.from(document.querySelectorAll(
              'main button, main .button, main summary, main input:not([type=hidden]), main select'))
            .filter((e) => e.offsetParent !== null && e.type !== 'checkbox')
            .filter((e) => e.getBoundingClientRect().height < 44)
            .map((e) => e.outerHTML.slice(0, 80))"""
    )
    assert small == [], (name, small)


def _register_passkey(page: Any, password: str, *, code: str = "", old_secret: str = "") -> None:
    page.goto("/signing-key")
    page.fill("#pk-password", password)
    if code:
        page.fill("#pk-code", code)
    if old_secret:
        page.fill("#pk-old_secret", old_secret)
    page.click("button:text('Tạo passkey')")
    page.wait_for_selector("button:text('Xác nhận passkey')", state="visible")
    assert "Còn một bước" in page.inner_text("#passkey")
    page.click("button:text('Xác nhận passkey')")
    page.wait_for_selector("text=Passkey đã sẵn sàng")


def _review_step(page: Any, action_label: str, comment: str | None = None) -> Any:
    action = page.locator("details.action", has=page.locator(f"summary:text-is('{action_label}')"))
    if action.get_attribute("open") is None:
        action.locator("summary").click()
    if comment:
        action.locator("textarea").fill(comment)
    action.locator("button:text('Xem nội dung sẽ ký')").click()
    action.locator("[data-review]").wait_for(state="visible")
    return action


def _sign(page: Any, action: Any) -> None:
    action.locator("button:text('Ký bằng vân tay hoặc khuôn mặt')").click()
    page.wait_for_selector("text=Đã ký và ghi nhận")


def test_the_whole_chain_signed_with_passkeys_on_phones(
    page: Any, phone: Callable[[str], Any], school: School, shots: Path
) -> None:
    # An older request, forwarded with server-held keys before anyone moved to a passkey.
    earlier = school.to_state("forwarded", line="WEB", amount="2.400.000")

    # 1. The admin creates Lan's account and gives her a one-time code.
    admin = phone("admin")
    admin.goto("/admin/users")
    admin.fill("#login", "lan")
    admin.fill("#name", "Phạm Thị Lan")
    admin.fill("#email", "lan@th-demo.edu.vn")
    admin.fill("#password", NEWCOMER_PASSWORD)
    admin.check("form.card input[name=roles][value=proposer]")
    admin.click("button:text('Tạo tài khoản')")
    admin.wait_for_load_state()
    card = admin.locator("li.card", has=admin.locator("text=Phạm Thị Lan"))
    card.locator("button:text('Mã đăng ký')").click()
    admin.wait_for_load_state()
    code = CODE.search(admin.inner_text("main"))
    assert code, admin.inner_text("main")
    _looks_right(admin, shots, "p01-admin-code")

    # 2. Lan signs in: her own password first, then her passkey with the code.
    page.goto("/login")
    page.fill("#login", "lan")
    page.fill("#password", NEWCOMER_PASSWORD)
    page.click("button.primary")
    page.wait_for_load_state()
    assert "/password" in page.url and "mật khẩu của riêng bạn" in page.inner_text("main")
    page.fill("#current", NEWCOMER_PASSWORD)
    page.fill("#new", OWN_PASSWORD)
    page.fill("#confirm", OWN_PASSWORD)
    page.click("button.primary")
    page.wait_for_load_state()
    assert "/signing-key" in page.url
    _fingerprint(page)
    _looks_right(page, shots, "p02-register-passkey")
    _register_passkey(page, OWN_PASSWORD, code=code.group(0))

    # 3. Lan drafts and submits, seeing what she signs before the prompt.
    page.goto("/requests/new")
    page.fill("#title", "Gia hạn phần mềm quản lý tài sản công 2025")
    page.select_option("#line", "SW-ASSET")
    page.fill("#amount", "1.800.000")
    page.select_option("#budget_year", "2025")
    page.click("button:text('Lưu nháp')")
    page.wait_for_url("**/requests/2024-2025/*")  # sent by the phone's draft keeper, then shown
    number = page.inner_text("h1")
    action = _review_step(page, "Gửi đề xuất")
    shown = action.locator("[data-review]").inner_text()
    assert "1.800.000 ₫" in shown and "Phần mềm quản lý tài sản công" in shown
    assert "Gửi đề xuất" in shown and number in shown
    _looks_right(page, shots, "p03-what-you-sign")
    _sign(page, action)
    assert "passkey" in page.inner_text(".timeline")

    # 4. Long moves from his server-held key to a passkey (signed off by his secret), forwards.
    long = phone("long")
    _fingerprint(long)
    _register_passkey(long, "demo-2024", old_secret=SECRET)
    long.goto(f"/requests/{number}")
    action = _review_step(long, "Trình hiệu trưởng duyệt", comment="hợp lý")
    assert "hợp lý" in action.locator("[data-review]").inner_text()
    _sign(long, action)

    # 5. Toàn approves both forwarded requests with one prompt.
    toan = phone("toan")
    _fingerprint(toan)
    _register_passkey(toan, "demo-2024", old_secret=SECRET)
    toan.goto("/approvals")
    for box in toan.locator("input[name=numbers]").all():
        box.check()
    toan.click("button:text('Xem nội dung sẽ ký')")
    toan.wait_for_selector("[data-review]", state="visible")
    listed = toan.inner_text("[data-review]")
    assert number in listed and earlier in listed and "4.200.000 ₫" in listed
    _looks_right(toan, shots, "p04-bulk-approval")
    toan.click("button:text('Ký bằng vân tay hoặc khuôn mặt')")
    toan.wait_for_selector("text=Đã duyệt")
    assert number in toan.inner_text("main") and earlier in toan.inner_text(".flash.success")

    # 6. Mai records the payment.
    mai = phone("mai")
    _fingerprint(mai)
    _register_passkey(mai, "demo-2024", old_secret=SECRET)
    mai.goto(f"/requests/{number}")
    pay = mai.locator("details.action").first
    pay.locator("#voucher").fill("PC-2025-0031")
    pay.locator("#paid_on").fill("2025-01-13")
    action = _review_step(mai, "Ghi nhận thanh toán")
    assert "PC-2025-0031" in action.locator("[data-review]").inner_text()
    _looks_right(mai, shots, "p05-payment")
    _sign(mai, action)
    assert school.request(number).state == "paid"  # type: ignore[union-attr]
    mai.goto("/account")
    _looks_right(mai, shots, "p06-account")
    assert "đổi khóa, ký bởi khóa trước" in mai.inner_text("main")

    # 7. The inspector verifies the live log.
    kiem = phone("kiem")
    kiem.click("button:text('Kiểm tra ngay')")
    kiem.wait_for_load_state()
    _looks_right(kiem, shots, "p07-audit")
    assert "Hợp lệ" in kiem.inner_text("#result")


def test_a_new_phone_takes_over_signed_off_by_the_old_passkey(
    phone: Callable[[str], Any], school: School, shots: Path
) -> None:
    hanh = phone("hanh")
    cdp, old_phone = _fingerprint(hanh)
    _register_passkey(hanh, "demo-2024", old_secret=SECRET)
    # The old phone moves out of this browser: it is now reached as "another device" (hybrid,
    # the browser's QR code) and does not answer until the school asks for the hand-over.
    passkeys = cdp.send("WebAuthn.getCredentials", {"authenticatorId": old_phone})
    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": old_phone})
    old_phone = _new_authenticator(cdp, "cable", present=False)
    for credential in passkeys["credentials"]:
        cdp.send("WebAuthn.addCredential", {"authenticatorId": old_phone, "credential": credential})
    away = {"authenticatorId": old_phone, "enabled": False}
    new_phone = _new_authenticator(cdp)
    hanh.goto("/signing-key")
    assert "Đổi điện thoại?" in hanh.inner_text("#passkey")
    _looks_right(hanh, shots, "p08-new-phone")
    hanh.fill("#pk-password", "demo-2024")

    def old_phone_answers(route: Any) -> None:
        answer = route.fetch()
        cdp.send("WebAuthn.setAutomaticPresenceSimulation", {**away, "enabled": True})
        route.fulfill(response=answer)

    def old_phone_leaves(route: Any) -> None:
        answer = route.fetch()
        cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": old_phone})
        route.fulfill(response=answer)

    hanh.route("**/signing-key/passkey", old_phone_answers)
    hanh.route("**/signing-key/passkey/rotate", old_phone_leaves)
    hanh.click("button:text('Tạo passkey')")
    hanh.wait_for_selector("button:text('Xác nhận passkey')", state="visible")
    hanh.click("button:text('Xác nhận passkey')")
    hanh.wait_for_selector("text=Passkey đã sẵn sàng")
    hanh.goto("/account")
    assert "đổi khóa, ký bởi khóa trước" in hanh.inner_text("main")
    made = cdp.send("WebAuthn.getCredentials", {"authenticatorId": new_phone})["credentials"]
    assert len(made) == 1
