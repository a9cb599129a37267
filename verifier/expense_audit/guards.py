"""Named guards referenced from definitions; each passes silently or raises GuardRefused.

The same functions run in the engine (before an event is written) and in the offline verifier
(when an event is replayed), so a validly signed but forbidden step is caught by both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, cast

from .budget import BudgetBook
from .definitions import BudgetCatalogue, BudgetLine
from .errors import ActorNotAllowed, DataInvalid, GuardRefused
from .limits import (
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENTS,
    MAX_BANK,
    MAX_BANK_ACCOUNT,
    MAX_DESCRIPTION,
    MAX_INVOICE_NUMBER,
    MAX_INVOICE_SERIES,
    MAX_PAYEE,
    MAX_QUANTITY,
    MAX_TITLE,
    MAX_VOUCHER,
)
from .money import MAX_AMOUNT_VND, format_vnd


@dataclass(frozen=True)
class GuardContext:
    """Everything a guard may look at: no database, no clock beyond the event's own date."""

    actor: str
    owner: str
    forwarded_by: str | None
    content: Mapping[str, Any]
    catalogue: BudgetCatalogue | None
    book: BudgetBook
    data: Mapping[str, Any] = field(default_factory=dict)
    today: date | None = None
    # the school's local date of the step (dated rules, e.g. the quote rule at submission)
    local_day: date | None = None
    requested_on: date | None = None  # the date of the request's first event (its submission)
    approved_by: str | None = None  # who approved it (the principal, or whoever signed for them)


Guard = Callable[[GuardContext], None]


def _line(ctx: GuardContext) -> BudgetLine:
    if ctx.catalogue is None:
        raise GuardRefused(
            "Không có kế hoạch ngân sách cho năm học này.",
            en="There is no budget plan for this school year.",
            rule="catalogue",
        )
    line = ctx.catalogue.lines.get(str(ctx.content.get("line")))
    if line is None:
        raise GuardRefused(
            f"Không có dòng ngân sách «{ctx.content.get('line')}».",
            en=f"There is no budget line “{ctx.content.get('line')}”.",
            rule="line",
            line=ctx.content.get("line"),
        )
    return line


def actor_is_owner(ctx: GuardContext) -> None:
    """Only the proposer may act on their own request."""
    if ctx.actor != ctx.owner:
        raise ActorNotAllowed(
            "Chỉ người lập đề xuất mới được thực hiện thao tác này.",
            en="Only the proposer may do this.",
            rule="actor_is_owner",
            owner=ctx.owner,
        )


def actor_not_owner(ctx: GuardContext) -> None:
    """Separation of duties: nobody reviews, approves or pays their own request."""
    if ctx.actor == ctx.owner:
        raise ActorNotAllowed(
            "Không được xem xét, duyệt hoặc chi cho đề xuất do chính mình lập.",
            en="Nobody reviews, approves or pays their own request.",
            rule="actor_not_owner",
        )


def actor_not_forwarder(ctx: GuardContext) -> None:
    """Separation of duties: the approver is not the reviewer who forwarded the request."""
    if ctx.forwarded_by is not None and ctx.actor == ctx.forwarded_by:
        raise ActorNotAllowed(
            "Người đã trình đề xuất không được tự duyệt đề xuất đó.",
            en="Whoever forwarded a request cannot also approve it.",
            rule="actor_not_forwarder",
        )


def actor_not_approver(ctx: GuardContext) -> None:
    """Separation of duties: a further approval (the district's) is not by whoever approved."""
    if ctx.approved_by is not None and ctx.actor == ctx.approved_by:
        raise ActorNotAllowed(
            "Người đã duyệt chi đề xuất không được duyệt thêm lần nữa ở bước sau.",
            en="Whoever approved a request cannot also give its further approval.",
            rule="actor_not_approver",
        )


