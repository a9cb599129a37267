"""A test-client helper that signs in and posts forms with their CSRF token, like a browser."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder, TestResponse

from workflow.demo import DEMO_PASSWORD

from .factories import SECRET

# One person per role, for `auth.login_as(role)`.
BY_ROLE = {
    "proposer": "hanh",
    "reviewer": "long",
    "approver": "toan",
    "accountant": "mai",
    "auditor": "kiem",
    "admin": "admin",
}


TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


class Browser:
    def __init__(self, app: Flask) -> None:
        self.client: FlaskClient = app.test_client()
        self.token = ""

    def get(self, url: str, **kwargs: Any) -> TestResponse:
        response = self.client.get(url, **kwargs)
        match = (
            TOKEN.search(response.get_data(as_text=True))
            if response.mimetype == "text/html"
            else None
        )
        if match:
            self.token = match.group(1)
        return response

    def post(self, url: str, data: dict[str, Any] | None = None, **kwargs: Any) -> TestResponse:
        if not self.token:
            self.get("/login")
        payload = {"csrf_token": self.token, **(data or {})}
        # NOTE: an explicit builder, closed afterwards: large multipart bodies are spooled to a
        # temporary file that the plain test client would leave open.
        builder = EnvironBuilder(path=url, method="POST", data=payload, **kwargs)
        environ = builder.get_environ()
        try:
            return self.client.open(environ)
        finally:
            environ["wsgi.input"].close()
            builder.close()

    def post_json(self, url: str, body: dict[str, Any]) -> TestResponse:
        """POST a JSON body with the page's CSRF token in the header, as the page scripts do."""
        if not self.token:
            self.get("/login")
        return self.client.post(url, json=body, headers={"X-CSRFToken": self.token})

    def login(self, login: str, password: str = DEMO_PASSWORD) -> Browser:
        self.get("/login")
        response = self.post("/login", {"login": login, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        # a page after signing in: the session (and its CSRF token) is new from here on
        self.get("/", follow_redirects=True)
        return self

    def act(self, number: str, trigger: str, secret: str = SECRET, **fields: Any) -> TestResponse:
        self.get(f"/requests/{number}")
        return self.post(
            f"/requests/{number}/act", {"trigger": trigger, "secret": secret, **fields}
        )


class AuthActions:
    """Sign in as a demo person: ``login`` on the test's ``client``, ``session`` in a new one."""

    def __init__(self, app: Flask, client: Browser) -> None:
        self.app, self.client = app, client

    def login(self, login: str = "hanh", password: str = DEMO_PASSWORD) -> Browser:
        return self.client.login(login, password)

    def login_as(self, role: str) -> Browser:
        return self.login(BY_ROLE[role])

    def logout(self) -> Any:
        return self.client.post("/logout")

    def session(self, login: str | None) -> Browser:
        """Another person's browser, signed in (or anonymous for None)."""
        browser = Browser(self.app)
        return browser.login(login, DEMO_PASSWORD) if login else browser


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)
