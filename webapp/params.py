"""Numbers from query strings and forms, which anyone can type."""

from __future__ import annotations

# NOTE: str.isdigit() accepts "²" and other Unicode digits that int() then refuses, and an
# unbounded int() of "1" * 30 overflows the database's BIGINT: both used to end in a 500.
MAX_BIGINT = 2**63 - 1


def parse_int(text: str | None, *, maximum: int = MAX_BIGINT) -> int | None:
    """A non-negative integer of ASCII digits up to ``maximum``, else None."""
    if not text or not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if value <= maximum else None