def source_allowed(ctx: GuardContext) -> None:
    """The funding source must be one the budget line allows."""
    line = _line(ctx)
    source = ctx.content.get("source")
    if source not in line.sources:
        raise GuardRefused(
            f"Nguồn kinh phí «{source}» không được dùng cho «{line.name['vi']}».",
            en=f"The funding source “{source}” is not allowed for “{line.name['en']}”.",
            rule="source_allowed",
            line=line.code,
            source=source,
            allowed=list(line.sources),
        )


def within_norm(ctx: GuardContext) -> None:
    """The amount respects the line's norm (per time, per unit, per year or per N years)."""
    line = _line(ctx)
    norm = line.norm
    amount = int(ctx.content["amount_vnd"])
    name, name_en = line.name["vi"], line.name["en"]
    if norm.kind == "per_time" and amount > norm.amount_vnd:
        raise GuardRefused(
            f"Vượt định mức «{name}»: tối đa {format_vnd(norm.amount_vnd)} mỗi lần, "
            f"đề nghị {format_vnd(amount)}.",
            en=f"Over the norm of “{name_en}”: at most {format_vnd(norm.amount_vnd)} per time, "
            f"{format_vnd(amount)} asked.",
            rule="within_norm",
            line=line.code,
            norm=norm.amount_vnd,
            amount=amount,
        )
    if norm.kind == "per_unit":
        unit_price = int(ctx.content.get("unit_price_vnd") or 0)
        quantity = int(ctx.content.get("quantity") or 0)
        unit, unit_en = (norm.unit or {}).get("vi", ""), (norm.unit or {}).get("en", "")
        if unit_price > norm.amount_vnd:
            raise GuardRefused(
                f"Vượt định mức «{name}»: đơn giá tối đa {format_vnd(norm.amount_vnd)}/{unit}, "
                f"đề nghị {format_vnd(unit_price)}/{unit}.",
                en=f"Over the norm of “{name_en}”: at most {format_vnd(norm.amount_vnd)} per "
                f"{unit_en}, {format_vnd(unit_price)} per {unit_en} asked.",
                rule="within_norm",
                line=line.code,
                norm=norm.amount_vnd,
                amount=unit_price,
            )
        if norm.max_quantity is not None and quantity > norm.max_quantity:
            raise GuardRefused(
                f"Vượt định mức «{name}»: tối đa {norm.max_quantity} {unit}, đề nghị {quantity}.",
                en=f"Over the norm of “{name_en}”: at most {norm.max_quantity} {unit_en}, "
                f"{quantity} asked.",
                rule="within_norm",
                line=line.code,
                norm=norm.max_quantity,
                amount=quantity,
            )
    if norm.kind in ("per_year", "per_years"):
        year = int(ctx.content["budget_year"])
        first = year - norm.years + 1
        used = ctx.book.used_in_years(line.code, first, year)
        left = max(norm.amount_vnd - used, 0)
        if amount > left:
            period = f"năm {year}" if norm.years == 1 else f"{norm.years} năm {first}–{year}"
            period_en = f"{year}" if norm.years == 1 else f"{norm.years} years {first}–{year}"
            raise GuardRefused(
                f"Vượt định mức «{name}»: {format_vnd(norm.amount_vnd)} cho {period}, "
                f"đã dùng {format_vnd(used)}, còn {format_vnd(left)}, đề nghị {format_vnd(amount)}.",
                en=f"Over the norm of “{name_en}”: {format_vnd(norm.amount_vnd)} for "
                f"{period_en}, {format_vnd(used)} used, {format_vnd(left)} left, "
                f"{format_vnd(amount)} asked.",
                rule="within_norm",
                line=line.code,
                norm=norm.amount_vnd,
                used=used,
                left=left,
                amount=amount,
            )


def allocation_left(catalogue: BudgetCatalogue, line: BudgetLine, book: BudgetBook) -> int:
    """What is left of a line's allocation in a school year's plan."""
    used = book.used_of_allocation(catalogue.school_year, line.code)
    return max(line.allocation_vnd - used, 0)


