"""Ledger exports of 5k to 100k rows: time and peak memory (streamed, not built in memory).

    python bench/export_rate.py [--sizes 5000 20000 50000 100000]

One database grows from the smallest size to the largest (at 1k rows the fetch batch is not full
yet, so memory from 5k on says whether it follows the page or the table).

Baseline in the same run: iterating the same rows from the database without writing anything.
Peak memory is the peak of Python allocations during the export (tracemalloc), measured in a
second pass so that tracing does not slow the timed one.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

from populate import populate

from workflow.keys import InstitutionKey
from workflow.ledger import LedgerFilter, rows_from_database, write_csv, write_xlsx
from workflow.runtime import Runtime, Settings


def run(runtime: Runtime, kind: str, out: Path) -> None:
    with runtime.transaction() as session:
        rows = rows_from_database(session, LedgerFilter(), runtime.definitions)
        if kind == "iterate":
            for _ in rows:
                pass
        elif kind == "csv":
            with out.open("w", encoding="utf-8", newline="") as handle:
                write_csv(rows, handle)
        else:
            write_xlsx(rows, str(out))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 50_000, 100_000])
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    results: dict[tuple[str, int], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        keys = Path(folder) / "keys"
        InstitutionKey.create(keys)
        runtime = Runtime(
            replace(
                Settings(),
                database_url=f"sqlite:///{Path(folder) / 'ledger.sqlite'}",
                keys_dir=keys,
            )
        )
        runtime.init_db()
        held = 0
        for size in sizes:
            populate(runtime, size - held, start=100_000 + held, seed=size)
            held = size
            with runtime.transaction() as session:
                ledger_rows = sum(1 for _ in rows_from_database(session, LedgerFilter(), None))
            for kind in ("iterate", "csv", "xlsx"):
                out = Path(folder) / f"ledger{size}.{kind}"
                start = time.perf_counter()
                run(runtime, kind, out)
                seconds = time.perf_counter() - start
                tracemalloc.start()
                run(runtime, kind, out)
                peak = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
                results[(kind, size)] = (seconds, peak)
                figure = {
                    "figure": f"ledger_{kind}",
                    "table_rows": size,
                    "ledger_rows": ledger_rows,
                    "seconds": round(seconds, 3),
                    "peak_mib": round(peak, 2),
                }
                if kind != "iterate":
                    base_seconds, base_peak = results[("iterate", size)]
                    figure["ratio_vs_iterate"] = round(seconds / base_seconds, 2)
                    figure["peak_vs_iterate"] = round(peak / max(base_peak, 1e-6), 2)
                    figure["file_mib"] = round(out.stat().st_size / 2**20, 2)
                figure["load"] = round(os.getloadavg()[0], 2)
                print(json.dumps(figure), flush=True)
        runtime.engine.dispose()
    small, large = sizes[0], sizes[-1]
    for kind in ("iterate", "csv", "xlsx"):
        (t1, m1), (t2, m2) = results[(kind, small)], results[(kind, large)]
        print(
            json.dumps(
                {
                    "figure": f"ledger_{kind}_growth",
                    "rows_ratio": large / small,
                    "time_ratio": round(t2 / t1, 1),
                    "peak_memory_ratio": round(m2 / m1, 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
