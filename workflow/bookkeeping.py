"""The bookkeeping export: one row per paid request in the columns of a voucher-import sheet.

Which columns, in which order, under which headers, and which accounts each budget line and
funding source is booked to are data (``accounting/bookkeeping.toml``), edited by the school's
accountant to fit the import template of the school's accounting software (MISA Mimosa, Imas).
The file is validated when loaded; a mistake names the key at fault. Amounts are written as
numbers and dates as dates; text cells cannot become formulas (``ledger.neutralise``).
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from string import Template
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from expense_audit.definitions import DefinitionSet
from expense_audit.errors import DefinitionError

from .ledger import LedgerFilter, neutralise
from .models import Request

DATE_FIELDS = frozenset({"date", "posting_date", "invoice_date"})
NUMBER_FIELDS = frozenset({"amount", "budget_year"})
TEXT_FIELDS = frozenset(
    {
        "voucher",
        "description",
        "debit",
        "credit",
        "payee",
        "tax_code",
        "number",
        "title",
        "line",
        "line_name",
        "source",
        "source_name",
        "chuong",
        "loai",
        "khoan",
        "loai_khoan",
        "muc",
        "tieu_muc",
        "muc_tieu_muc",
        "unit_code",
        "invoice_number",
        "invoice_series",
        "school_year",
        "blank",
    }
)
FIELDS = DATE_FIELDS | NUMBER_FIELDS | TEXT_FIELDS
DESCRIPTION_PLACEHOLDERS = frozenset(
    {
        "number",
        "title",
        "line",
        "line_name",
        "source",
        "source_name",
        "payee",
        "voucher",
        "invoice_number",
        "invoice_series",
    }
)
ACCOUNT = re.compile(r"[0-9]{3,6}")
SHEET_NAME = re.compile(r"[^:\\/?*\[\]]{1,31}")
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "accounting" / "bookkeeping.toml"


@dataclass(frozen=True)
class Accounts:
    debit: str | None = None
    credit: str | None = None


@dataclass(frozen=True)
class Column:
    header: str
    field: str


@dataclass(frozen=True)
class BookkeepingMap:
    """The accountant's mapping: sheet layout and accounts per line and source."""

    path: str
    sheet_name: str
    csv_date_format: str
    xlsx_date_format: str
    description: Template
    columns: tuple[Column, ...]
    default: Accounts
    sources: Mapping[str, Accounts]
    lines: Mapping[str, Accounts]

    def accounts_for(self, line: str | None, source: str | None) -> tuple[str, str]:
        """(debit, credit): the line's if set, else the source's, else the default."""
        chain = (self.lines.get(line or ""), self.sources.get(source or ""), self.default)
        debit = next((a.debit for a in chain if a is not None and a.debit), None)
        credit = next((a.credit for a in chain if a is not None and a.credit), None)
        if debit is None or credit is None:
            key = f"sources.{source}" if source else "default"
            raise DefinitionError(self.path, key, "no debit and credit account for this source")
        return debit, credit

    def check_covers(self, definitions: DefinitionSet) -> None:
        """Every line and source of every budget plan books to both accounts."""
        for catalogue in definitions.catalogues.values():
            for code, line in catalogue.lines.items():
                for source in line.sources:
                    try:
                        self.accounts_for(code, source)
                    except DefinitionError:
                        raise DefinitionError(
                            self.path,
                            f"sources.{source}",
                            f"no debit and credit account for source {source} "
                            f"(line {code}, plan {catalogue.school_year}); set it here or "
                            "in [default]",
                        ) from None