def within_allocation(ctx: GuardContext) -> None:
    """The amount fits in what is left of the line's allocation."""
    line = _line(ctx)
    catalogue = cast(BudgetCatalogue, ctx.catalogue)  # _line refused a missing catalogue
    amount = int(ctx.content["amount_vnd"])
    left = allocation_left(catalogue, line, ctx.book)
    if amount > left:
        raise GuardRefused(
            f"Vượt phân bổ «{line.name['vi']}»: còn lại {format_vnd(left)} trên "
            f"{format_vnd(line.allocation_vnd)}, đề nghị {format_vnd(amount)}.",
            en=f"Over the allocation of “{line.name['en']}”: {format_vnd(left)} left of "
            f"{format_vnd(line.allocation_vnd)}, {format_vnd(amount)} asked.",
            rule="within_allocation",
            line=line.code,
            allocation=line.allocation_vnd,
            left=left,
            amount=amount,
        )


def quotes_attached(ctx: GuardContext) -> None:
    """Larger requests carry several supplier quotes."""
    if ctx.catalogue is None:
        return
    amount = int(ctx.content["amount_vnd"])
    attachments = ctx.content.get("attachments") or []
    # The rule in force on the day the request is submitted (this guard runs at submission).
    rule = ctx.catalogue.quote_rule_on(ctx.local_day)
    if amount > rule.above_vnd and len(attachments) < rule.min_quotes:
        raise GuardRefused(
            f"Đề xuất trên {format_vnd(rule.above_vnd)} cần ít nhất "
            f"{rule.min_quotes} báo giá đính kèm (hiện có {len(attachments)}).",
            en=f"Requests above {format_vnd(rule.above_vnd)} need at least "
            f"{rule.min_quotes} supplier quotes attached ({len(attachments)} now).",
            rule="quotes_attached",
            needed=rule.min_quotes,
            found=len(attachments),
            effective=rule.effective.isoformat(),
        )


def payment_recorded(ctx: GuardContext) -> None:
    """A payment names its voucher, its date and an amount no larger than approved."""
    check_payment(
        ctx.data,
        approved_amount=int(ctx.content["amount_vnd"]),
        today=ctx.today,
        content=ctx.content,
        requested_on=ctx.requested_on,
    )


GUARDS: Mapping[str, Guard] = {
    "actor_is_owner": actor_is_owner,
    "actor_not_owner": actor_not_owner,
    "actor_not_forwarder": actor_not_forwarder,
    "actor_not_approver": actor_not_approver,
    "source_allowed": source_allowed,
    "within_norm": within_norm,
    "within_allocation": within_allocation,
    "quotes_attached": quotes_attached,
    "payment_recorded": payment_recorded,
}


# --- data validation shared by engine and verifier -----------------------------------------

