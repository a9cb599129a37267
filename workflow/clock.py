"""Time source, injected so tests and demo data can fix it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Current UTC time without microseconds (events carry whole seconds)."""
    return datetime.now(UTC).replace(microsecond=0, tzinfo=None)


# NOTE: Vietnam keeps UTC+7 all year (no daylight saving), so a fixed offset needs no tz database.
VIETNAM = timezone(timedelta(hours=7), "ICT")


def local_time(ts: str | datetime) -> str:
    """An event time ("2025-01-14T02:05:00Z" or naive UTC) as people in Vietnam read it."""
    moment = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ") if isinstance(ts, str) else ts
    return moment.replace(tzinfo=UTC).astimezone(VIETNAM).strftime("%H:%M %d/%m/%Y")
