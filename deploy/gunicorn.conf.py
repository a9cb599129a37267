"""gunicorn settings for an app node: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`.

With PROMETHEUS_MULTIPROC_DIR set (a folder per node, emptied here at each start), every
worker's counters are summed at /metrics; a worker that exits is marked so its gauges go.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# The balancer's X-Request-ID reaches the app; gunicorn's own access log stays off (the app
# writes one line per request itself).
accesslog = None


def on_starting(server: Any) -> None:
    """Start the node's counters from zero: the last run's worker files would be summed in."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob("*.db"):
            stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """Forget an exited worker's live gauges (its counters stay in the sums)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