# NOTE: `today` is the event's UTC date; in Vietnam (UTC+7) the local date is a day ahead until
# 07:00, so a payment dated today, recorded early in the morning, must not look like the future.
PAYMENT_CLOCK_SLACK = timedelta(days=1)
# A payment is recorded when it is made, not years later; 1900-01-01 is a typing slip.
MAX_PAYMENT_AGE = timedelta(days=366)
_VOUCHER = re.compile(rf"^[\w./-]{{1,{MAX_VOUCHER}}}$", re.UNICODE)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_payment(
    data: Mapping[str, Any],
    *,
    approved_amount: int,
    today: date | None,
    content: Mapping[str, Any] | None = None,
    requested_on: date | None = None,
) -> None:
    """Validate the payment record carried by a pay event (and the invoice it is paid against)."""
    voucher = data.get("voucher")
    if not isinstance(voucher, str) or not _VOUCHER.match(voucher.strip()):
        raise DataInvalid(
            "Cần số chứng từ (ví dụ PC-2025-0031).",
            en="A voucher number is needed (for example PC-2025-0031).",
            field="voucher",
        )
    paid_on = data.get("paid_on")
    try:
        paid_date = date.fromisoformat(str(paid_on))
    except ValueError:
        raise DataInvalid(
            "Ngày thanh toán không hợp lệ.", en="The payment date is not valid.", field="paid_on"
        ) from None
    if today is not None and paid_date > today + PAYMENT_CLOCK_SLACK:
        raise DataInvalid(
            f"Ngày thanh toán {paid_date.isoformat()} ở tương lai (hôm nay là {today.isoformat()}).",
            en=f"The payment date {paid_date.isoformat()} is in the future (today is {today.isoformat()}).",
            field="paid_on",
        )
    if today is not None and paid_date < today - MAX_PAYMENT_AGE:
        raise DataInvalid(
            f"Ngày thanh toán {paid_date.isoformat()} quá xa trong quá khứ: chỉ ghi được khoản chi "
            f"trong vòng {MAX_PAYMENT_AGE.days} ngày trước hôm nay ({today.isoformat()}).",
            en=f"The payment date {paid_date.isoformat()} is too far in the past: a payment is "
            f"recorded within {MAX_PAYMENT_AGE.days} days of today ({today.isoformat()}).",
            field="paid_on",
        )
    amount = data.get("amount_paid_vnd")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise DataInvalid(
            "Số tiền đã chi phải lớn hơn 0.",
            en="The amount paid must be more than 0.",
            field="amount_paid_vnd",
        )
    if amount > approved_amount:
        raise DataInvalid(
            f"Số tiền đã chi {format_vnd(amount)} vượt số đã duyệt {format_vnd(approved_amount)}.",
            en=f"The amount paid {format_vnd(amount)} is more than the approved "
            f"{format_vnd(approved_amount)}.",
            field="amount_paid_vnd",
        )
    _check_invoice_at_payment(data, content or {}, paid_date, requested_on)


def _check_invoice_at_payment(
    data: Mapping[str, Any], content: Mapping[str, Any], paid: date, requested_on: date | None
) -> None:
    """The invoice paid against: entered now or at proposal, dated between request and payment."""
    if "invoice_number" in data or "invoice_series" in data or "invoice_date" in data:
        _check_invoice(data, required=True)
        invoice = data
    else:
        invoice = content
    text = invoice.get("invoice_date")
    if not text:
        return
    issued = date.fromisoformat(str(text))  # _check_invoice has read it
    if issued > paid:
        raise DataInvalid(
            f"Ngày hóa đơn {issued.isoformat()} sau ngày thanh toán {paid.isoformat()}.",
            en=f"The invoice date {issued.isoformat()} is after the payment date "
            f"{paid.isoformat()}.",
            field="invoice_date",
        )
    # NOTE: the request's date is the UTC date of its first event; a day of slack for UTC+7.
    if requested_on is not None and issued < requested_on - PAYMENT_CLOCK_SLACK:
        raise DataInvalid(
            f"Ngày hóa đơn {issued.isoformat()} trước ngày lập đề xuất "
            f"{requested_on.isoformat()}: chỉ chi cho hóa đơn sau khi đề xuất được lập.",
            en=f"The invoice date {issued.isoformat()} is before the request was made "
            f"({requested_on.isoformat()}): only invoices issued after the request are paid.",
            field="invoice_date",
        )


# --- the accountant's paperwork: payee, tax code, bank, invoice (issue 13) ------------------

PAYEE_KINDS = ("organisation", "person")
_TAX_CODE = re.compile(r"[0-9]{10}(?:-[0-9]{3})?")
_TAX_WEIGHTS = (31, 29, 23, 19, 17, 13, 7, 5, 3)
_BANK_ACCOUNT = re.compile(rf"[0-9A-Za-z]{{6,{MAX_BANK_ACCOUNT}}}")
_INVOICE_NUMBER = re.compile(rf"[0-9A-Za-z./-]{{1,{MAX_INVOICE_NUMBER}}}")
_INVOICE_SERIES = re.compile(rf"[0-9A-Za-z/-]{{1,{MAX_INVOICE_SERIES}}}")


