"""The payment request form (giấy đề nghị thanh toán) as a PDF, with its signed timeline and QR.

fpdf2 draws it: pure Python, embeds and subsets a TrueType font (DejaVu has every Vietnamese
glyph, precomposed), and its cell API is enough for a one-page form. The QR code is drawn as
vector squares from segno's module matrix, so it stays sharp when printed and scanned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import segno
from fpdf import FPDF
from sqlalchemy.orm import Session

from expense_audit.definitions import BudgetCatalogue
from expense_audit.money import amount_in_words

from . import queries
from .clock import VIETNAM, local_time
from .errors import RequestNotFound
from .models import Request
from .service import projection_of

FONT_DIRS = (
    Path(__file__).resolve().parent.parent / "webapp" / "static" / "fonts",
    Path("/usr/share/fonts/truetype/dejavu"),  # Debian's fonts-dejavu-core
)
FONTS = {"": "DejaVuSerif.ttf", "B": "DejaVuSerif-Bold.ttf", "mono": "DejaVuSansMono.ttf"}

# Which step's signature goes at which place on the form, left to right.
SIGNATURE_PLACES = (
    ("submit", "NGƯỜI ĐỀ NGHỊ", "Người lập đề xuất"),
    ("forward", "NGƯỜI XEM XÉT", "Phó hiệu trưởng"),
    ("pay", "KẾ TOÁN", "Người chi"),
    ("approve", "THỦ TRƯỞNG ĐƠN VỊ", "Hiệu trưởng duyệt chi"),
)
# The place of the district's approval, printed only on the forms of requests that took it
# (definitions/expense_approval_district.toml).
DISTRICT_PLACE = ("district_approve", "PHÒNG TÀI CHÍNH – KẾ HOẠCH", "Duyệt cấp huyện")
ROLE_VI = {
    "proposer": "người đề xuất",
    "reviewer": "phó hiệu trưởng",
    "approver": "hiệu trưởng",
    "accountant": "kế toán",
    "district_finance": "chuyên viên Phòng Tài chính – Kế hoạch",
}


PERSONAL = "(dữ liệu cá nhân, không hiển thị)"


class FontMissing(RuntimeError):
    """No DejaVu font to embed (install fonts-dejavu-core or put it in webapp/static/fonts)."""


@dataclass(frozen=True)
class Signature:
    """A signed step as printed at its place: who, role, when, which key, which kind of key."""

    action: str
    name: str
    role: str
    when: str
    key: str
    kind: str  # "khóa lưu trên máy chủ" (server-held) or "passkey"
    hash: str
    # under a KT./TUQ. mandate: ("KT. HIỆU TRƯỞNG", "PHÓ HIỆU TRƯỞNG"), printed above the name
    signed_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class PaymentRequestForm:
    """Everything the form prints, gathered from the request's row and its signed events."""

    school: str
    unit_code: str | None
    number: str
    day: str  # "ngày 13 tháng 01 năm 2025"
    proposer: str
    title: str
    description: str
    amount_vnd: int
    amount_words: str
    line: str
    mlns: str | None
    source: str
    budget_year: int | None
    payee: str | None
    tax_code: str | None
    bank: str | None
    invoice: str | None
    attachments: Sequence[str]
    payment: str | None
    approved_hash: str | None
    fingerprint: str
    check_url: str
    signatures: Mapping[str, Signature] = field(default_factory=dict)
    # The time of the request's latest event: the PDF's creation date, so that the same request
    # in the same state always renders to the same bytes (a PAdES upload is compared to them).
    created: datetime | None = None


def dong(amount: int) -> str:
    """1800000 -> '1.800.000 đồng' (paper forms write the unit out)."""
    return f"{amount:,} đồng".replace(",", ".")


def check_url(base_url: str, number: str, event_hash: str | None, fingerprint: str) -> str:
    """What the QR code carries: the audit page that resolves the paper against the log."""
    query = urlencode({"n": number, "e": event_hash or "", "fp": fingerprint})
    return f"{base_url.rstrip('/')}/audit/paper?{query}"


def _day(ts: str | None) -> str:
    if not ts:
        return "ngày ... tháng ... năm ..."
    moment = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).astimezone(VIETNAM)
    return f"ngày {moment.day:02d} tháng {moment.month:02d} năm {moment.year}"


