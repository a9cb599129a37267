"""Password policy: long enough, and not one that an attacker tries first."""

from __future__ import annotations

from collections.abc import Iterable

from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from expense_audit.errors import DataInvalid

MIN_PASSWORD = 8
# zxcvbn's score: 0 too guessable, 1 very guessable, 2 somewhat guessable (guarded against online
# attacks, which is what login throttling leaves an attacker), 3 and 4 safely unguessable.
MIN_SCORE = 2
# NOTE: zxcvbn's cost grows with the length; what is past this still counts towards the length rule.
_SCORED_PREFIX = 64
_COMMON = frozenset(FREQUENCY_LISTS["passwords"])  # the 30,000 most common leaked passwords


def is_common_password(text: str) -> bool:
    """Whether ``text`` is among the most common leaked passwords."""
    return text.lower() in _COMMON


def check_password_policy(password: str, *, user_inputs: Iterable[str] = ()) -> None:
    """Raise DataInvalid when the password is short, common, or easy to guess for this person."""
    if len(password) < MIN_PASSWORD:
        raise DataInvalid(
            f"Mật khẩu cần ít nhất {MIN_PASSWORD} ký tự.",
            en=f"The password needs at least {MIN_PASSWORD} characters.",
            field="password",
        )
    if is_common_password(password):
        raise DataInvalid(
            "Mật khẩu này nằm trong danh sách mật khẩu phổ biến nhất: hãy chọn mật khẩu khác.",
            en="This password is on the list of the most common passwords: choose another.",
            field="password",
        )
    inputs = [part for value in user_inputs for part in value.replace("@", " ").split() if part]
    if zxcvbn(password[:_SCORED_PREFIX], user_inputs=inputs)["score"] < MIN_SCORE:
        raise DataInvalid(
            "Mật khẩu quá dễ đoán (ví dụ tên, ngày tháng, dãy phím): hãy dùng một cụm vài từ.",
            en="This password is too easy to guess (names, dates, keyboard rows): use a few words.",
            field="password",
        )
