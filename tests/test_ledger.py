"""The ledger equals the replay of the log, and its CSV and XLSX exports are what an accountant needs."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from openpyxl import load_workbook

from expense_audit.verify import verify_bundle
from workflow.bundle import export_bundle
from workflow.demo import create_history
from workflow.ledger import (
    LedgerFilter,
    rows_from_database,
    rows_from_replay,
    write_csv,
    write_xlsx,
)

from .factories import School


def _history(school: School, tmp_path: Path) -> dict[str, dict[str, object]]:
    create_history(school.runtime, 40, seed=7)
    path = tmp_path / "b.zip"
    with school.runtime.transaction() as session:
        export_bundle(
            session, path, institution=school.runtime.institution, now=school.runtime.now()
        )
    report = verify_bundle(path)
    assert report.valid, report.problems
    return report.requests


def test_ledger_equals_the_replay_of_the_log(school: School, tmp_path: Path) -> None:
    replayed = _history(school, tmp_path)
    definitions = school.runtime.definitions
    for selection in (
        LedgerFilter(),
        LedgerFilter(state="paid"),
        LedgerFilter(budget_year=2024),
        LedgerFilter(line="PRINT"),
    ):
        with school.runtime.transaction() as session:
            from_db = list(rows_from_database(session, selection, definitions))
        assert from_db == rows_from_replay(replayed, selection, definitions)
    with school.runtime.transaction() as session:
        everything = list(rows_from_database(session, LedgerFilter(), definitions))
    assert {row["state"] for row in everything} == {"approved", "paid"}
    assert all(len(str(row["approved_hash"])) == 64 for row in everything)


def test_csv_has_bom_vietnamese_header_and_totals(school: School, tmp_path: Path) -> None:
    _history(school, tmp_path)
    with school.runtime.transaction() as session:
        rows = list(rows_from_database(session, LedgerFilter(), school.runtime.definitions))
    out = io.StringIO()
    write_csv(rows, out)
    text = out.getvalue()
    assert text.startswith("\ufeffSố đề xuất,")
    table = list(csv.reader(io.StringIO(text[1:])))
    assert len(table) == len(rows) + 2
    assert table[-1][0] == "Tổng cộng"
    assert int(table[-1][10]) == sum(int(r["amount_vnd"]) for r in rows)  # type: ignore[call-overload]


def test_xlsx_formats_dong_and_totals(school: School, tmp_path: Path) -> None:
    _history(school, tmp_path)
    with school.runtime.transaction() as session:
        rows = list(rows_from_database(session, LedgerFilter(), school.runtime.definitions))
    path = tmp_path / "ledger.xlsx"
    write_xlsx(rows, str(path))
    sheet = load_workbook(path).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][0] == "Số đề xuất" and len(values) == len(rows) + 2
    assert values[-1][0] == "Tổng cộng"
    assert values[-1][10] == sum(int(r["amount_vnd"]) for r in rows)  # type: ignore[call-overload]
    assert "₫" in sheet.cell(row=2, column=11).number_format
    assert values[1][14] == rows[0]["approved_hash"]