def gather(
    session: Session,
    number: str,
    *,
    catalogue: BudgetCatalogue,
    fingerprint: str,
    base_url: str,
    hide_personal: bool = False,
) -> PaymentRequestForm:
    """The form's fields for a submitted request (drafts have nothing signed to print).

    ``hide_personal``: a person's tax code and bank account are left out (Nghị định 13/2023)
    for readers who may not see them (workflow.policy.can_see_personal_data).
    """
    row = session.get(Request, number)
    if row is None:
        raise RequestNotFound(
            f"Không tìm thấy đề xuất {number}.", en=f"No request {number}.", number=number
        )
    p: dict[str, Any] = projection_of(row)
    line = catalogue.lines.get(str(p["line"]))
    mlns = line.mlns if line else None
    steps = queries.timeline(session, number)
    signatures: dict[str, Signature] = {}
    for step in steps:  # the latest step of each kind is the one that stands
        signatures[step.action] = Signature(
            action=step.action,
            name=step.actor_name,
            role=ROLE_VI.get(step.role, step.role),
            when=local_time(step.ts),
            key=step.key,
            kind="khóa lưu trên máy chủ" if step.server_held else "passkey",
            hash=step.hash,
            signed_for=_signed_for(step.signed_as, step.actor_name),
        )
    submitted = next((s.ts for s in steps if s.action == "submit"), p["created_at"])
    invoice = None
    if p.get("invoice_number"):
        series = f"ký hiệu {p['invoice_series']}, " if p.get("invoice_series") else ""
        issued = p.get("invoice_date") or ""
        if issued:
            issued = f", ngày {issued[8:10]}/{issued[5:7]}/{issued[:4]}"
        invoice = f"{series}số {p['invoice_number']}{issued}"
    payment = None
    if p.get("voucher"):
        paid_on = str(p["paid_on"])
        payment = (
            f"{dong(int(p['amount_paid_vnd']))}, chứng từ {p['voucher']}, "
            f"ngày {paid_on[8:10]}/{paid_on[5:7]}/{paid_on[:4]}"
        )
    bank = None
    if p.get("bank_account"):
        bank = f"{p['bank_account']} tại {p.get('bank') or ''}".strip()
    owner = queries.names_of(session, [row.owner]).get(row.owner, row.owner)
    tax_code = p.get("tax_code")
    if hide_personal and p.get("payee_kind") == "person":
        tax_code = PERSONAL if tax_code else None
        bank = PERSONAL if bank else None
    return PaymentRequestForm(
        school=catalogue.school["vi"],
        unit_code=catalogue.unit_code,
        number=number,
        day=_day(submitted),
        proposer=owner,
        title=str(p["title"] or ""),
        description=str(p["description"] or ""),
        amount_vnd=int(p["amount_vnd"] or 0),
        amount_words=amount_in_words(int(p["amount_vnd"] or 0)),
        line=f"{line.name['vi']} ({line.code})" if line else str(p["line"]),
        mlns=(
            f"Chương {mlns.chuong} – Loại {mlns.loai} – Khoản {mlns.khoan} – "
            f"Mục {mlns.muc} – Tiểu mục {mlns.tieu_muc}"
            if mlns
            else None
        ),
        source=catalogue.sources.get(str(p["source"]), {}).get("vi", str(p["source"])),
        budget_year=p["budget_year"],
        payee=p.get("payee"),
        tax_code=tax_code,
        bank=bank,
        invoice=invoice,
        attachments=[f"{a['name']} (sha256 {a['sha256'][:16]}…)" for a in p["attachments"] or []],
        payment=payment,
        approved_hash=p.get("approved_hash"),
        fingerprint=fingerprint,
        check_url=check_url(base_url, number, p.get("approved_hash"), fingerprint),
        signatures=signatures,
        created=(
            datetime.strptime(steps[-1].ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            if steps
            else None
        ),
    )


def _signed_for(signed_as: str | None, name: str) -> tuple[str, ...]:
    """ "KT. HIỆU TRƯỞNG / PHÓ HIỆU TRƯỞNG Nguyễn Văn Long" -> ("KT. HIỆU TRƯỞNG", "PHÓ HIỆU
    TRƯỞNG"): the lines above the signer's name at a signature place."""
    if not signed_as:
        return ()
    head, _sep, own = signed_as.partition(" / ")
    own = own.removesuffix(name).strip()
    return (head, own) if own else (head,)


def _font_path(name: str) -> Path:
    for folder in FONT_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise FontMissing(
        f"{name} not found in {', '.join(map(str, FONT_DIRS))}: install fonts-dejavu-core"
    )


class _Form(FPDF):
    def __init__(self) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.set_margins(18, 14, 16)
        self.set_auto_page_break(auto=True, margin=14)
        for style, name in FONTS.items():
            family, style_code = ("mono", "") if style == "mono" else ("serif", style)
            self.add_font(family, style_code, str(_font_path(name)))
        self.set_title("Giấy đề nghị thanh toán")
        self.set_creator("school-expense-approval")

    def labelled(self, label: str, value: str, *, bold_value: bool = False) -> None:
        """A 'Label: value' line that wraps under itself."""
        self.set_font("serif", "", 11)
        width = self.get_string_width(label + " ") + 1
        self.cell(width, 6, label)
        self.set_font("serif", "B" if bold_value else "", 11)
        self.multi_cell(0, 6, value, new_x="LMARGIN", new_y="NEXT")


def render(form: PaymentRequestForm) -> bytes:
    """The one-page form as PDF bytes (A4, Vietnamese, DejaVu embedded)."""
    pdf = _Form()
    if form.created is not None:
        pdf.set_creation_date(form.created)
    pdf.add_page()
    _heading(pdf, form)
    _body(pdf, form)
    _signatures(pdf, form)
    _verification(pdf, form)
    return bytes(pdf.output())


def _heading(pdf: _Form, form: PaymentRequestForm) -> None:
    top = pdf.get_y()
    pdf.set_font("serif", "B", 11)
    pdf.multi_cell(100, 5.5, f"Đơn vị: {form.school}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("serif", "", 11)
    pdf.cell(100, 5.5, f"Mã ĐVQHNS: {form.unit_code or '—'}", new_x="LMARGIN", new_y="NEXT")
    after = pdf.get_y()
    pdf.set_xy(120, top)
    pdf.set_font("serif", "", 11)
    pdf.cell(0, 5.5, f"Số: {form.number}", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(max(after, pdf.get_y()) + 5)
    pdf.set_font("serif", "B", 15)
    pdf.cell(0, 8, "GIẤY ĐỀ NGHỊ THANH TOÁN", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("serif", "", 11)
    pdf.cell(0, 6, form.day.capitalize(), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.labelled("Kính gửi:", f"Hiệu trưởng {form.school}")
    pdf.labelled("Họ và tên người đề nghị thanh toán:", form.proposer)


def _body(pdf: _Form, form: PaymentRequestForm) -> None:
    text = form.title + (f". {form.description}" if form.description else "")
    pdf.labelled("Nội dung thanh toán:", text)
    pdf.labelled("Số tiền:", dong(form.amount_vnd), bold_value=True)
    pdf.labelled("Viết bằng chữ:", form.amount_words)
    pdf.labelled("Người nhận tiền:", form.payee or "—")
    if form.tax_code:
        pdf.labelled("Mã số thuế:", form.tax_code)
    if form.bank:
        pdf.labelled("Số tài khoản:", form.bank)
    pdf.labelled("Hóa đơn:", form.invoice or "chưa có (kế toán ghi khi chi)")
    pdf.labelled("Dòng kinh phí:", form.line)
    pdf.labelled("Nguồn kinh phí:", f"{form.source}; năm ngân sách {form.budget_year or '—'}")
    pdf.labelled("Mục lục ngân sách:", form.mlns or "—")
    count = len(form.attachments)
    pdf.labelled("Kèm theo:", f"{count} chứng từ gốc" + (":" if count else ""))
    pdf.set_font("serif", "", 10)
    for name in form.attachments:
        pdf.set_x(pdf.l_margin + 6)
        pdf.multi_cell(0, 5, f"– {name}", new_x="LMARGIN", new_y="NEXT")
    if form.payment:
        pdf.labelled("Đã chi:", form.payment)


def _signatures(pdf: _Form, form: PaymentRequestForm) -> None:
    pdf.ln(4)
    places: tuple[tuple[str, str, str], ...] = SIGNATURE_PLACES
    if DISTRICT_PLACE[0] in form.signatures:
        places = (*SIGNATURE_PLACES[:-1], DISTRICT_PLACE, SIGNATURE_PLACES[-1])
    width = (pdf.w - pdf.l_margin - pdf.r_margin) / len(places)
    top = pdf.get_y()
    bottom = top
    for index, (action, title, hint) in enumerate(places):
        x = pdf.l_margin + index * width
        pdf.set_xy(x, top)
        pdf.set_font("serif", "B", 8.8)
        pdf.multi_cell(width, 5, title, align="C", new_x="LEFT", new_y="NEXT")
        pdf.set_font("serif", "", 8.5)
        pdf.multi_cell(width, 4.5, f"({hint})", align="C", new_x="LEFT", new_y="NEXT")
        signed = form.signatures.get(action)
        if signed is None:
            pdf.multi_cell(width, 4.5, "chưa ký", align="C", new_x="LEFT", new_y="NEXT")
        else:
            pdf.set_font("serif", "", 8.5)
            pdf.multi_cell(width, 4.5, "Đã ký điện tử", align="C", new_x="LEFT", new_y="NEXT")
            pdf.set_font("serif", "B", 8.8)
            for text in signed.signed_for:
                pdf.multi_cell(width, 4.5, text, align="C", new_x="LEFT", new_y="NEXT")
            pdf.set_font("serif", "B", 9.5)
            pdf.multi_cell(width, 5, signed.name, align="C", new_x="LEFT", new_y="NEXT")
            pdf.set_font("serif", "", 8)
            for text in (
                signed.role,
                signed.when,
                f"khóa {signed.key}",
                signed.kind,
            ):
                pdf.multi_cell(width, 4, text, align="C", new_x="LEFT", new_y="NEXT")
            pdf.set_font("mono", "", 6.5)
            pdf.multi_cell(
                width, 3.5, f"sự kiện {signed.hash[:16]}", align="C", new_x="LEFT", new_y="NEXT"
            )
        bottom = max(bottom, pdf.get_y())
    pdf.set_xy(pdf.l_margin, bottom + 4)


def _verification(pdf: _Form, form: PaymentRequestForm) -> None:
    size = 34.0
    if pdf.get_y() + size > pdf.h - pdf.b_margin:
        pdf.add_page()
    top = pdf.get_y()
    _qr(pdf, form.check_url, pdf.l_margin, top, size)
    x = pdf.l_margin + size + 5
    width = pdf.w - pdf.r_margin - x
    pdf.set_xy(x, top)
    pdf.set_font("serif", "B", 9.5)
    pdf.multi_cell(width, 4.8, "Kiểm tra giấy này với nhật ký đã ký", new_x="LEFT", new_y="NEXT")
    pdf.set_font("serif", "", 8.5)
    pdf.multi_cell(
        width,
        4.3,
        "Quét mã QR (trang kiểm toán của trường) hoặc kiểm tra ngoại tuyến với gói kiểm toán:",
        new_x="LEFT",
        new_y="NEXT",
    )
    pdf.set_font("mono", "", 7)
    for text in (
        f"audit-verify BUNDLE --request {form.number}",
        f"  --event {form.approved_hash or '(chưa duyệt)'}",
        f"  --institution-key {form.fingerprint}",
    ):
        pdf.multi_cell(width, 3.6, text, new_x="LEFT", new_y="NEXT")
    pdf.set_font("serif", "", 8.5)
    pdf.multi_cell(
        width,
        4.3,
        f"Sự kiện duyệt chi: {'đã ghi trong nhật ký' if form.approved_hash else 'chưa duyệt'}. "
        "Khóa của trường là dấu vân tay ở dòng --institution-key.",
        align="L",
        new_x="LEFT",
        new_y="NEXT",
    )


def _qr(pdf: _Form, payload: str, x: float, y: float, size: float) -> None:
    """The QR code as filled squares (vector), quiet zone included in ``size``."""
    code = segno.make_qr(payload, error="m")
    rows = [list(row) for row in code.matrix_iter(scale=1, border=4)]
    module = size / len(rows)
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(rows):
        for c, dark in enumerate(row):
            if dark:
                pdf.rect(x + c * module, y + r * module, module, module, style="F")
