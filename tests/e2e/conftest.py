"""A real server on 127.0.0.1 and Debian's Chromium, driven by Playwright (pytest-playwright), at a
phone viewport: ``page`` is an anonymous phone on the served app, ``phone(login)`` a signed-in one."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from workflow.demo import DEMO_PASSWORD

from ..smtp_server import free_port

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--lang=vi-VN",
    # Pages are served at http://localhost:PORT (a secure context, and a valid WebAuthn RP ID,
    # which an IP address is not); the server listens on 127.0.0.1 only.
    "--host-resolver-rules=MAP localhost 127.0.0.1",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium (Playwright's own download is not used); one per run, shared by tests."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
        pytest.skip("Debian's chromium is not installed")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def base_url() -> str | None:
    """Each test serves its own app (``server``); this replaces the plugin's fixture of the same
    name, written in a form pytest 9 deprecates (filterwarnings = error would fail the test)."""
    return None


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    """Every context is a phone in Vietnamese that may download files."""
    return {**browser_context_args, **PHONE, "locale": "vi-VN", "accept_downloads": True}


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    """The test's app served on 127.0.0.1 by werkzeug, in a thread, reached as localhost (the
    relying party of its passkeys)."""
    port = free_port()
    url = f"http://localhost:{port}"
    app.config.update(RP_ID="localhost", WEBAUTHN_ORIGINS=[url])
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield url
    httpd.shutdown()
    thread.join(10)
    httpd.server_close()


@pytest.fixture
def page(new_context: Callable[..., Any], server: str) -> Any:
    """A phone (390x844) on the served app, not signed in."""
    return new_context(base_url=server).new_page()


@pytest.fixture
def phone(new_context: Callable[..., Any], server: str) -> Callable[[str], Any]:
    """``phone(login)``: a new phone on the served app, signed in as that demo person."""

    def signed_in(login: str) -> Any:
        page = new_context(base_url=server).new_page()
        page.goto("/login")
        page.fill("#login", login)
        page.fill("#password", DEMO_PASSWORD)
        page.click("button.primary")
        page.wait_for_load_state()
        return page

    return signed_in


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: SCREENSHOT_DIR if set (to look at them), else a temporary folder."""
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core from the npm registry (scripts/test.sh installs it into tests/e2e/node_modules)."""
    path = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `npm ci` in tests/e2e (scripts/test.sh does)")
    return path.read_text(encoding="utf-8")
