"""The approved-expense ledger: rows from the database or from a replay, as CSV or XLSX."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from expense_audit.budget import COMMITTED_STATES
from expense_audit.definitions import DefinitionSet
from expense_audit.projection import Projection

from . import queries
from .models import Request

COLUMNS = (
    ("number", "Số đề xuất"),
    ("school_year", "Năm học"),
    ("budget_year", "Năm ngân sách"),
    ("line", "Mã dòng"),
    ("line_name", "Dòng ngân sách"),
    ("source", "Nguồn kinh phí"),
    ("title", "Nội dung"),
    ("owner", "Người đề xuất"),
    ("approved_by", "Người duyệt"),
    ("state", "Trạng thái"),
    ("amount_vnd", "Số tiền duyệt (đ)"),
    ("amount_paid_vnd", "Số tiền đã chi (đ)"),
    ("voucher", "Số chứng từ"),
    ("paid_on", "Ngày chi"),
    ("approved_hash", "Mã băm sự kiện duyệt"),
    # the approval signed for the principal: "KT. HIỆU TRƯỞNG / PHÓ HIỆU TRƯỞNG Nguyễn Văn Long";
    # last, so that the columns spreadsheets and imports already read keep their places
    ("approved_as", "Ký duyệt thay"),
)
MONEY_COLUMNS = ("amount_vnd", "amount_paid_vnd")
DERIVED = ("line_name", "approved_as")  # not request fields: from the catalogue and the log
# OWASP "CSV injection": a text cell starting with one of these is read as a formula by Excel,
# LibreOffice and Google Sheets (tab and CR too, since they are trimmed before parsing).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """A text cell a spreadsheet will show as text: a leading quote before a formula start.

    Numbers stay numbers; only strings are touched (a title "-5% discount" gets the quote too).
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


@dataclass(frozen=True)
class LedgerFilter:
    school_year: str | None = None
    budget_year: int | None = None
    line: str | None = None
    source: str | None = None
    state: str | None = None

    def matches(self, projection: Mapping[str, Any]) -> bool:
        return (
            projection.get("state") in COMMITTED_STATES
            and (self.school_year is None or projection.get("school_year") == self.school_year)
            and (self.budget_year is None or projection.get("budget_year") == self.budget_year)
            and (self.line is None or projection.get("line") == self.line)
            and (self.source is None or projection.get("source") == self.source)
            and (self.state is None or projection.get("state") == self.state)
        )


