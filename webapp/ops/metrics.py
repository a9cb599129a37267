"""Prometheus metrics: counters kept by each process (multiprocess mode under gunicorn, with
PROMETHEUS_MULTIPROC_DIR) and the log's figures read from the database at each scrape."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from workflow.operations import Snapshot, snapshot
from workflow.runtime import Runtime

HTTP_REQUESTS = Counter(
    "expenses_http_requests", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "expenses_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REFUSALS = Counter(
    "expenses_refusals",
    "Steps and actions refused: the error's code and the guard",
    ["code", "rule"],
)


def count_refusal(code: str, rule: object = None) -> None:
    """One refusal a person was told about (``rule``: the guard that refused, if one did)."""
    REFUSALS.labels(code, str(rule or "")).inc()


Rows = Iterable[tuple[list[str], float]]


def _gauge(name: str, documentation: str, labels: list[str], rows: Rows) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, value in rows:
        family.add_metric(values, value)
    return family


class LogCollector(Collector):
    """The log's figures, from the database at scrape time: every node reports the same."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        waiting = sorted(
            {
                name
                for workflow in self.runtime.definitions.workflows.values()
                for name, state in workflow.states.items()
                if not state.final
            }
        )
        try:
            with self.runtime.read_sessions() as session:
                figures = snapshot(session, now=self.runtime.now(), waiting_states=waiting)
        except SQLAlchemyError:
            yield _gauge("expenses_database_up", "The database answered this scrape", [], [([], 0)])
            return
        yield _gauge("expenses_database_up", "The database answered this scrape", [], [([], 1)])
        yield from _log_metrics(figures, waiting)


def _log_metrics(figures: Snapshot, waiting: list[str]) -> Iterator[Metric]:
    o = figures.origin
    steps = CounterMetricFamily(
        "expenses_signed_steps", "Signed events in the log, by action", labels=["origin", "action"]
    )
    for action, count in sorted(figures.steps.items()):
        steps.add_metric([o, action], count)
    yield steps
    queues = sorted(figures.queues.items())
    yield _gauge(
        "expenses_requests",
        "Requests by state",
        ["origin", "state"],
        [([o, state], queue.count) for state, queue in queues],
    )
    yield _gauge(
        "expenses_request_oldest_age_seconds",
        "How long the request waiting longest in a state has waited there",
        ["origin", "state"],
        [([o, state], queue.oldest_age) for state, queue in queues if state in waiting],
    )
    statuses = sorted({"pending", "sending", "sent", "failed", *figures.outbox})
    yield _gauge(
        "expenses_outbox_mails",
        "Outbox mails by status (pending and sending: the backlog; failed: given up)",
        ["origin", "status"],
        [([o, status], figures.outbox.get(status, 0)) for status in statuses],
    )
    yield _gauge(
        "expenses_outbox_oldest_due_age_seconds",
        "Age of the oldest mail not yet delivered (0: none waiting)",
        ["origin"],
        [([o], figures.oldest_due_mail_age)],
    )
    checkpoint, verification = figures.checkpoint, figures.verification
    if checkpoint is not None:
        yield _gauge(
            "expenses_checkpoint_size",
            "Events the latest checkpoint covers",
            ["origin"],
            [([o], checkpoint.size)],
        )
        yield _gauge(
            "expenses_checkpoint_timestamp_seconds",
            "When the latest checkpoint was signed",
            ["origin"],
            [([o], checkpoint.at)],
        )
    if verification is not None:
        yield _gauge(
            "expenses_verification_timestamp_seconds",
            "When the log was last verified",
            ["origin"],
            [([o], verification.at)],
        )
        yield _gauge(
            "expenses_verification_size",
            "Events the last verification covered",
            ["origin"],
            [([o], verification.size)],
        )
        yield _gauge(
            "expenses_verification_valid",
            "1 if the last verification passed, else 0",
            ["origin"],
            [([o], 1 if verification.valid else 0)],
        )


class _ThisProcess(Collector):
    """The counters of this process, when there is no multiprocess folder (development)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def exposition(runtime: Runtime) -> bytes:
    """The text a Prometheus scrape gets: every worker's counters and the log's figures."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    registry.register(LogCollector(runtime))
    return generate_latest(registry)
