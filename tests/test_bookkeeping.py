"""The bookkeeping export: the accountant imports paid requests into the accounting software.

One row per paid request in the columns of a voucher-import sheet; accounts per line and source
come from the accountant's mapping (accounting/bookkeeping.toml), which refuses mistakes by key.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from openpyxl import load_workbook

from expense_audit.errors import DefinitionError
from workflow import bookkeeping
from workflow.bookkeeping import load_map, load_map_file
from workflow.ledger import LedgerFilter

from .factories import School, pay_data
from .test_paperwork import INVOICE, PAYEE
from .web import AuthActions

SHIPPED = bookkeeping.DEFAULT_PATH
HEADERS = [
    "Ngày CT",
    "Số CT",
    "Diễn giải",
    "TK Nợ",
    "TK Có",
    "Số tiền",
    "Đối tượng",
    "Chương",
    "Loại - Khoản",
    "Mục - Tiểu mục",
    "Nguồn kinh phí",
    "Mã ĐVQHNS",
]


@pytest.fixture
def paid(school: School) -> str:
    """One paid request (SW-ASSET from the regular state budget), and one only approved."""
    school.to_state("approved", title="Chưa chi: không vào sổ", line="PRINT", amount="400.000")
    number = school.to_state("approved", **PAYEE)
    school.act(number, "pay", "mai", data={**pay_data(voucher="PC-2025-0031"), **INVOICE})
    return number


def _rows(school: School, mapping: bookkeeping.BookkeepingMap, **period: date) -> list[dict]:
    with school.runtime.transaction() as session:
        requests = bookkeeping.paid_requests(session, LedgerFilter(), **period)
        return list(bookkeeping.entries(requests, mapping, school.runtime.definitions))


def _xlsx(school: School, tmp_path: Path, mapping: bookkeeping.BookkeepingMap) -> Path:
    path = tmp_path / "nhap.xlsx"
    bookkeeping.write_xlsx(_rows(school, mapping), mapping, str(path))
    return path


def test_import_sheet_books_each_paid_request_with_numbers_dates_and_codes(
    school: School, paid: str, tmp_path: Path
) -> None:
    mapping = load_map_file(SHIPPED, school.runtime.definitions)
    sheet = load_workbook(_xlsx(school, tmp_path, mapping)).active
    assert sheet.title == "Chung tu"
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == HEADERS
    assert len(values) == 2, "one row per paid request; the approved one is not booked"
    row = dict(zip(HEADERS, values[1], strict=True))
    assert row["Ngày CT"] == datetime(2025, 1, 13)
    assert row["Số CT"] == "PC-2025-0031"
    assert row["Diễn giải"] == f"Gia hạn phần mềm quản lý tài sản công 2025 (đề xuất {paid})"
    assert (row["TK Nợ"], row["TK Có"]) == ("611", "511")  # NSNN-TX: withdrawing the estimate
    assert row["Số tiền"] == 1_800_000
    assert row["Đối tượng"] == PAYEE["payee"]
    assert (row["Chương"], row["Loại - Khoản"], row["Mục - Tiểu mục"]) == (
        "622",
        "070-072",
        "7000-7049",
    )
    assert row["Nguồn kinh phí"] == "NSNN-TX" and row["Mã ĐVQHNS"] == "1012345"
    cells = list(sheet.iter_rows(min_row=2, max_row=2))[0]
    by_header = dict(zip(HEADERS, cells, strict=True))
    assert by_header["Ngày CT"].is_date and by_header["Ngày CT"].number_format == "dd/mm/yyyy"
    assert by_header["Số tiền"].data_type == "n" and by_header["Số tiền"].number_format == "#,##0"
    assert by_header["Chương"].data_type == "s" and by_header["TK Có"].data_type == "s"


def test_csv_import_sheet_has_the_accountants_date_format_and_plain_numbers(
    school: School, paid: str
) -> None:
    mapping = load_map_file(SHIPPED, school.runtime.definitions)
    out = io.StringIO()
    bookkeeping.write_csv(_rows(school, mapping), mapping, out)
    text = out.getvalue()
    assert text.startswith("\ufeffNgày CT,Số CT,Diễn giải,TK Nợ,TK Có,Số tiền")
    table = list(csv.reader(io.StringIO(text[1:])))
    assert len(table) == 2, "no totals row: every row of an import sheet is a voucher"
    assert table[1][0] == "13/01/2025" and table[1][5] == "1800000"


def test_a_line_booked_as_an_asset_overrides_its_source(school: School, paid: str) -> None:
    text = SHIPPED.read_text(encoding="utf-8") + '\n[lines.SW-ASSET]\ndebit = "213"\n'
    mapping = load_map(text.encode(), "bookkeeping.toml")
    (row,) = _rows(school, mapping)
    assert (row["debit"], row["credit"]) == ("213", "511")


def test_accountant_reorders_and_renames_columns_for_another_template(
    school: School, paid: str, tmp_path: Path
) -> None:
    """MISA-style: separate khoản and tiểu mục codes, a posting date, invoice columns."""
    mapping = load_map(
        """
