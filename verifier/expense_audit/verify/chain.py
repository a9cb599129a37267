"""Step 4: the chain. Sequence without gaps, links to the previous hash, one origin, and time.

NOTE: timestamps may not go back along the chain by more than CLOCK_TOLERANCE. The server reads
its clock just before it takes the head lock for some institution events, so two appends racing
for the lock can be written a second out of order; a clock step back (NTP) is also tolerated up to
this bound. The same tolerance applies to the final checkpoint's signed time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..canonical import GENESIS_PREV
from .report import Kind, Report

CLOCK_TOLERANCE = timedelta(minutes=5)


@dataclass
class Chain:
    origin: str | None = None
    expected_seq: int = 1
    last_seq: int = 0
    prev_hash: str = GENESIS_PREV
    latest: datetime | None = None  # the latest time seen so far
    latest_text: str = ""

    def link(self, seq: int, body: dict[str, Any], moment: datetime, report: Report) -> None:
        """Check one event's place in the chain (fields already type-checked)."""
        if seq != self.expected_seq:
            kind = (
                Kind.DUPLICATE
                if seq == self.last_seq
                else Kind.REORDERED
                if seq < self.expected_seq
                else Kind.GAP
            )
            report.add(seq, kind, f"expected seq {self.expected_seq}, found {seq}")
        if body["prev"] != self.prev_hash:
            report.add(
                seq,
                Kind.BROKEN_LINK,
                f"prev is {body['prev'][:16]}…, previous event is {self.prev_hash[:16]}…",
            )
        if self.origin is None:
            self.origin = body["origin"]
        elif body["origin"] != self.origin:
            report.add(seq, Kind.ORIGIN_MISMATCH, f"event origin {body['origin']!r:.80}")
        if self.latest is not None and moment < self.latest - CLOCK_TOLERANCE:
            report.add(
                seq,
                Kind.TIME_REVERSED,
                f"dated {body['ts']}, before {self.latest_text} earlier in the chain",
                body["request"],
            )
        if self.latest is None or moment > self.latest:
            self.latest, self.latest_text = moment, body["ts"]

    def advance(self, seq: int | None, claimed_hash: str) -> None:
        """Move past one line (seq None: a line too broken to read its number)."""
        self.prev_hash = claimed_hash
        if seq is None:
            self.expected_seq += 1
            return
        self.last_seq, self.expected_seq = seq, max(seq, self.expected_seq - 1) + 1
