"""The four journeys (and the auditor's and admin's) through the Flask test client."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from expense_audit.checkpoint import verifier_key
from expense_audit.verify import verify_bundle
from workflow.errors import AccountLocked
from workflow.livecheck import verify_live
from workflow.models import AuditEvent

from .factories import School
from .web import Browser, text

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200
PDF = b"%PDF-1.4\n%quote\n" + b"0" * 100


def _new_request(browser: Browser, **fields: object) -> str:
    browser.get("/requests/new")
    data = {
        "title": "Gia hạn phần mềm quản lý tài sản công 2025",
        "line": "SW-ASSET",
        "amount": "1.800.000",
        "source": "NSNN-TX",
        "budget_year": "2025",
        "description": "Theo kế hoạch.",
    }
    data.update(fields)  # type: ignore[arg-type]
    response = browser.post("/requests/new", data, content_type="multipart/form-data")
    assert response.status_code == 302, text(response)[:2000]
    return response.headers["Location"].split("/requests/")[1]


def test_login_is_vietnamese_by_default_and_refuses_bad_passwords(app) -> None:  # type: ignore[no-untyped-def]
    browser = Browser(app)
    page = text(browser.get("/login"))
    assert "Đăng nhập" in page and 'lang="vi"' in page
    response = browser.post("/login", {"login": "hanh", "password": "wrong-password"})
    assert "Sai tên đăng nhập hoặc mật khẩu." in text(response)


def test_login_attempts_are_rate_limited(app) -> None:  # type: ignore[no-untyped-def]
    browser = Browser(app)
    codes = [
        browser.post("/login", {"login": "hanh", "password": "x"}).status_code for _ in range(12)
    ]
    assert codes[:10] == [200] * 10 and codes[-1] == 429


def test_security_headers_and_csrf(app) -> None:  # type: ignore[no-untyped-def]
    browser = Browser(app)
    response = browser.get("/login")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    forged = browser.client.post("/login", data={"login": "hanh", "password": "demo-2024"})
    assert forged.status_code == 400
    browser.login("hanh")
    cookie = browser.client.get_cookie("session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    assert "<script>" not in text(browser.get("/requests/mine")).replace(
        '<script src="/static/app.js" defer></script>', ""
    )


def test_staff_journey_with_attachment_submit_and_wrong_secret(app, school: School) -> None:  # type: ignore[no-untyped-def]
    hanh = Browser(app).login("hanh")
    form = text(hanh.get("/requests/new"))
    assert 'data-left="3.600.000 ₫"' in form and "Định mức và phần còn lại" in form
    number = _new_request(
        hanh, attachments=[(io.BytesIO(JPEG), "bao-gia.jpg"), (io.BytesIO(PDF), "bao-gia-2.pdf")]
    )
    page = text(hanh.get(f"/requests/{number}"))
    assert (
        "1.800.000 ₫" in page
        and "bao-gia.jpg" in page
        and "còn 3.600.000 ₫ trên 3.600.000 ₫" in page
    )
    refused = hanh.act(number, "submit", secret="000000")
    assert refused.status_code == 422 and "Mã ký không đúng" in text(refused)
    assert school.request(number) is None
    assert hanh.act(number, "submit").status_code == 302
    assert school.request(number).state == "submitted"  # type: ignore[union-attr]
    mine = text(hanh.get("/requests/mine"))
    assert number in mine and "Chờ xem xét" in mine, mine[
        mine.find("<main>") : mine.find("</main>")
    ]
    image = hanh.get(
        f"/requests/{number}/attachments/{school.request(number).attachments[0]['sha256']}"
    )  # type: ignore[union-attr]
    assert image.status_code == 200 and image.data == JPEG
    image.close()


def test_norm_refusal_is_shown_and_nothing_written(app, school: School) -> None:  # type: ignore[no-untyped-def]
    nga = Browser(app).login("nga")
    number = _new_request(nga, title="In tài liệu tập huấn", line="PRINT", amount="650.000")
    before = school.snapshot(number)
    response = nga.act(number, "submit")
    assert response.status_code == 422
    assert "tối đa 500.000 ₫ mỗi lần" in text(response)
    assert school.snapshot(number) == before


def test_reviewer_queue_forward_and_return(app, school: School) -> None:  # type: ignore[no-untyped-def]
    first = school.to_state("submitted")
    second = school.to_state("submitted", line="WEB", amount="2.400.000")
    long = Browser(app).login("long")
    queue = text(long.get("/review"))
    assert queue.index(first) < queue.index(second)  # oldest first
    assert "Trong định mức, còn 3.600.000 ₫ trên 3.600.000 ₫" in queue
    assert long.act(first, "forward", comment="hợp lý").status_code == 302
    missing = long.act(second, "return")
    assert missing.status_code == 422 and "Cần ghi ý kiến" in text(missing)
    assert long.act(second, "return", comment="thiếu báo giá thứ hai").status_code == 302
    assert school.request(first).state == "forwarded"  # type: ignore[union-attr]
    assert school.request(second).state == "returned"  # type: ignore[union-attr]


def test_principal_bulk_approves_with_one_confirmation(app, school: School) -> None:  # type: ignore[no-untyped-def]
    numbers = [
        school.to_state("forwarded"),
        school.to_state("forwarded", line="WEB", amount="2.400.000"),
    ]
    toan = Browser(app).login("toan")
    page = text(toan.get("/approvals"))
    assert all(n in page for n in numbers)
    response = toan.post("/approvals", {"numbers": numbers, "secret": "ky-demo-2024"})
    assert response.status_code == 302
    assert [school.request(n).state for n in numbers] == ["approved", "approved"]  # type: ignore[union-attr]


def test_accountant_pays_and_exports(app, school: School) -> None:  # type: ignore[no-untyped-def]
    number = school.to_state("approved")
    mai = Browser(app).login("mai")
    assert number in text(mai.get("/payments"))
    paid = mai.act(
        number, "pay", voucher="PC-2025-0031", paid_on="2025-01-13", amount_paid="1.800.000"
    )
    assert paid.status_code == 302, text(paid)[:3000]
    ledger = text(mai.get("/ledger?budget_year=2025&state=paid"))
    assert "PC-2025-0031" in ledger and "13/01/2025" in ledger and "1.800.000 ₫" in ledger
    assert number not in text(mai.get("/ledger?state=approved"))
    csv_response = mai.get("/ledger.csv?state=paid")
    assert csv_response.data.startswith("\ufeff".encode())
    csv_response.close()
    rows = list(csv.reader(io.StringIO(csv_response.data.decode("utf-8-sig"))))
    assert (
        rows[1][0] == number
        and rows[1][rows[0].index("Mã băm sự kiện duyệt")] == school.request(number).approved_hash
    )  # type: ignore[union-attr]
    xlsx = mai.get("/ledger.xlsx")
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    xlsx.close()
    assert (
        sheet.cell(row=2, column=1).value == number
        and sheet.cell(row=3, column=11).value == 1_800_000
    )


def test_auditor_verifies_and_downloads_the_bundle(app, school: School, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    school.to_state("approved")
    kiem = Browser(app).login("kiem")
    status = text(kiem.get("/audit"))
    assert school.runtime.institution.fingerprint in status
    # Witnesses and other signed-note tools check checkpoints with the published verifier key.
    runtime = school.runtime
    key = verifier_key(runtime.settings.origin, runtime.institution.public_raw)
    assert "Khóa kiểm chứng (ghi chú có chữ ký)" in status and f'id="verifier-key">{key}<' in status
    verified = text(kiem.post("/audit/verify"))
    assert "Hợp lệ" in verified
    bundle = kiem.post("/audit/bundle.zip")
    assert bundle.status_code == 200 and zipfile.is_zipfile(io.BytesIO(bundle.data))
    bundle.close()
    (tmp_path / "b.zip").write_bytes(bundle.data)
    assert verify_bundle(
        tmp_path / "b.zip", institution_key=school.runtime.institution.fingerprint
    ).valid
    assert kiem.act("2024-2025/0001", "approve").status_code == 403  # read-only


def test_concurrent_decision_names_who_acted_first(app, school: School) -> None:  # type: ignore[no-untyped-def]
    number = school.to_state("forwarded")
    toan = Browser(app).login("toan")
    toan.get(f"/requests/{number}")
    seen = school.request(number).last_seq  # type: ignore[union-attr]
    school.act(number, "reject", "toan", comment="Chưa cần.")  # from another phone
    response = toan.post(
        f"/requests/{number}/act",
        {"trigger": "approve", "secret": "ky-demo-2024", "expected_seq": seen},
    )
    page = text(toan.get(response.headers["Location"]))
    # One message, with the step's Vietnamese label and the time in Vietnam, not a trigger name.
    assert "Nguyễn Văn Toàn đã «Từ chối» đề xuất này lúc" in page
    assert "«reject»" not in page and "Z trước bạn" not in page


def test_language_switch_is_remembered(app) -> None:  # type: ignore[no-untyped-def]
    hanh = Browser(app).login("hanh")
    hanh.post("/language", {"language": "en"})
    assert "My requests" in text(hanh.get("/requests/mine"))
    again = Browser(app).login("hanh")
    assert "My requests" in text(again.get("/requests/mine"))


def test_uploads_refused_cleanly(app, school: School) -> None:  # type: ignore[no-untyped-def]
    hanh = Browser(app).login("hanh")
    cases = [
        (b"", "empty.jpg", "rỗng"),
        (b"MZ this is a program, not a photo", "quote.jpg", "không phải ảnh"),
        (b"\xff\xd8\xff" + b"0" * (10 * 1024 * 1024), "huge.jpg", "lớn hơn 10 MB"),
    ]
    for data, name, message in cases:
        hanh.get("/requests/new")
        response = hanh.post(
            "/requests/new",
            {
                "title": "x",
                "line": "PRINT",
                "amount": "100.000",
                "source": "NSNN-TX",
                "budget_year": "2025",
                "attachments": [(io.BytesIO(data), name)],
            },
            content_type="multipart/form-data",
        )
        assert message in text(response), name
        response.close()
    assert school.snapshot("2024-2025/0001")[0] is None
    with school.runtime.transaction() as session:
        from workflow.models import Draft

        assert session.query(Draft).count() == 0


def test_admin_creates_user_who_changes_the_password_and_enrolls_a_key_with_a_code(
    app, school: School
) -> None:  # type: ignore[no-untyped-def]
    admin = Browser(app).login("admin")
    admin.get("/admin/users")
    response = admin.post(
        "/admin/users",
        {
            "login": "lan",
            "name": "Phạm Thị Lan",
            "email": "lan@th-demo.edu.vn",
            "language": "vi",
            "password": "mat-khau-lan",
            "roles": ["reviewer"],
        },
    )
    assert response.status_code == 302
    # The admin gives Lan a one-time code; she registers her own key with it (the fallback,
    # server-held key here; passkeys in the browser tests).
    code_page = text(admin.post("/admin/users/lan/code", {"purpose": "enrollment"}))
    code = re.search(r'id="code">([A-Z0-9-]+)<', code_page)
    assert code is not None, code_page[-1500:]
    lan = Browser(app).login("lan", "mat-khau-lan")
    home = lan.client.get("/")
    assert home.status_code == 302 and home.headers["Location"].endswith("/password")
    lan.get("/password")
    changed = lan.post(
        "/password",
        {"current": "mat-khau-lan", "new": "tra-da-via-he-7", "confirm": "tra-da-via-he-7"},
    )
    assert changed.status_code == 302
    home = lan.client.get("/")
    assert home.status_code == 302 and home.headers["Location"].endswith("/signing-key")
    assert "Bạn chưa có khóa ký" in text(lan.get("/signing-key"))
    # Without the admin's code, the password alone gives no key.
    without_code = lan.post(
        "/signing-key",
        {"secret": "bi-mat-cua-lan", "confirm": "bi-mat-cua-lan", "password": "tra-da-via-he-7"},
    )
    assert without_code.status_code == 200 and "Cần mã đăng ký" in text(without_code)
    set_key = lan.post(
        "/signing-key",
        {
            "secret": "bi-mat-cua-lan",
            "confirm": "bi-mat-cua-lan",
            "password": "tra-da-via-he-7",
            "code": code.group(1),
        },
    )
    assert set_key.status_code == 302
    number = school.to_state("submitted")
    assert lan.act(number, "forward", secret="bi-mat-cua-lan").status_code == 302
    admin.get("/admin/users")
    assert admin.post("/admin/users/lan/revoke-key").status_code == 302
    other = school.to_state("submitted")
    refused = lan.act(other, "forward", secret="bi-mat-cua-lan")
    assert refused.status_code == 422 and "chưa có khóa ký" in text(refused)


def test_ledger_pages_and_totals_cover_the_whole_selection(
    app, school: School, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import webapp.ledger.routes as ledger_routes
    import workflow.queries as queries

    monkeypatch.setattr(ledger_routes, "PAGE", 2)
    monkeypatch.setattr(queries, "QUEUE_PAGE", 1)
    numbers = [
        school.to_state(
            "approved", line="ENETVIET", quantity=10, unit_price_vnd="15.000", source="THU-DL"
        )
        for _ in range(3)
    ]
    mai = Browser(app).login("mai")
    first = text(mai.get("/ledger"))
    assert "3 đề xuất · đã duyệt 450.000 ₫" in first and "Trang 1 / 2" in first
    assert numbers[0] in first and numbers[2] not in first
    second = text(mai.get("/ledger?page=2"))
    assert numbers[2] in second and numbers[0] not in second
    school.to_state("submitted")
    school.to_state("submitted")
    long = Browser(app).login("long")
    assert "1 đề xuất chờ lâu nhất trong 2 đề xuất đang chờ." in text(long.get("/review"))


VIETNAMESE_LETTERS = re.compile(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", re.I)


def test_english_users_get_english_refusals(app, school: School) -> None:  # type: ignore[no-untyped-def]
    nga = Browser(app).login("nga")
    nga.post("/language", {"language": "en"})
    number = _new_request(nga, title="Printing", line="PRINT", amount="650.000")
    refusal = text(nga.act(number, "submit"))
    message = re.search(r'class="flash error">([^<]*)<', refusal)
    assert message is not None, refusal[-2000:]
    assert "Over the norm of “Printing documents and reports”" in message.group(1)
    assert not VIETNAMESE_LETTERS.search(message.group(1))
    nga.get("/requests/new")
    fields = {"title": "x", "line": "PRINT", "source": "NSNN-TX", "budget_year": "2025"}
    wrong = text(
        nga.post(
            "/requests/new", {**fields, "amount": "1tr8tr"}, content_type="multipart/form-data"
        )
    )
    assert "Amount “1tr8tr” not understood" in wrong and "Không hiểu" not in wrong


def test_admin_locks_an_account_with_a_signed_event_naming_the_admin(app, school: School) -> None:  # type: ignore[no-untyped-def]
    number = school.to_state("submitted")
    admin = Browser(app).login("admin")
    admin.get("/admin/users")
    assert admin.post("/admin/users/long/active").status_code == 302
    with school.runtime.transaction() as session:
        last = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert last is not None and last.action == "user.active"
        assert json.loads(last.body)["data"] == {"login": "long", "active": False, "by": "admin"}
        report = verify_live(
            session, institution=school.runtime.institution, now=school.runtime.now()
        )
        assert report.valid, report.problems
    before = school.snapshot(number)
    with pytest.raises(AccountLocked):
        school.act(number, "forward", "long", comment="Hợp lý.")
    assert school.snapshot(number) == before
    # Nobody locks themselves out, and the refusal is said, not a silent no-op.
    page = text(admin.get(admin.post("/admin/users/admin/active").headers["Location"]))
    assert "Không tự khóa tài khoản của mình." in page


def test_a_person_payee_may_give_the_12_digit_personal_number_on_the_form(app) -> None:  # type: ignore[no-untyped-def]
    hanh = Browser(app).login("hanh")
    payee = {"payee": "Nguyễn Văn Bình", "tax_code": "001089012345"}
    number = _new_request(hanh, **payee, payee_kind="person")
    assert "001089012345" in text(hanh.get(f"/requests/{number}"))
    hanh.get("/requests/new")
    refused = hanh.post(
        "/requests/new",
        {
            "title": "Bản quyền",
            "line": "SW-ASSET",
            "amount": "1.800.000",
            "source": "NSNN-TX",
            "budget_year": "2025",
            **payee,
            "payee_kind": "organisation",
        },
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422
    assert "số định danh cá nhân 12 chữ số" in text(refused)
