"""The payment request form: a PDF in Vietnamese whose text carries every field and signature."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from pypdf import PdfReader

from expense_audit.verify.cli import main
from workflow.bundle import export_bundle
from workflow.payment_form import gather, render

from .factories import School, pay_data
from .test_paperwork import INVOICE, PAYEE
from .web import AuthActions, text

KEEP = os.environ.get("KEEP_FORM_PDF")  # a path: write the rendered form there to look at it


def _form_text(school: School, number: str) -> tuple[str, bytes]:
    runtime = school.runtime
    with runtime.transaction() as session:
        form = gather(
            session,
            number,
            catalogue=runtime.definitions.catalogue("2024-2025"),
            fingerprint=runtime.institution.fingerprint,
            base_url="https://truong.example.vn",
        )
    pdf = render(form)
    if KEEP:
        Path(KEEP).write_bytes(pdf)
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    return re.sub(r"[ \t]+", " ", text), pdf


@pytest.fixture
def paid(school: School) -> str:
    number = school.to_state("approved", description="Gia hạn 12 tháng", **PAYEE)
    school.act(number, "pay", "mai", data={**pay_data(), **INVOICE})
    return number


def test_form_pdf_text_carries_every_field(school: School, paid: str) -> None:
    text, pdf = _form_text(school, paid)
    row = school.request(paid)
    assert row is not None and row.approved_hash is not None
    expected = [
        "GIẤY ĐỀ NGHỊ THANH TOÁN",
        "Đơn vị: Trường Tiểu học Demo",
        "Mã ĐVQHNS: 1012345",
        f"Số: {paid}",
        "Ngày 13 tháng 01 năm 2025",
        "Họ và tên người đề nghị thanh toán: Võ Thị Hạnh",
        "Gia hạn phần mềm quản lý tài sản công 2025. Gia hạn 12 tháng",
        "Số tiền: 1.800.000 đồng",
        "Một triệu tám trăm nghìn đồng",
        "Công ty TNHH Phần mềm Demo",
        "Mã số thuế: 0100109106",
        "0011004123456 tại Vietcombank – CN Hà Nội",
        "ký hiệu 1C25TAA, số 00001234, ngày 13/01/2025",
        "Phần mềm quản lý tài sản công (SW-ASSET)",
        "Ngân sách nhà nước – chi thường xuyên; năm ngân sách 2025",
        "Chương 622 – Loại 070 – Khoản 072 – Mục 7000 – Tiểu mục 7049",
        "1 chứng từ gốc",
        "bao-gia-1.pdf",
        "Đã chi: 1.800.000 đồng, chứng từ PC-2025-0031, ngày 13/01/2025",
        f"audit-verify BUNDLE --request {paid}",
        row.approved_hash,
        school.runtime.institution.fingerprint,
    ]
    missing = [item for item in expected if item not in text]
    assert not missing, (missing, text)
    assert b"/FontFile2" in pdf  # the TrueType font is embedded, not referenced


def test_form_prints_each_signature_at_its_place(school: School, paid: str) -> None:
    text, _pdf = _form_text(school, paid)
    with school.runtime.transaction() as session:
        from workflow.queries import timeline

        steps = timeline(session, paid)
    for place in ("NGƯỜI ĐỀ NGHỊ", "NGƯỜI XEM XÉT", "KẾ TOÁN", "THỦ TRƯỞNG ĐƠN VỊ"):
        assert place in text
    for step in steps:
        assert step.actor_name in text
        assert f"khóa {step.key}" in text
        assert step.hash[:16] in text
    assert text.count("Đã ký điện tử") == 4
    assert text.count("khóa lưu trên máy chủ") == 4  # the demo people sign with server-held keys
    assert "phó hiệu trưởng" in text and "hiệu trưởng" in text


def test_unsigned_places_say_so(school: School) -> None:
    number = school.to_state("submitted")
    text, _pdf = _form_text(school, number)
    assert text.count("chưa ký") == 3
    assert "Sự kiện duyệt chi: chưa duyệt" in text and "--event (chưa duyệt)" in text
    assert "chưa có (kế toán ghi khi chi)" in text


def test_form_pdf_is_served_from_the_request_page(paid: str, auth: AuthActions) -> None:
    browser = auth.login("mai")
    page = text(browser.get(f"/requests/{paid}"))
    assert f"/requests/{paid}/form.pdf" in page
    response = browser.get(f"/requests/{paid}/form.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    reader = PdfReader(io.BytesIO(response.data))
    assert "Mã số thuế: 0100109106" in reader.pages[0].extract_text()


def test_form_pdf_of_someone_elses_draft_is_not_served(school: School, auth: AuthActions) -> None:
    number = school.draft()
    assert auth.login("hanh").get(f"/requests/{number}/form.pdf").status_code == 404
    assert auth.session("nga").get(f"/requests/{number}/form.pdf").status_code in (403, 404)


def _qr_path(school: School, number: str) -> str:
    runtime = school.runtime
    with runtime.transaction() as session:
        form = gather(
            session,
            number,
            catalogue=runtime.definitions.catalogue("2024-2025"),
            fingerprint=runtime.institution.fingerprint,
            base_url="https://truong.example.vn",
        )
    return form.check_url.removeprefix("https://truong.example.vn")


def test_qr_code_of_the_form_resolves_on_the_audit_page(
    school: School, paid: str, auth: AuthActions
) -> None:
    path = _qr_path(school, paid)
    page = text(auth.login("kiem").get(path))
    assert "matches the signed log" in page or "khớp với nhật ký" in page, page[:3000]
    row = school.request(paid)
    assert row is not None and row.approved_hash in page


@pytest.mark.parametrize("forged", ["e=", "fp="])
def test_forged_qr_code_does_not_match(
    school: School, paid: str, auth: AuthActions, forged: str
) -> None:
    path = _qr_path(school, paid)
    start = path.index(forged) + len(forged)
    path = path[:start] + "0" * 64 + path[start + 64 :]
    page = text(auth.login("kiem").get(path))
    assert "does not match" in page or "không khớp" in page


def test_audit_verify_confirms_the_request_on_the_paper(
    school: School, paid: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle.zip"
    with school.runtime.transaction() as session:
        export_bundle(
            session, bundle, institution=school.runtime.institution, now=school.runtime.now()
        )
    row = school.request(paid)
    assert row is not None and row.approved_hash is not None
    key = school.runtime.institution.fingerprint
    args = [str(bundle), "--institution-key", key, "--request", paid]
    assert main([*args, "--event", row.approved_hash]) == 0
    assert "CONFIRMED" in capsys.readouterr().out
    assert main([*args, "--event", "f" * 64]) == 1
    assert "DOES NOT MATCH" in capsys.readouterr().out
    assert main([str(bundle), "--institution-key", key, "--request", "2024-2025/0999"]) == 1
    assert "NOT IN THE LOG" in capsys.readouterr().out