def ledger_row(
    projection: Mapping[str, Any],
    definitions: DefinitionSet | None,
    signed_as: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One ledger row of an approved or paid request.

    ``signed_as``: how approvals under a KT./TUQ. mandate are signed, by approval event hash
    (queries.approvals_under_mandate); an approval by the principal in person leaves it empty.
    """
    line_name = ""
    if definitions is not None:
        catalogue = definitions.catalogues.get(str(projection.get("school_year")))
        line = catalogue.lines.get(str(projection.get("line"))) if catalogue else None
        line_name = line.name["vi"] if line else ""
    row = {name: projection.get(name) for name, _ in COLUMNS if name not in DERIVED}
    row["line_name"] = line_name
    row["approved_as"] = (signed_as or {}).get(str(projection.get("approved_hash")), "")
    return row


def approval_triggers(definitions: DefinitionSet | None) -> set[str]:
    """The triggers that record an approval, in every workflow."""
    if definitions is None:
        return set()
    return {
        t.trigger
        for workflow in definitions.workflows.values()
        for t in workflow.transitions
        if t.has("record_approval")
    }


def _where(query: Any, ledger_filter: LedgerFilter) -> Any:
    query = query.where(Request.state.in_(COMMITTED_STATES))
    for name in ("school_year", "budget_year", "line", "source", "state"):
        value = getattr(ledger_filter, name)
        if value is not None:
            query = query.where(getattr(Request, name) == value)
    return query


def rows_from_database(
    session: Session,
    ledger_filter: LedgerFilter,
    definitions: DefinitionSet | None,
    *,
    offset: int = 0,
    limit: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Ledger rows straight from the request table, streamed in number order (or one page)."""
    query = _where(select(Request), ledger_filter).order_by(Request.number).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    signed_as = queries.approvals_under_mandate(session, approval_triggers(definitions))
    for row in session.scalars(query.execution_options(yield_per=1000)):
        yield ledger_row(
            {c.key: getattr(row, c.key) for c in Request.__table__.columns},
            definitions,
            signed_as,
        )


def totals_from_database(session: Session, ledger_filter: LedgerFilter) -> dict[str, int]:
    """Count and sums of the whole selection, computed by the database (not by loading rows)."""
    count, approved, paid = session.execute(
        _where(
            select(func.count(), func.sum(Request.amount_vnd), func.sum(Request.amount_paid_vnd)),
            ledger_filter,
        )
    ).one()
    return {
        "count": int(count or 0),
        "amount_vnd": int(approved or 0),
        "amount_paid_vnd": int(paid or 0),
    }


def rows_from_replay(
    projections: Mapping[str, Projection],
    ledger_filter: LedgerFilter,
    definitions: DefinitionSet | None,
) -> list[dict[str, Any]]:
    """Ledger rows computed from a replay of the log (what an auditor derives from a bundle)."""
    return [
        ledger_row(projections[number], definitions)
        for number in sorted(projections)
        if ledger_filter.matches(projections[number])
    ]


Columns = Sequence[tuple[str, str]]


def write_csv(rows: Iterable[Mapping[str, Any]], out: IO[str], columns: Columns = COLUMNS) -> None:
    """CSV with a UTF-8 BOM (so Excel shows Vietnamese correctly) and a totals row."""
    for chunk in csv_chunks(rows, columns):
        out.write(chunk)


def csv_chunks(rows: Iterable[Mapping[str, Any]], columns: Columns = COLUMNS) -> Iterator[str]:
    """The CSV as a stream of chunks (for a streamed HTTP response); the totals row's label goes
    in the first column."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow([label for _, label in columns])
    sums = dict.fromkeys(MONEY_COLUMNS, 0)
    for count, row in enumerate(rows, 1):
        for name in MONEY_COLUMNS:
            sums[name] += int(row.get(name) or 0)
        writer.writerow(
            ["" if row.get(name) is None else neutralise(row.get(name)) for name, _ in columns]
        )
        if count % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    first = columns[0][0]
    writer.writerow(["Tổng cộng" if name == first else sums.get(name, "") for name, _ in columns])
    yield buffer.getvalue()


def write_xlsx(
    rows: Iterable[Mapping[str, Any]], out: IO[bytes] | str, columns: Columns = COLUMNS
) -> None:
    """XLSX in write-only (streamed) mode, đồng formatted, with a totals row."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("So chi CNTT")
    bold = Font(bold=True)
    header = []
    for _, label in columns:
        cell = WriteOnlyCell(sheet, value=label)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    money_format = '#,##0 "₫"'
    sums = dict.fromkeys(MONEY_COLUMNS, 0)
    for row in rows:
        for name in MONEY_COLUMNS:
            sums[name] += int(row.get(name) or 0)
        cells = []
        for name, _ in columns:
            value = row.get(name)
            cell = WriteOnlyCell(sheet, value=value)
            if isinstance(value, str):
                # NOTE: openpyxl turns any string starting with "=" into a formula cell; an
                # explicit string type keeps it text whatever it starts with.
                cell.data_type = "s"
            if name in MONEY_COLUMNS:
                cell.number_format = money_format
            cells.append(cell)
        sheet.append(cells)
    total_cells = []
    for name, _ in columns:
        if name in MONEY_COLUMNS:
            cell = WriteOnlyCell(sheet, value=sums[name])
            cell.number_format = money_format
        else:
            cell = WriteOnlyCell(sheet, value="Tổng cộng" if name == columns[0][0] else None)
        cell.font = bold
        total_cells.append(cell)
    sheet.append(total_cells)
    workbook.save(out)
