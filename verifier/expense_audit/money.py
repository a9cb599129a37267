"""Amounts in đồng: parse what Vietnamese users type, format the Vietnamese way."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .errors import AmountInvalid

MAX_AMOUNT_VND = 100_000_000_000  # 100 tỷ: far above any single school IT request
EXAMPLES = "1.800.000, 1,800,000, 1800000, 1tr8 hoặc 1,8tr"
EXAMPLES_EN = "1.800.000, 1,800,000, 1800000, 1tr8 or 1,8tr"

_GROUPED = re.compile(r"^\d{1,3}(?:([.,])\d{3})(?:\1\d{3})*$")
_PLAIN = re.compile(r"^\d+$")
_TR_INFIX = re.compile(r"^(\d{1,6})tr(\d{1,3})?$")  # 1tr8 = 1,800,000; 1tr85 = 1,850,000
_TR_DECIMAL = re.compile(r"^(\d{1,6}(?:[.,]\d{1,6})?)(?:tr|triệu|trieu)$")
_CURRENCY = re.compile(r"(₫|đồng|dong|vnđ|vnd|đ)$")


def parse_amount(text: object) -> int:
    """Parse an amount in đồng; refuse anything ambiguous rather than misread it."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise _refusal("empty")
    raw = str(text).strip().lower().replace(" ", "").replace("\u00a0", "")
    raw = _CURRENCY.sub("", raw)
    if len(raw) > 32:  # NOTE: also keeps int() away from its 4300-digit limit
        raise _refusal("unreadable", text=str(text)[:40])
    if raw.startswith("-"):
        raise _refusal("negative")
    value = _parse_digits(raw)
    if value is None:
        raise _refusal("unreadable", text=str(text)[:40])
    if value <= 0:
        raise _refusal("zero")
    if value > MAX_AMOUNT_VND:
        raise _refusal("too_large")
    return value


def _parse_digits(raw: str) -> int | None:
    if not raw:
        return None
    if _PLAIN.match(raw):
        return int(raw)
    if _GROUPED.match(raw):
        return int(re.sub(r"[.,]", "", raw))
    infix = _TR_INFIX.match(raw)
    if infix:
        millions, fraction = infix.group(1), infix.group(2) or ""
        return int(millions) * 1_000_000 + int(fraction.ljust(3, "0") or "0") * 1_000
    decimal = _TR_DECIMAL.match(raw)
    if decimal:
        try:
            amount = Decimal(decimal.group(1).replace(",", ".")) * 1_000_000
        except InvalidOperation:
            return None
        return int(amount) if amount == amount.to_integral_value() else None
    return None


def _refusal(reason: str, text: str = "") -> AmountInvalid:
    messages = {
        "empty": ("Chưa nhập số tiền.", "No amount was entered."),
        "negative": ("Số tiền không được âm.", "The amount cannot be negative."),
        "zero": ("Số tiền phải lớn hơn 0.", "The amount must be more than 0."),
        "too_large": (
            f"Số tiền vượt quá mức tối đa {format_vnd(MAX_AMOUNT_VND)}.",
            f"The amount is above the maximum of {format_vnd(MAX_AMOUNT_VND)}.",
        ),
        "unreadable": (
            f"Không hiểu số tiền «{text}». Ví dụ hợp lệ: {EXAMPLES}.",
            f"Amount “{text}” not understood. Examples: {EXAMPLES_EN}.",
        ),
    }
    vi, en = messages[reason]
    return AmountInvalid(vi, en=en, reason=reason)


def format_vnd(amount: int) -> str:
    """Format đồng the Vietnamese way: 1.800.000 ₫."""
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount):,}".replace(",", ".") + " ₫"


# --- amounts in words (số tiền bằng chữ) -----------------------------------------------------
#
# NOTE: written here, not taken from num2words: its Vietnamese reads 1,000,005 as "một triệu lẻ
# năm" and 2024 as "hai nghìn lẻ hai mươi bốn", where accounting papers write "Một triệu không
# trăm linh năm đồng" and "Hai nghìn không trăm hai mươi tư đồng": every group after the first
# says its hundreds (even "không trăm"), a zero ten reads "linh", and after "mươi" one is "mốt",
# four is "tư" and five is "lăm" (five is "lăm" after "mười" too).

_DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
_GROUPS = ("", "nghìn", "triệu")


def _group_words(value: int, *, leading: bool) -> list[str]:
    """One group of three digits; a leading group omits its zero hundreds and zero ten."""
    hundreds, tens, units = value // 100, value // 10 % 10, value % 10
    words: list[str] = []
    if hundreds or not leading:
        words += [_DIGITS[hundreds], "trăm"]
    if tens == 0:
        if units and words:
            words.append("linh")
    elif tens == 1:
        words.append("mười")
    else:
        words += [_DIGITS[tens], "mươi"]
    if units == 0:
        return words
    if units == 1 and tens >= 2:
        words.append("mốt")
    elif units == 4 and tens >= 2:
        words.append("tư")
    elif units == 5 and tens >= 1:
        words.append("lăm")
    else:
        words.append(_DIGITS[units])
    return words


def _below_billion(value: int, *, leading: bool) -> list[str]:
    """0 < value < 10**9 in words; after a higher part (leading=False) every group says its
    hundreds. All-zero groups are silent."""
    groups = (value // 1_000_000, value // 1000 % 1000, value % 1000)
    words: list[str] = []
    for group, name in zip(groups, ("triệu", "nghìn", ""), strict=True):
        if group == 0:
            continue
        words += _group_words(group, leading=leading and not words)
        if name:
            words.append(name)
    return words


def _words(value: int, *, leading: bool) -> list[str]:
    if value >= 1_000_000_000:
        high, low = divmod(value, 1_000_000_000)
        low_words = _below_billion(low, leading=False) if low else []
        return [*_words(high, leading=leading), "tỷ", *low_words]
    return _below_billion(value, leading=leading)


def amount_in_words(amount: int) -> str:
    """An amount of đồng in words as Vietnamese accounting papers write it.

    1_000_005 -> "Một triệu không trăm linh năm đồng"; 2024 -> "Hai nghìn không trăm hai mươi
    tư đồng"; 0 -> "Không đồng".
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError(f"an amount in words needs a non-negative integer, got {amount!r}")
    text = " ".join(_words(amount, leading=True)) if amount else "không"
    return f"{text[0].upper()}{text[1:]} đồng"
