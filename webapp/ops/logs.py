"""Structured logs: one line per request (JSON with EXPENSES_LOG_FORMAT=json, readable text by
default), errors and mail delivery, each carrying the request id and the log's origin."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import Any

from flask import Flask, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
# NOTE: a client's id is echoed into headers and logs: only a short, plain token is believed.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_HANDLER_MARK = "_expenses_handler"
LOGGERS = ("webapp", "workflow")  # the app's logger (Flask logs errors there) and the core's
request_log = logging.getLogger("webapp.requests")


class RequestContext(logging.Filter):
    """Adds the request id (inside a request) and the log's origin to every record."""

    def __init__(self, origin: str) -> None:
        super().__init__()
        self.origin = origin

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        if not hasattr(record, "origin"):
            record.origin = self.origin
        return True


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a line is written (test runners swap it)."""

    _chosen: Any = None

    @property
    def stream(self) -> Any:
        return self._chosen or sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        self._chosen = None if value is sys.stderr else value


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [{rid}]" if rid else line


def configure(app: Flask, *, origin: str) -> None:
    """Send the app's and the core's logs to stderr, as JSON lines or readable text."""
    handler = _Stderr(app.config.get("LOG_STREAM") or sys.stderr)
    if str(app.config["LOG_FORMAT"]).lower() == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(_Text("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RequestContext(origin))
    setattr(handler, _HANDLER_MARK, True)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
            logger.removeHandler(old)  # a second create_app (tests) replaces, never doubles
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def start_request() -> None:
    """Take the client's X-Request-ID if it is a plain token, else make one; start the clock."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = given if _CLIENT_ID.fullmatch(given) else uuid.uuid4().hex
    g.request_started = time.perf_counter()


def finish_request(response: Any, *, route: str) -> float:
    """Echo the request id and write the request's line; returns the duration in seconds."""
    if "request_id" not in g:  # a hook before ours answered (refused NUL byte, say)
        start_request()
    response.headers[REQUEST_ID_HEADER] = g.request_id
    duration = time.perf_counter() - float(g.request_started)
    user = g.get("_login_user")  # only if this request loaded it: logging costs no query
    login = getattr(user, "login", None)
    request_log.info(
        "%s %s %s %.1f ms",
        request.method,
        route,
        response.status_code,
        duration * 1000,
        extra={
            "method": request.method,
            "route": route,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round(duration * 1000, 1),
            "user": login,
        },
    )
    return duration
