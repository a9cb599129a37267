"""Ledger exports of 1k and 100k rows: time and peak memory (streamed, not built in memory).

    python bench/export_rate.py [--sizes 1000 100000]

Baseline in the same run: iterating the same rows from the database without writing anything.
Peak memory is the peak of Python allocations during the export (tracemalloc), measured in a
second pass so that tracing does not slow the timed one.
"""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    args = parser.parse_args()
    results: dict[tuple[str, int], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            keys = Path(folder) / f"keys{size}"
            InstitutionKey.create(keys)
            runtime = Runtime(
                replace(
                    Settings(),
                    database_url=f"sqlite:///{Path(folder) / f'e{size}.sqlite'}",
                    keys_dir=keys,
                )
            )
            runtime.init_db()
            populate(runtime, size)
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
                    figure["ratio_vs_iterate"] = round(seconds / results[("iterate", size)][0], 2)
                    figure["file_mib"] = round(out.stat().st_size / 2**20, 2)
                print(json.dumps(figure), flush=True)
            runtime.engine.dispose()
    small, large = min(args.sizes), max(args.sizes)
    for kind in ("csv", "xlsx"):
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
