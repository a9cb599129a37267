"""Amounts in words (số tiền bằng chữ) as Vietnamese accountants write them on payment papers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from expense_audit.money import amount_in_words

CASES = [
    # The amounts of DOMAIN.md (norms of the two schools' plans).
    (1_000_000, "Một triệu đồng"),
    (500_000, "Năm trăm nghìn đồng"),
    (1_200_000, "Một triệu hai trăm nghìn đồng"),
    (1_800_000, "Một triệu tám trăm nghìn đồng"),
    (2_400_000, "Hai triệu bốn trăm nghìn đồng"),
    (6_000_000, "Sáu triệu đồng"),
    (18_000_000, "Mười tám triệu đồng"),
    (10_000_000, "Mười triệu đồng"),
    (15_000, "Mười lăm nghìn đồng"),
    (800_000_000, "Tám trăm triệu đồng"),
    (16_500_000, "Mười sáu triệu năm trăm nghìn đồng"),
    (5_000_000, "Năm triệu đồng"),
    (1_500_000, "Một triệu năm trăm nghìn đồng"),
    (2_500_000, "Hai triệu năm trăm nghìn đồng"),
    (1_300_000, "Một triệu ba trăm nghìn đồng"),
    (2_700_000, "Hai triệu bảy trăm nghìn đồng"),
    # The edge cases of the issue, and where num2words goes wrong.
    (0, "Không đồng"),
    (21, "Hai mươi mốt đồng"),
    (105, "Một trăm linh năm đồng"),
    (1_000_005, "Một triệu không trăm linh năm đồng"),  # num2words: "một triệu lẻ năm"
    (1_000_000_000, "Một tỷ đồng"),
    (2024, "Hai nghìn không trăm hai mươi tư đồng"),  # num2words: "hai nghìn lẻ hai mươi bốn"
    (1010, "Một nghìn không trăm mười đồng"),  # num2words: "một nghìn lẻ mười"
    (14, "Mười bốn đồng"),
    (15, "Mười lăm đồng"),
    (25, "Hai mươi lăm đồng"),
    (31, "Ba mươi mốt đồng"),
    (11, "Mười một đồng"),
    (1_005_000, "Một triệu không trăm linh năm nghìn đồng"),
    (1_001_000_000, "Một tỷ không trăm linh một triệu đồng"),
    (100_000_000_000, "Một trăm tỷ đồng"),
    (450_000, "Bốn trăm năm mươi nghìn đồng"),
    (1_275_000, "Một triệu hai trăm bảy mươi lăm nghìn đồng"),
]


@pytest.mark.parametrize(("amount", "words"), CASES)
def test_amount_in_words_as_accountants_write_it(amount: int, words: str) -> None:
    assert amount_in_words(amount) == words


@pytest.mark.parametrize("bad", [-1, 1.5, True, "100"])
def test_amount_in_words_refuses_what_is_not_an_amount(bad: object) -> None:
    with pytest.raises(ValueError, match="non-negative integer"):
        amount_in_words(bad)  # type: ignore[arg-type]


_DIGIT = {
    "không": 0, "một": 1, "mốt": 1, "hai": 2, "ba": 3, "bốn": 4, "tư": 4,
    "năm": 5, "lăm": 5, "sáu": 6, "bảy": 7, "tám": 8, "chín": 9,
}  # fmt: skip
_SCALE = {"nghìn": 1000, "triệu": 1_000_000}


def _read_back(text: str) -> int:
    """A reader of the words (test only): the words must say the number they were made from."""
    words = text.removesuffix(" đồng").lower().split()
    total = below = group = last = 0
    for word in words:
        if word in _DIGIT:
            last = _DIGIT[word]
        elif word == "trăm":
            group, last = group + last * 100, 0
        elif word == "mươi":
            group, last = group + last * 10, 0
        elif word == "mười":
            group += 10
        elif word in _SCALE:
            below, group, last = below + (group + last) * _SCALE[word], 0, 0
        elif word == "tỷ":
            total, below, group, last = (total + below + group + last) * 10**9, 0, 0, 0
        else:
            assert word == "linh", word
    return total + below + group + last


@given(st.integers(min_value=0, max_value=10**15))
def test_words_say_the_number_and_use_accounting_forms(amount: int) -> None:
    text = amount_in_words(amount)
    assert _read_back(text) == amount
    words = text.lower().split()
    assert "lẻ" not in words and text.endswith(" đồng") and text[0].isupper()
    for before, word in zip(words, words[1:], strict=False):
        if word in ("mốt", "tư"):
            assert before == "mươi"
        if word == "lăm":
            assert before in ("mươi", "mười")
        if word == "linh":
            assert before == "trăm"
