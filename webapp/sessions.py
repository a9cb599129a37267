"""The session cookie is written only by the responses that may change it.

Flask re-sends the signed session cookie with every response whose session counts as modified,
and flask-login's strong protection marks every request of a visitor not yet signed in as one
that modified it. A phone fetches files in the background (the service worker, the manifest,
icons, scripts) while a page is in use; when such an answer, carrying the cookie of the moment
its request left, arrives after the answer to "sign in", it puts the signed-out session back and
the person finds the sign-in page again. Files and probes never change a session, so their
answers write no cookie at all.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface, SessionMixin

# Endpoints fetched in the background or by machines: they read the session at most.
QUIET_ENDPOINTS = frozenset(
    {"static", "service_worker", "manifest", "favicon", "ops.healthz", "ops.readyz", "ops.metrics"}
)


class QuietSessionInterface(SecureCookieSessionInterface):
    """Signed-cookie sessions, never saved by the answers of QUIET_ENDPOINTS."""

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if request.endpoint in QUIET_ENDPOINTS:
            return
        super().save_session(app, session, response)