def check_tax_code(value: str, *, person: bool = False) -> bool:
    """A Vietnamese tax code (mã số thuế): 10 digits, or 13 as 0123456789-001 for a branch.

    The tenth digit checks the first nine (weights 31, 29, 23, 19, 17, 13, 7, 5, 3 modulo 11,
    as python-stdnum's stdnum.vn.mst computes it; a test holds the two together). For a person
    (``person``) the 12-digit personal identification number is the tax code as well (Thông tư
    86/2024/TT-BTC, Article 5, from 1 July 2025): see check_personal_id.
    """
    if person and check_personal_id(value):
        return True
    if not _TAX_CODE.fullmatch(value):
        return False
    if value[2:9] == "0000000" or value.endswith("-000"):
        return False
    total = sum(w * int(d) for w, d in zip(_TAX_WEIGHTS, value, strict=False))
    return value[9] == str(10 - total % 11)


# The province codes that open a personal identification number (số định danh cá nhân), as listed
# by Thông tư 59/2021/TT-BCA (Phụ lục I): numbers issued before the 2025 merger of provinces
# keep them. The number has no check digit; the fourth digit gives sex and century (0-3 for
# people born 1900-2099), the next two the year of birth.
# fmt: off
_PROVINCE_CODES = frozenset(f"{n:03d}" for n in (
    1, 2, 4, 6, 8, 10, 11, 12, 14, 15, 17, 19, 20, 22, 24, 25, 26, 27, 30, 31, 33, 34, 35, 36, 37,
    38, 40, 42, 44, 45, 46, 48, 49, 51, 52, 54, 56, 58, 60, 62, 64, 66, 67, 68, 70, 72, 74, 75,
    77, 79, 80, 82, 83, 84, 86, 87, 89, 91, 92, 93, 94, 95, 96,
))
# fmt: on
_PERSONAL_ID = re.compile(r"[0-9]{3}[0-3][0-9]{8}")


def check_personal_id(value: str) -> bool:
    """A 12-digit personal identification number (căn cước): province code, sex/century, year."""
    return bool(_PERSONAL_ID.fullmatch(value)) and value[:3] in _PROVINCE_CODES


def require_tax_code(value: str, *, person: bool = False) -> None:
    """Refuse a tax code that check_tax_code does not accept, with a field error."""
    if not check_tax_code(value, person=person):
        raise _invalid(
            f"Mã số thuế «{value[:20]}» không hợp lệ: cần 10 chữ số (hoặc 13, dạng "
            "0123456789-001) với chữ số kiểm tra đúng; với cá nhân, có thể dùng số định danh "
            "cá nhân 12 chữ số.",
            f"The tax code “{value[:20]}” is not valid: 10 digits (or 13, written "
            "0123456789-001) with a correct check digit; for a person, the 12-digit personal "
            "identification number.",
            "tax_code",
        )


def _invalid(vi: str, en: str, name: str) -> DataInvalid:
    return DataInvalid(vi, en=en, field=name)


