"""Time source, injected so tests and demo data can fix it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Current UTC time without microseconds (events carry whole seconds)."""
    return datetime.now(UTC).replace(microsecond=0, tzinfo=None)
