"""Public financial disclosure: a signed report of IT spending anyone can check against the log."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import zipfile
from datetime import date, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from pypdf import PdfReader

from expense_audit.errors import Refusal
from workflow import disclosure
from workflow.disclosure import Period

from .factories import School, pay_data
from .test_paperwork import PAYEE
from .web import AuthActions

KEEP = os.environ.get("KEEP_DISCLOSURE_PDF")  # a path: write the rendered report there


def _paid(school: School, *, line: str = "SW-ASSET", amount: str = "1.800.000", **pay: str) -> str:
    if "paid_on" in pay:  # the test's clock moves to that day: no payment is in the future
        day = date.fromisoformat(pay["paid_on"])
        clock = school.runtime.clock
        clock.now = max(clock.now, datetime.combine(day, clock.now.time()))  # type: ignore[attr-defined]
    number = school.to_state("approved", line=line, amount=amount, **PAYEE)
    school.act(number, "pay", "mai", data=pay_data(int(amount.replace(".", "")), **pay))
    return number


def _make(school: School, period: str) -> tuple[bytes, bytes]:
    with school.runtime.transaction() as session:
        return disclosure.make(
            session,
            definitions=school.runtime.definitions,
            institution=school.runtime.institution,
            period=Period.parse(period),
            now=school.runtime.now(),
        )


def _check(school: School, data: bytes, signature: bytes) -> disclosure.DisclosureCheck:
    with school.runtime.transaction() as session:
        return disclosure.check(
            session,
            data,
            signature,
            definitions=school.runtime.definitions,
            institution_fingerprint=school.runtime.institution.fingerprint,
        )


def _table(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_report_sums_payments_per_line_and_source_against_allocation(school: School) -> None:
    _paid(school)  # SW-ASSET, NSNN-TX, 13/01/2025
    _paid(school, line="PRINT", amount="400.000", paid_on="2025-01-20", voucher="PC-2025-0032")
    data, _ = _make(school, "2025")
    rows = _table(data)
    header = rows.index(list(disclosure.HEADER))
    body = {(r[1], r[3]): r for r in rows[header + 1 :]}
    line = body[("SW-ASSET", "Cộng")]
    assert line[4:] == ["3600000", "1800000", "1800000", "1"]
    assert body[("SW-ASSET", "Ngân sách nhà nước – chi thường xuyên")][5] == "1800000"
    assert body[("PRINT", "Cộng")][4:] == ["6000000", "400000", "400000", "1"]
    assert rows[-1][0] == "Tổng cộng" and rows[-1][5] == "2200000"
    assert rows[2][:2] == ["Kỳ báo cáo", "2025"]


def test_a_month_counts_only_its_payments_and_carries_the_rest_to_date(school: School) -> None:
    _paid(school)  # 13/01/2025
    _paid(school, line="PRINT", amount="400.000", paid_on="2025-02-03", voucher="PC-2025-0040")
    body = {(r[1], r[3]): r for r in _table(_make(school, "2025-02")[0]) if len(r) > 3}
    assert body[("SW-ASSET", "Cộng")][5:] == ["0", "1800000", "0"]
    assert body[("PRINT", "Cộng")][5:] == ["400000", "400000", "1"]


def test_public_report_holds_no_personal_data(school: School) -> None:
    _paid(school)
    data, signature = _make(school, "2025")
    text = (data + signature).decode("utf-8")
    for private in (
        PAYEE["payee"],
        PAYEE["tax_code"],
        PAYEE["bank_account"],
        "Võ Thị Hạnh",
        "hanh",
    ):
        assert private not in text


def test_downloaded_report_checks_against_the_log(school: School) -> None:
    _paid(school)
    data, signature = _make(school, "2025")
    _paid(
        school, line="PRINT", amount="400.000", voucher="PC-2025-0050", paid_on="2025-01-14"
    )  # after the checkpoint
    result = _check(school, data, signature)
    assert result.valid, result.problems
    assert result.period == "2025" and result.size is not None


def test_report_edited_after_signing_is_caught(school: School) -> None:
    _paid(school)
    data, signature = _make(school, "2025")
    forged = data.replace(b"1800000", b"1000000", 1)
    result = _check(school, forged, signature)
    assert not result.valid
    assert "changed after signing" in result.problems[0]


def test_report_signed_by_another_key_is_refused(school: School, tmp_path: Path) -> None:
    from workflow.keys import InstitutionKey

    _paid(school)
    other = InstitutionKey.create(tmp_path / "other")
    with school.runtime.transaction() as session:
        data, signature = disclosure.make(
            session,
            definitions=school.runtime.definitions,
            institution=other,
            period=Period(2025),
            now=school.runtime.now(),
        )
        session.rollback()
    result = _check(school, data, signature)
    assert not result.valid and "not this school's" in result.problems[0]


def test_report_and_signature_that_lie_about_the_log_are_caught(school: School) -> None:
    """The school's key signs a CSV the log does not give (a doctored figure, honestly signed)."""
    _paid(school)
    data, signature = _make(school, "2025")
    forged = data.replace(b"1800000", b"900000")
    import base64
    import hashlib
    import json

    raw = signature.split(b"\n")[0]
    statement = json.loads(raw)
    statement["csv_sha256"] = hashlib.sha256(forged).hexdigest()
    raw = json.dumps(statement, ensure_ascii=False, sort_keys=True).encode()
    resigned = base64.b64encode(school.runtime.institution.sign(disclosure.signature_message(raw)))
    result = _check(school, forged, raw + b"\n" + resigned + b"\n")
    assert result.problems == [
        "the signed CSV differs from what the log up to the checkpoint gives"
    ]