def _opt_text(content: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = content.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or _CONTROL.search(value):
        raise _invalid("Giá trị không hợp lệ.", "This value is not valid.", name)
    return value or None


def _check_invoice(invoice: Mapping[str, Any], *, required: bool) -> None:
    number = _opt_text(invoice, "invoice_number", MAX_INVOICE_NUMBER)
    series = _opt_text(invoice, "invoice_series", MAX_INVOICE_SERIES)
    issued = _opt_text(invoice, "invoice_date", 10)
    if number is None and series is None and issued is None and not required:
        return
    if number is None or not _INVOICE_NUMBER.fullmatch(number):
        raise _invalid(
            "Cần số hóa đơn (chữ số, ví dụ 00001234).",
            "An invoice number is needed (digits, for example 00001234).",
            "invoice_number",
        )
    if series is not None and not _INVOICE_SERIES.fullmatch(series):
        raise _invalid(
            "Ký hiệu hóa đơn chỉ gồm chữ và số (ví dụ 1C24TAA).",
            "The invoice series is letters and digits only (for example 1C24TAA).",
            "invoice_series",
        )
    try:
        date.fromisoformat(str(issued))
    except ValueError:
        raise _invalid(
            "Cần ngày hóa đơn hợp lệ.", "A valid invoice date is needed.", "invoice_date"
        ) from None


def check_paperwork(
    content: Mapping[str, Any], catalogue: BudgetCatalogue, line: BudgetLine
) -> None:
    """Payee, tax code, bank and invoice of a request (all optional unless the plan asks)."""
    payee = _opt_text(content, "payee", MAX_PAYEE)
    kind = content.get("payee_kind")
    if payee is None and line.payee_required:
        raise _invalid(
            f"Dòng «{line.name['vi']}» cần ghi người nhận tiền (đơn vị hoặc cá nhân).",
            f"The line “{line.name['en']}” needs a payee (organisation or person).",
            "payee",
        )
    if kind is not None and kind not in PAYEE_KINDS:
        raise _invalid("Chọn đơn vị hoặc cá nhân.", "Choose organisation or person.", "payee_kind")
    if payee is not None and kind is None:
        raise _invalid(
            "Ghi rõ người nhận là đơn vị hay cá nhân.",
            "Say whether the payee is an organisation or a person.",
            "payee_kind",
        )
    tax_code = _opt_text(content, "tax_code", 14)
    if tax_code is not None:
        require_tax_code(tax_code, person=kind == "person")
    account = _opt_text(content, "bank_account", MAX_BANK_ACCOUNT)
    bank = _opt_text(content, "bank", MAX_BANK)
    if account is not None and not _BANK_ACCOUNT.fullmatch(account):
        raise _invalid(
            "Số tài khoản chỉ gồm chữ số (6 đến 30 ký tự).",
            "The bank account is digits only (6 to 30 characters).",
            "bank_account",
        )
    if (account is None) != (bank is None):
        raise _invalid(
            "Cần cả số tài khoản và tên ngân hàng.",
            "Both the bank account and the bank are needed.",
            "bank" if bank is None else "bank_account",
        )
    if (tax_code or account) and payee is None:
        raise _invalid(
            "Mã số thuế và tài khoản thuộc về người nhận: cần ghi người nhận.",
            "A tax code or an account belongs to a payee: name the payee.",
            "payee",
        )
    _check_invoice(content, required=False)


def check_content(content: Mapping[str, Any], catalogue: BudgetCatalogue | None) -> None:
    """Validate the content a request binds: title, line, amounts, year, attachments."""
    title = content.get("title")
    if not isinstance(title, str) or not title.strip():
        raise DataInvalid(
            "Cần tiêu đề cho đề xuất.", en="The request needs a title.", field="title"
        )
    if len(title) > MAX_TITLE:
        raise DataInvalid(
            f"Tiêu đề dài quá {MAX_TITLE} ký tự.",
            en=f"The title is longer than {MAX_TITLE} characters.",
            field="title",
        )
    description = content.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise DataInvalid(
            f"Mô tả dài quá {MAX_DESCRIPTION} ký tự.",
            en=f"The details are longer than {MAX_DESCRIPTION} characters.",
            field="description",
        )
    if catalogue is None:
        raise DataInvalid(
            "Không có kế hoạch ngân sách cho năm học này.",
            en="There is no budget plan for this school year.",
            field="school_year",
        )
    line = catalogue.lines.get(str(content.get("line")))
    if line is None:
        raise DataInvalid(
            "Chọn một dòng ngân sách trong kế hoạch.",
            en="Choose a budget line of the plan.",
            field="line",
        )
    if content.get("source") not in catalogue.sources:
        raise DataInvalid("Chọn nguồn kinh phí.", en="Choose a funding source.", field="source")
    year = content.get("budget_year")
    if year not in catalogue.budget_years:
        raise DataInvalid(
            f"Năm ngân sách phải là một trong {', '.join(map(str, catalogue.budget_years))}.",
            en=f"The budget year must be one of {', '.join(map(str, catalogue.budget_years))}.",
            field="budget_year",
        )
    amount = _int_field(content, "amount_vnd", MAX_AMOUNT_VND, ("Số tiền", "The amount"))
    quantity = _int_field(content, "quantity", MAX_QUANTITY, ("Số lượng", "The quantity"))
    unit_price = _int_field(
        content, "unit_price_vnd", MAX_AMOUNT_VND, ("Đơn giá", "The unit price")
    )
    if quantity * unit_price != amount:
        raise DataInvalid(
            f"Số tiền {format_vnd(amount)} phải bằng số lượng × đơn giá "
            f"({quantity} × {format_vnd(unit_price)}).",
            en=f"The amount {format_vnd(amount)} must equal quantity × unit price "
            f"({quantity} × {format_vnd(unit_price)}).",
            field="amount_vnd",
        )
    if line.norm.kind != "per_unit" and quantity != 1:
        raise DataInvalid(
            "Dòng ngân sách này không tính theo số lượng.",
            en="This budget line is not counted by quantity.",
            field="quantity",
        )
    check_attachments(content.get("attachments", []))
    check_paperwork(content, catalogue, line)


def _int_field(content: Mapping[str, Any], name: str, maximum: int, label: tuple[str, str]) -> int:
    value = content.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise DataInvalid(
            f"{label[0]} phải là số nguyên dương.",
            en=f"{label[1]} must be a positive whole number.",
            field=name,
        )
    return value


def check_attachments(attachments: Any) -> None:
    """Attachments are a short list of {name, sha256} records."""
    if not isinstance(attachments, Sequence) or isinstance(attachments, str):
        raise DataInvalid(
            "Danh sách tệp đính kèm không hợp lệ.",
            en="The list of attachments is not valid.",
            field="attachments",
        )
    if len(attachments) > MAX_ATTACHMENTS:
        raise DataInvalid(
            f"Tối đa {MAX_ATTACHMENTS} tệp đính kèm.",
            en=f"At most {MAX_ATTACHMENTS} attachments.",
            field="attachments",
        )
    for item in attachments:
        if not _attachment_ok(item):
            raise DataInvalid(
                "Tệp đính kèm không hợp lệ.", en="An attachment is not valid.", field="attachments"
            )


ATTACHMENT_FIELDS = frozenset({"name", "sha256", "size", "type"})


def _attachment_ok(item: Any) -> bool:
    """An attachment record: a name and a sha256, optionally its size and media type."""
    return (
        isinstance(item, Mapping)
        and {"name", "sha256"} <= set(item) <= ATTACHMENT_FIELDS
        and isinstance(item["name"], str)
        and isinstance(item["sha256"], str)
        and bool(_SHA256.match(item["sha256"]))
        and (
            "size" not in item
            or (type(item["size"]) is int and 0 <= item["size"] <= MAX_ATTACHMENT_BYTES)
        )
        and ("type" not in item or isinstance(item["type"], str))
    )


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(value: Any, *, field: str, limit: int, multiline: bool = False) -> str:
    """A user's text: a string, within its length, without control characters; stripped."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataInvalid("Giá trị không hợp lệ.", en="This value is not valid.", field=field)
    text = value.strip()
    if len(text) > limit:
        raise DataInvalid(
            f"Dài quá {limit} ký tự.", en=f"Longer than {limit} characters.", field=field
        )
    if _CONTROL.search(text) or (not multiline and ("\n" in text or "\r" in text)):
        raise DataInvalid(
            "Có ký tự không hợp lệ.", en="It contains characters that are not allowed.", field=field
        )
    return text