def _table(raw: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise DefinitionError(path, key, "must be a table")
    return value


def _string(raw: Mapping[str, Any], key: str, path: str, where: str, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise DefinitionError(path, f"{where}.{key}", "must be a non-empty string")
    return value


def _accounts(raw: Any, path: str, key: str) -> Accounts:
    if not isinstance(raw, dict):
        raise DefinitionError(path, key, "must be a table with debit and/or credit")
    unknown = set(raw) - {"debit", "credit"}
    if unknown:
        raise DefinitionError(path, f"{key}.{sorted(unknown)[0]}", "only debit and credit")
    for side in ("debit", "credit"):
        value = raw.get(side)
        if value is not None and (not isinstance(value, str) or not ACCOUNT.fullmatch(value)):
            raise DefinitionError(
                path, f"{key}.{side}", 'an account number is 3 to 6 digits, in quotes ("611")'
            )
    return Accounts(debit=raw.get("debit"), credit=raw.get("credit"))


def load_map(data: bytes, path: str) -> BookkeepingMap:
    """Parse and validate a bookkeeping mapping; ``DefinitionError`` names the key at fault."""
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DefinitionError(path, "-", f"not valid TOML: {exc}") from None
    unknown = set(raw) - {"sheet", "columns", "default", "sources", "lines"}
    if unknown:
        raise DefinitionError(path, sorted(unknown)[0], "unknown table")
    sheet = _table(raw, "sheet", path)
    sheet_name = _string(sheet, "name", path, "sheet", "Chung tu")
    if not SHEET_NAME.fullmatch(sheet_name):
        raise DefinitionError(path, "sheet.name", r"1 to 31 characters, none of : \ / ? * [ ]")
    csv_date_format = _string(sheet, "csv_date_format", path, "sheet", "%d/%m/%Y")
    if "%" not in csv_date_format:
        raise DefinitionError(path, "sheet.csv_date_format", "a strftime format such as %d/%m/%Y")
    xlsx_date_format = _string(sheet, "xlsx_date_format", path, "sheet", "dd/mm/yyyy")
    template = Template(_string(sheet, "description", path, "sheet", "$title ($number)"))
    if not template.is_valid():
        raise DefinitionError(path, "sheet.description", "a lone $ (write $$ for a dollar sign)")
    wrong = [p for p in template.get_identifiers() if p not in DESCRIPTION_PLACEHOLDERS]
    if wrong:
        raise DefinitionError(
            path,
            "sheet.description",
            f"unknown placeholder ${wrong[0]}; use {', '.join(sorted(DESCRIPTION_PLACEHOLDERS))}",
        )
    raw_columns = raw.get("columns")
    if not isinstance(raw_columns, list) or not raw_columns:
        raise DefinitionError(path, "columns", "at least one [[columns]] entry")
    columns = []
    for index, item in enumerate(raw_columns):
        key = f"columns[{index}]"
        if not isinstance(item, dict) or set(item) != {"header", "field"}:
            raise DefinitionError(path, key, "needs exactly header and field")
        header = _string(item, "header", path, key, "")
        field = item["field"]
        if field not in FIELDS:
            raise DefinitionError(
                path, f"{key}.field", f"unknown field {field!r}; use {', '.join(sorted(FIELDS))}"
            )
        columns.append(Column(header=header, field=field))
    default = _accounts(raw.get("default", {}), path, "default")
    sources = {
        code: _accounts(value, path, f"sources.{code}")
        for code, value in _table(raw, "sources", path).items()
    }
    lines = {
        code: _accounts(value, path, f"lines.{code}")
        for code, value in _table(raw, "lines", path).items()
    }
    return BookkeepingMap(
        path=path,
        sheet_name=sheet_name,
        csv_date_format=csv_date_format,
        xlsx_date_format=xlsx_date_format,
        description=template,
        columns=tuple(columns),
        default=default,
        sources=sources,
        lines=lines,
    )


def load_map_file(path: Path, definitions: DefinitionSet | None = None) -> BookkeepingMap:
    """Load the mapping from ``path``; with ``definitions``, check it covers every plan."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DefinitionError(str(path), "-", f"cannot read the file: {exc.strerror}") from None
    mapping = load_map(data, str(path))
    if definitions is not None:
        mapping.check_covers(definitions)
    return mapping


def _day(value: Any) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


def paid_requests(
    session: Session,
    selection: LedgerFilter,
    *,
    paid_from: date | None = None,
    paid_to: date | None = None,
) -> Iterator[Request]:
    """Paid requests, in payment order, optionally within a range of payment dates."""
    query = select(Request).where(Request.state == "paid")
    for name in ("school_year", "budget_year", "line", "source"):
        value = getattr(selection, name)
        if value is not None:
            query = query.where(getattr(Request, name) == value)
    if paid_from is not None:
        query = query.where(Request.paid_on >= paid_from.isoformat())
    if paid_to is not None:
        query = query.where(Request.paid_on <= paid_to.isoformat())
    query = query.order_by(Request.paid_on, Request.voucher, Request.number)
    yield from session.scalars(query.execution_options(yield_per=1000))


def entry(
    request: Request | Mapping[str, Any],
    mapping: BookkeepingMap,
    definitions: DefinitionSet | None,
) -> dict[str, Any]:
    """Every field of the vocabulary for one paid request (dates as dates, amounts as ints)."""
    get = request.get if isinstance(request, Mapping) else lambda k: getattr(request, k, None)
    line_code, source = get("line"), get("source")
    catalogue = definitions.catalogues.get(str(get("school_year"))) if definitions else None
    line = catalogue.lines.get(str(line_code)) if catalogue else None
    source_name = catalogue.sources.get(str(source)) if catalogue else None
    mlns = line.mlns if line else None
    debit, credit = mapping.accounts_for(line_code, source)
    text = {
        "number": get("number"),
        "title": get("title"),
        "line": line_code,
        "line_name": line.name["vi"] if line else "",
        "source": source,
        "source_name": source_name["vi"] if source_name else "",
        "payee": get("payee"),
        "voucher": get("voucher"),
        "invoice_number": get("invoice_number"),
        "invoice_series": get("invoice_series"),
    }
    paid_on = _day(get("paid_on"))
    amount = get("amount_paid_vnd")
    return {
        **text,
        "description": mapping.description.safe_substitute(
            {k: "" if v is None else str(v) for k, v in text.items()}
        ),
        "date": paid_on,
        "posting_date": paid_on,
        "invoice_date": _day(get("invoice_date")),
        "debit": debit,
        "credit": credit,
        "amount": None if amount is None else int(amount),
        "budget_year": get("budget_year"),
        "school_year": get("school_year"),
        "tax_code": get("tax_code"),
        "chuong": mlns.chuong if mlns else None,
        "loai": mlns.loai if mlns else None,
        "khoan": mlns.khoan if mlns else None,
        "loai_khoan": f"{mlns.loai}-{mlns.khoan}" if mlns else None,
        "muc": mlns.muc if mlns else None,
        "tieu_muc": mlns.tieu_muc if mlns else None,
        "muc_tieu_muc": f"{mlns.muc}-{mlns.tieu_muc}" if mlns else None,
        "unit_code": catalogue.unit_code if catalogue else None,
        "blank": None,
    }


def entries(
    requests: Iterable[Request | Mapping[str, Any]],
    mapping: BookkeepingMap,
    definitions: DefinitionSet | None,
) -> Iterator[dict[str, Any]]:
    for request in requests:
        yield entry(request, mapping, definitions)


def csv_chunks(rows: Iterable[Mapping[str, Any]], mapping: BookkeepingMap) -> Iterator[str]:
    """The import sheet as CSV (UTF-8 with BOM), no totals row: every row is a voucher."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow([neutralise(c.header) for c in mapping.columns])
    for count, row in enumerate(rows, 1):
        cells = []
        for column in mapping.columns:
            value = row.get(column.field)
            if value is None:
                cells.append("")
            elif isinstance(value, date):
                cells.append(value.strftime(mapping.csv_date_format))
            else:
                cells.append(neutralise(value))
        writer.writerow(cells)
        if count % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write_csv(rows: Iterable[Mapping[str, Any]], mapping: BookkeepingMap, out: IO[str]) -> None:
    for chunk in csv_chunks(rows, mapping):
        out.write(chunk)


def write_xlsx(
    rows: Iterable[Mapping[str, Any]], mapping: BookkeepingMap, out: IO[bytes] | str
) -> None:
    """The import sheet as XLSX: amounts are numbers, dates are dates, codes stay text."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(mapping.sheet_name)
    bold = Font(bold=True)
    header = []
    for column in mapping.columns:
        cell = WriteOnlyCell(sheet, value=column.header)
        cell.data_type = "s"
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    for row in rows:
        cells = []
        for column in mapping.columns:
            value = row.get(column.field)
            cell = WriteOnlyCell(sheet, value=value)
            if isinstance(value, date):
                cell.number_format = mapping.xlsx_date_format
            elif isinstance(value, str):
                # NOTE: a code such as "070" stays text (leading zero kept), and a title starting
                # with "=" stays text, not a formula (openpyxl reads "=..." as one otherwise).
                cell.data_type = "s"
            elif column.field == "amount":
                cell.number_format = "#,##0"
            cells.append(cell)
        sheet.append(cells)
    workbook.save(out)
