"""Bench-only data: many request rows written straight into the projection table (no events),
to measure how page and export cost grows with the table. Never use this for real data."""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import insert

from expense_audit.projection import PROJECTION_FIELDS
from workflow import budget_totals
from workflow.models import Request
from workflow.runtime import Runtime

STATES = (
    ["paid"] * 40
    + ["approved"] * 20
    + ["submitted"] * 10
    + ["forwarded"] * 10
    + ["rejected"] * 10
    + ["withdrawn"] * 10
)
LINES = [
    "PRINT",
    "LMS",
    "SW-ASSET",
    "SW-IMAS",
    "WEB",
    "TRAINER",
]  # EnetViet stays free for signed scenarios


def populate(runtime: Runtime, count: int, *, start: int = 100_000, seed: int = 1) -> None:
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    with runtime.engine.begin() as connection:
        for i in range(count):
            state = rng.choice(STATES)
            amount = rng.randrange(100_000, 2_000_000, 10_000)
            row = dict.fromkeys(PROJECTION_FIELDS)
            row.update(
                number=f"2024-2025/{start + i:06d}",
                school_year="2024-2025",
                owner=rng.choice(["hanh", "nga"]),
                state=state,
                title=f"Đề xuất mẫu số {i}",
                description="Dữ liệu đo hiệu năng.",
                line=rng.choice(LINES),
                source="NSNN-TX",
                budget_year=rng.choice([2024, 2025]),
                quantity=1,
                unit_price_vnd=amount,
                amount_vnd=amount,
                attachments=[],
                created_at="2024-10-01T01:00:00Z",
                updated_at=f"2024-{10 + i % 3:02d}-{1 + i % 28:02d}T0{i % 10}:00:00Z",
                last_seq=0,
            )
            if state in ("approved", "paid"):
                row.update(approved_by="toan", approved_hash=f"{i:064x}", forwarded_by="long")
            if state == "paid":
                row.update(
                    paid_by="mai", voucher=f"PC-{i}", paid_on="2025-01-13", amount_paid_vnd=amount
                )
            rows.append(row)
            if len(rows) == 5000:
                connection.execute(insert(Request), rows)
                rows = []
        if rows:
            connection.execute(insert(Request), rows)
    with runtime.transaction() as session:
        budget_totals.rebuild(session)  # bench rows bypass act(), so derive the totals once
