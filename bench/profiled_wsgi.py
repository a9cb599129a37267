"""The app behind werkzeug's profiler, for `web_load.py --profile DIR`: one cProfile file per
request in $BENCH_PROFILE_DIR (wall-clock time, so waits for the write lock show too).

    python bench/profiled_wsgi.py DIR [PATTERN]   # the files whose name has PATTERN, summed

The files are named method.path.elapsed.time.prof (werkzeug's default), e.g.
POST.requests.2024-2025.0042.sign.61ms.1718000000.prof.
"""

from __future__ import annotations

import os
import pstats
import sys
from pathlib import Path
from typing import Any


def profiled() -> Any:
    from werkzeug.middleware.profiler import ProfilerMiddleware  # noqa: PLC0415

    from wsgi import app  # noqa: PLC0415

    return ProfilerMiddleware(app, stream=None, profile_dir=os.environ["BENCH_PROFILE_DIR"])


def summary(folder: Path, pattern: str, top: int = 40) -> None:
    """The summed profile of the matching requests, by cumulative time."""
    files = sorted(str(f) for f in folder.glob("*.prof") if pattern in f.name)
    if not files:
        raise SystemExit(f"no profile in {folder} matches {pattern!r}")
    stats = pstats.Stats(files[0])
    for name in files[1:]:
        stats.add(name)
    print(f"{len(files)} requests matching {pattern!r}")
    stats.files = []  # type: ignore[attr-defined]  # (not the list of every file again)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top // 2)


if __name__ == "__main__":
    summary(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "")
else:
    app = profiled()
