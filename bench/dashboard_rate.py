"""The spending dashboard's cost on one school of 1k and 10k requests (SQLite).

    PYTHONPATH=bench python bench/dashboard_rate.py [--sizes 1000 10000]

What the district overview reads per school (``detail=False``: aggregates only), and a school's
dashboard page (medians of the waits, time per state over the finished requests' events: up to 4
per request, bench-only unsigned rows). Baseline in the same run: the ledger page's totals (one
aggregate query over the same table).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from populate import populate
from sqlalchemy import insert, select

from workflow.district_report import school_report
from workflow.keys import InstitutionKey
from workflow.ledger import LedgerFilter, totals_from_database
from workflow.models import AuditEvent, Request
from workflow.runtime import Runtime, Settings

NOW = datetime(2025, 3, 1, 3, 0)
PATHS = {
    "paid": ["submitted", "forwarded", "approved", "paid"],
    "rejected": ["submitted", "rejected"],
    "withdrawn": ["submitted", "withdrawn"],
}


def add_events(runtime: Runtime) -> int:
    """Bench-only events (unsigned) for every finished request, a day apart per step."""
    rows, seq = [], 1_000
    with runtime.transaction() as session:
        finished = session.execute(
            select(Request.number, Request.state).where(Request.state.in_(PATHS))
        ).all()
    for number, state in finished:
        previous = "draft"
        for day, to_state in enumerate(PATHS[state], 1):
            seq += 1
            body = {"v": 1, "request": number, "from": previous, "to": to_state, "seq": seq}
            rows.append(
                {
                    "seq": seq,
                    "hash": f"{seq:064x}",
                    "prev": f"{seq - 1:064x}",
                    "request": number,
                    "action": to_state,
                    "actor": "bench",
                    "key_id": "bench",
                    "ts": f"2024-11-{day:02d}T0{seq % 10}:00:00Z",
                    "body": json.dumps(body).encode(),
                    "sig": b"",
                }
            )
            previous = to_state
    with runtime.engine.begin() as connection:
        for start in range(0, len(rows), 5_000):
            connection.execute(insert(AuditEvent), rows[start : start + 5_000])
    return len(rows)


def timed(runtime: Runtime, work: object, repeat: int = 3) -> float:
    """The best of ``repeat`` runs, each in a fresh read-only session (after one warm-up)."""
    best = float("inf")
    for run in range(repeat + 1):
        start = time.perf_counter()
        with runtime.read_sessions() as session:
            work(session)  # type: ignore[operator]
        if run:
            best = min(best, time.perf_counter() - start)
    return best


def measure(folder: Path, size: int) -> None:
    keys = folder / f"keys{size}"
    InstitutionKey.create(keys)
    runtime = Runtime(
        replace(Settings(), database_url=f"sqlite:///{folder / f'd{size}.sqlite'}", keys_dir=keys),
        clock=lambda: NOW,
    )
    runtime.init_db()
    populate(runtime, size)
    events = add_events(runtime)
    definitions = runtime.definitions
    baseline = timed(runtime, lambda s: totals_from_database(s, LedgerFilter()))
    figures = {
        "overview": timed(runtime, lambda s: school_report(s, definitions, now=NOW, detail=False)),
        "school_page": timed(runtime, lambda s: school_report(s, definitions, now=NOW)),
    }
    for name, seconds in figures.items():
        print(
            json.dumps(
                {
                    "figure": f"dashboard_{name}",
                    "requests": size,
                    "events": events,
                    "seconds": round(seconds, 4),
                    "ratio_vs_ledger_totals": round(seconds / baseline, 1),
                }
            ),
            flush=True,
        )
    runtime.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            measure(Path(folder), size)


if __name__ == "__main__":
    main()