[sheet]
name = "Phieu chi"
description = "Chi $line_name theo HĐ $invoice_series/$invoice_number"
[[columns]]
header = "Ngay hach toan"
field = "posting_date"
[[columns]]
header = "Ma khoan"
field = "khoan"
[[columns]]
header = "Tieu muc"
field = "tieu_muc"
[[columns]]
header = "Ngay hoa don"
field = "invoice_date"
[[columns]]
header = "Dien giai"
field = "description"
[[columns]]
header = "Ghi chu"
field = "blank"
[default]
debit = "611"
credit = "112"
""".encode(),
        "misa.toml",
    )
    sheet = load_workbook(_xlsx(school, tmp_path, mapping))["Phieu chi"]
    values = list(sheet.iter_rows(values_only=True))
    assert values[1] == (
        datetime(2025, 1, 13),
        "072",
        "7049",
        datetime(2025, 1, 13),
        "Chi Phần mềm quản lý tài sản công theo HĐ 1C25TAA/00001234",
        None,
    )


def test_a_formula_in_a_title_stays_text_in_both_formats(school: School, tmp_path: Path) -> None:
    number = school.to_state("approved", title='=HYPERLINK("http://evil.example","x")')
    school.act(number, "pay", "mai", data=pay_data())
    mapping = load_map_file(SHIPPED, school.runtime.definitions)
    out = io.StringIO()
    bookkeeping.write_csv(_rows(school, mapping), mapping, out)
    table = list(csv.reader(io.StringIO(out.getvalue()[1:])))
    assert table[1][2].startswith("'=HYPERLINK")
    cell = load_workbook(_xlsx(school, tmp_path, mapping)).active.cell(row=2, column=3)
    assert cell.data_type == "s" and str(cell.value).startswith("=HYPERLINK")


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        (
            '[sources.NSNN-TX]\ndebit = "611"',
            '[sources.NSNN-TX]\ndebit = "61A"',
            "sources.NSNN-TX.debit",
        ),
        ('[sources.XHH]\ndebit = "611"', "[sources.XHH]\ndebit = 611", "sources.XHH.debit"),
        ('field = "payee"', 'field = "payee_bank_account"', "columns[6].field"),
        ('description = "$title', 'description = "$amount $title', "sheet.description"),
        ('name = "Chung tu"', 'name = "Chung/tu"', "sheet.name"),
        (
            '[sources.THU-DL]\ndebit = "614"',
            '[sources.THU-DL]\ndebet = "614"',
            "sources.THU-DL.debet",
        ),
        ("[default]\ndebit", "[defaults]\ndebit", "defaults"),
    ],
)
def test_broken_mapping_names_the_key_at_fault(old: str, new: str, key: str) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text
    with pytest.raises(DefinitionError) as error:
        load_map(text.replace(old, new, 1).encode(), "accounting/bookkeeping.toml")
    assert error.value.details["key"] == key, str(error.value)
    assert str(error.value).startswith(f"accounting/bookkeeping.toml: [{key}]")


def test_mapping_without_accounts_for_a_plans_source_is_refused(
    school: School, tmp_path: Path
) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    text = text.replace('[default]\ndebit = "611"\ncredit = "112"\n', "")
    text = text.replace('[sources.XHH]\ndebit = "611"\ncredit = "112"\n', "")
    path = tmp_path / "bookkeeping.toml"
    path.write_text(text, encoding="utf-8")
    load_map(text.encode(), str(path))  # well-formed on its own
    with pytest.raises(DefinitionError) as error:
        load_map_file(path, school.runtime.definitions)
    assert error.value.details["key"] == "sources.XHH"


def test_export_command_writes_the_import_sheet_for_a_payment_period(
    paid: str, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "thang1.xlsx"
    args = ["ledger", "export", "--format", "bookkeeping-xlsx", "-o", str(out)]
    result = runner.invoke(args=[*args, "--paid-from", "2025-01-01", "--paid-to", "2025-01-31"])
    assert result.exit_code == 0, result.output
    assert len(list(load_workbook(out).active.iter_rows(values_only=True))) == 2
    result = runner.invoke(args=[*args, "--paid-from", "2025-02-01"])
    assert len(list(load_workbook(out).active.iter_rows(values_only=True))) == 1
    csv_out = tmp_path / "thang1.csv"
    result = runner.invoke(
        args=["ledger", "export", "--format", "bookkeeping-csv", "-o", str(csv_out)]
    )
    assert result.exit_code == 0 and paid in csv_out.read_text(encoding="utf-8-sig")
    assert runner.invoke(args=["ledger", "check-mapping"]).exit_code == 0


def test_export_command_refuses_a_broken_mapping_by_key(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    broken = tmp_path / "bookkeeping.toml"
    broken.write_text(SHIPPED.read_text(encoding="utf-8").replace('"3664"', '"36 64"'), "utf-8")
    runtime = app.extensions["runtime"]
    runtime.settings = replace(runtime.settings, bookkeeping_path=broken)
    result = runner.invoke(args=["ledger", "check-mapping"])
    assert result.exit_code == 1 and "[sources.NSNN-DTPT.credit]" in result.output
    out = tmp_path / "x.xlsx"
    result = runner.invoke(
        args=["ledger", "export", "--format", "bookkeeping-xlsx", "-o", str(out)]
    )
    assert result.exit_code == 1 and "[sources.NSNN-DTPT.credit]" in result.output


def test_accountant_downloads_the_import_sheet_from_the_ledger_page(
    paid: str, auth: AuthActions
) -> None:
    client = auth.login_as("accountant")
    page = client.get("/ledger").get_data(as_text=True)
    assert "/ledger/bookkeeping.xlsx" in page
    response = client.get("/ledger/bookkeeping.xlsx?paid_from=2025-01-01&paid_to=2025-01-31")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.data)).active
    response.close()
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[1][5] == 1_800_000 and rows[1][0] == datetime(2025, 1, 13)
    response = client.get("/ledger/bookkeeping.csv")
    assert response.status_code == 200 and paid in response.get_data(as_text=True)


def test_approver_reads_the_ledger_but_not_the_import_sheet_with_payees_data(
    paid: str, auth: AuthActions
) -> None:
    client = auth.login_as("approver")
    assert "/ledger/bookkeeping.xlsx" not in client.get("/ledger").get_data(as_text=True)
    assert client.get("/ledger/bookkeeping.xlsx").status_code == 403
    assert client.get("/ledger/bookkeeping.csv").status_code == 403


def test_broken_mapping_on_the_ledger_page_says_which_key(
    app: Flask, paid: str, auth: AuthActions, tmp_path: Path
) -> None:
    broken = tmp_path / "bookkeeping.toml"
    broken.write_text(SHIPPED.read_text(encoding="utf-8").replace('"614"', '"6x4"'), "utf-8")
    runtime = app.extensions["runtime"]
    runtime.settings = replace(runtime.settings, bookkeeping_path=broken)
    client = auth.login_as("accountant")
    response = client.get("/ledger/bookkeeping.xlsx")
    response.close()
    assert response.status_code == 302
    assert "[sources.THU-DL.debit]" in client.get("/ledger").get_data(as_text=True)


LIBREOFFICE = shutil.which("libreoffice") or shutil.which("soffice")
OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"


@pytest.mark.skipif(LIBREOFFICE is None, reason="libreoffice is not installed")
def test_libreoffice_opens_the_import_sheet_with_numbers_as_numbers(
    school: School, paid: str, tmp_path: Path
) -> None:
    mapping = load_map_file(SHIPPED, school.runtime.definitions)
    source = _xlsx(school, tmp_path, mapping)
    assert LIBREOFFICE is not None
    subprocess.run(
        [
            LIBREOFFICE,
            f"-env:UserInstallation=file://{tmp_path / 'lo-profile'}",
            "--headless",
            "--convert-to",
            "fods",
            "--outdir",
            str(tmp_path / "out"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    tree = ET.parse(tmp_path / "out" / "nhap.fods")  # noqa: S314  LibreOffice's own output
    rows = tree.getroot().iter(f"{{{TABLE}}}table-row")
    next(rows)  # header
    cells = [
        c
        for c in next(rows).iter(f"{{{TABLE}}}table-cell")
        for _ in range(int(c.get(f"{{{TABLE}}}number-columns-repeated", "1")))
    ]
    kinds = [c.get(f"{{{OFFICE}}}value-type") for c in cells[: len(HEADERS)]]
    assert kinds[HEADERS.index("Số tiền")] == "float"
    assert cells[HEADERS.index("Số tiền")].get(f"{{{OFFICE}}}value") == "1800000"
    assert kinds[HEADERS.index("Ngày CT")] == "date"
    assert (
        cells[HEADERS.index("Ngày CT")].get(f"{{{OFFICE}}}date-value", "").startswith("2025-01-13")
    )
    assert kinds[HEADERS.index("Chương")] == "string"  # "622" kept as a code, not a number
