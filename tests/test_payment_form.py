"""The payment request form: a PDF in Vietnamese whose text carries every field and signature."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from pypdf import PdfReader

from workflow.payment_form import gather, render

from .factories import School, pay_data
from .test_paperwork import INVOICE, PAYEE

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
