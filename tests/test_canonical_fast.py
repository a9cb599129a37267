"""The fast canonical form is RFC 8785 for every JSON value, or the package decides.

Signatures are made and checked over canonical bytes: if the fast path (json.dumps) ever wrote
other bytes than RFC 8785 for some value, an engine signature would fail in another verifier, or
a re-serialized body would pass as canonical.
"""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from expense_audit.canonical import canonical_json

TEXT = st.text(
    alphabet=st.one_of(
        st.characters(max_codepoint=0x7F),
        st.characters(min_codepoint=0x80, max_codepoint=0x2FFF),
        st.characters(min_codepoint=0xE000),  # includes characters beyond the BMP
        st.sampled_from(["\u2028", "\u007f", "\ufeff", "\U0001f600", '"', "\\", "/", "\x1f"]),
    ),
    max_size=12,
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.sampled_from([0, -1, 2**53 - 1, -(2**53) + 1]),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=20,
)


def _reference(value: Any) -> bytes | None:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, ValueError, TypeError):
        return None


@settings(max_examples=1500, deadline=None)
@given(VALUES)
def test_signed_bytes_are_rfc8785_for_any_value(value: Any) -> None:
    expected = _reference(value)
    if expected is None:
        return
    assert canonical_json(value) == expected


@given(st.one_of(st.integers(min_value=2**53), st.integers(max_value=-(2**53))))
def test_integers_beyond_2_53_never_take_the_fast_path(number: int) -> None:
    try:
        reference = rfc8785.dumps({"n": number})
    except (rfc8785.CanonicalizationError, ValueError):
        reference = None
    try:
        ours: bytes | None = canonical_json({"n": number})
    except (rfc8785.CanonicalizationError, ValueError):
        ours = None
    assert ours == reference
