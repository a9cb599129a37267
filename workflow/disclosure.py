"""Public financial disclosure (công khai tài chính, Thông tư 09/2024/TT-BGDĐT) of IT spending.

A report per period (a calendar year, the legal minimum, or a month) of what was paid per budget
line and funding source against the line's allocation, computed from the log up to a signed
checkpoint. It holds no personal data: no payee, no proposer, no account, only plan, line, source
and sums. The CSV is published as it is; beside it a signature file (``.sig``) carries the
period, the checkpoint note and the CSV's sha256, signed by the institution key. Anyone holding
both checks that the key signed them, that the checkpoint is the log's, and that the CSV is what
the log up to that checkpoint gives (``check``), on the audit page or with
``flask --app wsgi disclosure check``.

Paid is a final state, so "paid by the checkpoint" is "its paying event is inside the checkpoint":
a request row whose ``last_seq`` is at most the checkpoint's size (the rows equal the replay of
the log: ``audit verify``).
"""

from __future__ import annotations

import base64
import calendar
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from expense_audit.canonical import key_fingerprint
from expense_audit.checkpoint import CheckpointInvalid, open_checkpoint
from expense_audit.definitions import DefinitionSet
from expense_audit.errors import Refusal
from expense_audit.merkle import root_from_leaf_hashes

from .audit import event_leaf, format_ts, iter_events, make_checkpoint
from .keys import InstitutionKey
from .ledger import neutralise
from .models import CheckpointRow, Request

DISCLOSURE_FORMAT = "expense-disclosure/1"
_PREFIX = b"expense-audit/disclosure/v1\n"
MAX_SIGNATURE_FILE = 64 * 1024
HEADER = (
    "Kế hoạch năm học",
    "Mã dòng",
    "Nội dung chi",
    "Nguồn kinh phí",
    "Dự toán được giao (đ)",
    "Đã chi trong kỳ (đ)",
    "Lũy kế đã chi đến hết kỳ (đ)",
    "Số khoản chi trong kỳ",
)


@dataclass(frozen=True)
class Period:
    """A calendar year ("2025") or a month ("2025-01") of payment dates."""

    year: int
    month: int | None = None

    @classmethod
    def parse(cls, text: str) -> Period:
        match = re.fullmatch(r"(20[0-9]{2})(?:-(0[1-9]|1[0-2]))?", text.strip())
        if match is None:
            raise Refusal(
                f"Kỳ báo cáo «{text}» không hợp lệ: viết năm (2025) hoặc tháng (2025-01).",
                en=f"Report period “{text}” is not valid: write a year (2025) or a month (2025-01).",
                field="period",
            )
        return cls(int(match[1]), int(match[2]) if match[2] else None)

    @property
    def label(self) -> str:
        return f"{self.year}" if self.month is None else f"{self.year}-{self.month:02d}"

    @property
    def label_vi(self) -> str:
        return f"năm {self.year}" if self.month is None else f"tháng {self.month:02d}/{self.year}"

    @property
    def first(self) -> date:
        return date(self.year, self.month or 1, 1)

    @property
    def last(self) -> date:
        month = self.month or 12
        return date(self.year, month, calendar.monthrange(self.year, month)[1])


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


def table(
    paid: Iterable[Mapping[str, Any]], definitions: DefinitionSet, period: Period
) -> list[list[Any]]:
    """Rows per plan, line (with its allocation) and source: paid in the period and to its end."""
    in_period: dict[tuple[str, str, str], list[int]] = {}
    to_end: dict[tuple[str, str, str], int] = {}
    for row in paid:
        day = _day(row.get("paid_on"))
        if day is None or day > period.last:
            continue
        key = (str(row.get("school_year")), str(row.get("line")), str(row.get("source")))
        amount = int(row.get("amount_paid_vnd") or 0)
        to_end[key] = to_end.get(key, 0) + amount
        if day >= period.first:
            in_period.setdefault(key, []).append(amount)
    rows: list[list[Any]] = []
    totals = [0, 0, 0, 0]
    for school_year in sorted(definitions.catalogues):
        catalogue = definitions.catalogues[school_year]
        if period.year not in catalogue.budget_years:
            continue
        for code in sorted(catalogue.lines):
            line = catalogue.lines[code]
            keys = [(school_year, code, source) for source in line.sources]
            period_sum = sum(sum(in_period.get(k, [])) for k in keys)
            end_sum = sum(to_end.get(k, 0) for k in keys)
            count = sum(len(in_period.get(k, [])) for k in keys)
            rows.append(
                [school_year, code, line.name["vi"], "Cộng", line.allocation_vnd]
                + [period_sum, end_sum, count]
            )
            for part, value in enumerate((line.allocation_vnd, period_sum, end_sum, count)):
                totals[part] += value
            for key in keys:
                source_name = catalogue.sources.get(key[2])
                rows.append(
                    [
                        school_year,
                        code,
                        line.name["vi"],
                        source_name["vi"] if source_name else key[2],
                    ]
                    + [None, sum(in_period.get(key, [])), to_end.get(key, 0)]
                    + [len(in_period.get(key, []))]
                )
    rows.append(["Tổng cộng", None, None, None, *totals])
    return rows