def test_garbage_signature_file_is_refused_plainly(school: School) -> None:
    data, _ = _make(school, "2025")
    for junk in (b"", b"not json\nAAAA\n", b'{"format": "x"}\n!!!\n'):
        result = _check(school, data, junk)
        assert not result.valid and "unreadable" in result.problems[0]


@pytest.mark.parametrize("text", ["25", "2025-13", "2025-1", "year", "2025-01-01"])
def test_bad_period_is_refused(text: str) -> None:
    with pytest.raises(Refusal):
        Period.parse(text)


def test_commands_make_and_check_a_report(
    app: Flask, school: School, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    _paid(school)
    result = runner.invoke(args=["disclosure", "make", "--period", "2025", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = tmp_path / "cong-khai-tai-chinh-cntt-2025.csv"
    result = runner.invoke(args=["disclosure", "check", str(report)])
    assert result.exit_code == 0 and "MATCHES THE LOG" in result.output, result.output
    report.write_bytes(report.read_bytes().replace(b"1800000", b"1700000", 1))
    result = runner.invoke(args=["disclosure", "check", str(report)])
    assert result.exit_code == 1 and "DOES NOT MATCH" in result.output


def test_auditor_downloads_the_report_and_the_audit_page_checks_it(
    school: School, auth: AuthActions
) -> None:
    _paid(school)
    browser = auth.login_as("auditor")
    assert "/audit/disclosure.zip" in browser.get("/audit").get_data(as_text=True)
    response = browser.post("/audit/disclosure.zip", {"period": "2025-01"})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        data = archive.read("cong-khai-tai-chinh-cntt-2025-01.csv")
        signature = archive.read("cong-khai-tai-chinh-cntt-2025-01.csv.sig")

    def upload(report: bytes) -> str:
        answer = browser.post(
            "/audit/disclosure/check",
            {
                "report": (io.BytesIO(report), "r.csv"),
                "signature": (io.BytesIO(signature), "r.csv.sig"),
            },
            content_type="multipart/form-data",
        )
        assert answer.status_code == 200
        return answer.get_data(as_text=True)

    assert "Báo cáo khớp với nhật ký: kỳ 2025-01" in upload(data)
    page = upload(data.replace(b"1800000", b"1200000", 1))
    assert "Báo cáo KHÔNG khớp với nhật ký." in page and "changed after signing" in page


def test_a_bad_period_on_the_audit_page_is_a_clear_refusal(auth: AuthActions) -> None:
    browser = auth.login_as("auditor")
    browser.get("/audit")
    response = browser.post("/audit/disclosure.zip", {"period": "2025-13"})
    assert response.status_code == 400
    assert "Kỳ báo cáo «2025-13» không hợp lệ" in response.get_data(as_text=True)


def test_the_accountant_cannot_sign_a_disclosure(auth: AuthActions) -> None:
    browser = auth.login_as("accountant")
    browser.get("/ledger")
    assert browser.post("/audit/disclosure.zip", {"period": "2025"}).status_code == 403


def test_pdf_of_the_report_prints_the_figures_and_how_to_check_them(school: School) -> None:
    _paid(school)
    data, signature = _make(school, "2025")
    pdf = disclosure.render_pdf(data, signature)
    if KEEP:
        Path(KEEP).write_bytes(pdf)
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    text = re.sub(r"[ \t]+", " ", text)
    for expected in (
        "CÔNG KHAI TÀI CHÍNH: CHI ỨNG DỤNG CNTT VÀ CHUYỂN ĐỔI SỐ năm 2025",
        "Trường Tiểu học Demo (Mã ĐVQHNS: 1012345)",
        "Kỳ báo cáo: 2025",
        "Phần mềm quản lý tài sản công",
        "3.600.000",
        "1.800.000",
        "Tổng cộng",
        f"Khóa của trường: {school.runtime.institution.fingerprint}",
        f"CSV sha256: {hashlib.sha256(data).hexdigest()}",
    ):
        assert expected in text, expected
    assert PAYEE["payee"] not in text
