"""Probes and metrics for the balancer and Prometheus; no session, no page."""

from __future__ import annotations

import hmac
import ipaddress

from flask import Response, abort, current_app, request

from workflow.operations import readiness

from ..context import runtime
from . import bp
from .metrics import exposition


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers (nothing else is checked, so a balancer never kills a node
    because the database is away)."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, object], int]:
    """Readiness: the database answers, its schema is at the head, the institution key loads."""
    rt = runtime()
    checks = readiness(rt.engine, institution=lambda: rt.institution, schema=rt.schema)
    ready = all(check.ok for check in checks)
    body: dict[str, object] = {
        "status": "ready" if ready else "not ready",
        "checks": {c.name: "ok" if c.ok else c.detail or "failed" for c in checks},
    }
    return body, 200 if ready else 503


def _may_scrape() -> bool:
    """With EXPENSES_METRICS_TOKEN, a bearer of that token; without, a loopback client that
    came through no proxy (a balancer on the same host would otherwise pass anyone's scrape)."""
    token = str(current_app.config.get("METRICS_TOKEN") or "")
    if token:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    if request.headers.get("X-Forwarded-For") or request.headers.get("Forwarded"):
        return False
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text exposition: counters of every worker and the log's figures."""
    if not _may_scrape():
        abort(403)
    return Response(exposition(runtime()), mimetype="text/plain; version=0.0.4; charset=utf-8")