def render_csv(
    rows: list[list[Any]], *, school: str, unit_code: str | None, period: Period, size: int
) -> bytes:
    """The published CSV: a title block, then the table (UTF-8 with BOM for Excel)."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([f"CÔNG KHAI TÀI CHÍNH: CHI ỨNG DỤNG CNTT VÀ CHUYỂN ĐỔI SỐ {period.label_vi}"])
    writer.writerow(["Đơn vị", neutralise(school), "Mã ĐVQHNS", unit_code or ""])
    writer.writerow(["Kỳ báo cáo", period.label, "Tính đến sự kiện số", size])
    writer.writerow([])
    writer.writerow(HEADER)
    for row in rows:
        writer.writerow(["" if v is None else neutralise(v) for v in row])
    return buffer.getvalue().encode("utf-8")


def _school(definitions: DefinitionSet, period: Period) -> tuple[str, str | None]:
    for school_year in sorted(definitions.catalogues):
        catalogue = definitions.catalogues[school_year]
        if period.year in catalogue.budget_years:
            return catalogue.school["vi"], catalogue.unit_code
    return "", None


def paid_until(session: Session, size: int) -> list[dict[str, Any]]:
    """Paid requests whose paying event lies inside a checkpoint of ``size`` events."""
    query = select(Request).where(Request.state == "paid", Request.last_seq <= size)
    return [
        {
            "school_year": r.school_year,
            "line": r.line,
            "source": r.source,
            "paid_on": r.paid_on,
            "amount_paid_vnd": r.amount_paid_vnd,
        }
        for r in session.scalars(query)
    ]


def report_csv(session: Session, definitions: DefinitionSet, period: Period, size: int) -> bytes:
    school, unit_code = _school(definitions, period)
    rows = table(paid_until(session, size), definitions, period)
    return render_csv(rows, school=school, unit_code=unit_code, period=period, size=size)


def signature_message(raw: bytes) -> bytes:
    """What the institution signs: a fixed context, then the statement's exact bytes."""
    return _PREFIX + raw


def make(
    session: Session,
    *,
    definitions: DefinitionSet,
    institution: InstitutionKey,
    period: Period,
    now: datetime,
) -> tuple[bytes, bytes]:
    """(CSV, signature file): the report from the log up to a fresh checkpoint, signed."""
    checkpoint = make_checkpoint(session, institution=institution, now=now)
    data = report_csv(session, definitions, period, checkpoint.size)
    statement = {
        "format": DISCLOSURE_FORMAT,
        "period": period.label,
        "origin": checkpoint.origin,
        "institution_key": institution.public_raw.hex(),
        "checkpoint": checkpoint.note,
        "csv_sha256": hashlib.sha256(data).hexdigest(),
        "created": format_ts(now),
    }
    raw = json.dumps(statement, ensure_ascii=False, sort_keys=True).encode()
    signature = base64.b64encode(institution.sign(signature_message(raw)))
    return data, raw + b"\n" + signature + b"\n"


@dataclass
class DisclosureCheck:
    """What checking a downloaded report found; ``valid`` only when nothing is wrong."""

    period: str = ""
    size: int | None = None
    fingerprint: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems


def check(
    session: Session,
    csv_data: bytes,
    signature_file: bytes,
    *,
    definitions: DefinitionSet,
    institution_fingerprint: str,
) -> DisclosureCheck:
    """Check a report and its signature file against this log (fail closed on every step)."""
    result = DisclosureCheck()
    # 1. The signature file: statement, signature, and the key it names is the school's.
    try:
        if len(signature_file) > MAX_SIGNATURE_FILE:
            raise ValueError("too large")
        raw, encoded = signature_file.rstrip(b"\n").rsplit(b"\n", 1)
        statement = json.loads(raw)
        signature = base64.b64decode(encoded, validate=True)
        public_raw = bytes.fromhex(statement["institution_key"])
        if statement.get("format") != DISCLOSURE_FORMAT:
            raise ValueError("not a disclosure signature file")
        result.period = str(statement["period"])
        period = Period.parse(result.period)
        note = str(statement["checkpoint"])
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, signature_message(raw))
    except InvalidSignature:
        result.problems.append("the signature does not verify with the key the file names")
        return result
    except (ValueError, KeyError, TypeError, Refusal) as exc:
        result.problems.append(f"the signature file is unreadable ({exc})")
        return result
    result.fingerprint = key_fingerprint(public_raw)
    if result.fingerprint != institution_fingerprint.strip().lower():
        result.problems.append(
            f"signed by key {result.fingerprint}, not this school's {institution_fingerprint}"
        )
        return result
    # 2. The checkpoint: signed by the same key, and a prefix of this log (same Merkle root).
    try:
        checkpoint = open_checkpoint(note, public_raw)
    except CheckpointInvalid as exc:
        result.problems.append(f"the checkpoint is not valid ({exc})")
        return result
    result.size = checkpoint.size
    leaves = [event_leaf(e.hash, e.sig) for e in iter_events(session)][: checkpoint.size]
    kept = session.get(CheckpointRow, checkpoint.size)
    if len(leaves) < checkpoint.size or root_from_leaf_hashes(leaves) != checkpoint.root:
        result.problems.append("the checkpoint is not a state of this log (different root)")
        return result
    if kept is None:
        result.problems.append("this log never issued that checkpoint")
    # 3. The CSV: as signed, and as the log up to the checkpoint gives it.
    if hashlib.sha256(csv_data).hexdigest() != statement.get("csv_sha256"):
        result.problems.append("the CSV is not the one that was signed (changed after signing)")
    expected = report_csv(session, definitions, period, checkpoint.size)
    if hashlib.sha256(expected).hexdigest() != statement.get("csv_sha256"):
        result.problems.append(
            "the signed CSV differs from what the log up to the checkpoint gives"
        )
    return result


def render_pdf(data: bytes, signature_file: bytes) -> bytes:
    """A printable rendering of a signed report (the CSV is what is signed and checked).

    Landscape A4, DejaVu embedded (as the payment form); the foot names the checkpoint, the
    CSV's sha256 and the school key's fingerprint, so a reader can fetch the CSV and check it.
    """
    from fpdf import FPDF

    from .payment_form import FONT_DIRS, FONTS, FontMissing

    def font(name: str) -> str:
        for folder in FONT_DIRS:
            if (folder / name).is_file():
                return str(folder / name)
        raise FontMissing(f"{name} not found in {', '.join(map(str, FONT_DIRS))}")

    statement = json.loads(signature_file.split(b"\n", 1)[0])
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    title, unit, period_row = rows[0], rows[1], rows[2]
    header_at = rows.index(list(HEADER))
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_margins(12, 12, 12)
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_font("serif", "", font(FONTS[""]))
    pdf.add_font("serif", "B", font(FONTS["B"]))
    pdf.add_font("mono", "", font(FONTS["mono"]))
    pdf.set_title(title[0])
    pdf.set_creator("school-expense-approval")
    pdf.add_page()
    pdf.set_font("serif", "B", 11)
    pdf.cell(0, 6, f"{unit[1]}  (Mã ĐVQHNS: {unit[3] or '—'})", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("serif", "B", 14)
    pdf.multi_cell(0, 8, title[0], align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("serif", "", 10)
    pdf.cell(0, 6, f"Kỳ báo cáo: {period_row[1]}", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    widths = (24, 20, 78, 58, 26, 24, 24, 19)
    with pdf.table(
        col_widths=widths,
        text_align=("LEFT", "LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
        line_height=5,
        first_row_as_headings=True,
    ) as grid:
        pdf.set_font("serif", "", 8)
        for index, values in enumerate([rows[header_at], *rows[header_at + 1 :]]):
            line = grid.row()
            for column, value in enumerate(values):
                if index and column >= 4 and value.isdigit() and column < 7:
                    value = f"{int(value):,}".replace(",", ".")
                line.cell(value)
    pdf.ln(4)
    pdf.set_font("serif", "", 8)
    checkpoint = str(statement.get("checkpoint", "")).split("\n")
    pdf.multi_cell(
        0,
        4.5,
        "Số liệu lấy từ nhật ký chi đã ký, đến điểm kiểm tra "
        f"{checkpoint[1] if len(checkpoint) > 1 else '?'} sự kiện "
        f"(gốc Merkle {checkpoint[2] if len(checkpoint) > 2 else '?'}). Bản chính thức là tệp CSV "
        "kèm tệp chữ ký .sig của trường; đối chiếu bằng trang Kiểm toán hoặc lệnh "
        "«flask disclosure check».",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_font("serif", "", 7.5)
    pdf.multi_cell(
        0, 4, f"CSV sha256: {statement.get('csv_sha256', '')}", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.multi_cell(
        0, 4, f"Khóa của trường: {key_fingerprint(bytes.fromhex(statement['institution_key']))}"
    )
    return bytes(pdf.output())
