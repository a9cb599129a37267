"""What a phone downloads, and how long a request with one photo takes on slow 3G.

    python bench/phone_bytes.py [--no-slow3g]

Serves the app of this checkout on 127.0.0.1 (werkzeug, in a thread) and drives Debian's
Chromium at phone size through Playwright. Bytes are counted where they leave the server (a
WSGI wrapper: headers and bodies of every response, the service worker's own fetches
included), raw and as gzip would send the text responses (nginx in front usually does).

- first visit: a new phone signs in, lands on "My requests" and opens the new-request form;
- repeat visit: the same phone, later, opens "My requests" and the form again;
- slow 3G (DevTools preset: 2 s latency, 50 kB/s each way): a request with one 4000x3000
  photo, from "Save draft" until the draft's page is shown.

Run it on an older checkout too (same script) for the before/after figures.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from workflow import journeys
from workflow.demo import DEMO_PASSWORD, create_people
from workflow.keys import InstitutionKey
from workflow.runtime import Runtime, Settings

PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "locale": "vi-VN",
}
SLOW_3G = {
    "offline": False,
    "latency": 2000,
    "downloadThroughput": 50_000,
    "uploadThroughput": 50_000,
}
TEXT = ("text/", "application/javascript", "application/json", "application/manifest+json")


class Meter:
    """Counts what the server sends: every header and body byte, per phase."""

    def __init__(self, app: Any) -> None:
        self.app, self.raw, self.gzipped, self.requests = app, 0, 0, 0
        self.lock = threading.Lock()

    def reset(self) -> dict[str, int]:
        with self.lock:
            figures = {"bytes": self.raw, "gzip_bytes": self.gzipped, "requests": self.requests}
            self.raw = self.gzipped = self.requests = 0
        return figures

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        seen: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            seen["head"] = len(status) + sum(len(k) + len(v) + 4 for k, v in headers) + 15
            seen["type"] = dict(headers).get("Content-Type", "")
            return start_response(status, headers, *rest)

        body = b"".join(self.app(environ, start))
        packed = gzip.compress(body, 6) if seen["type"].startswith(TEXT) and body else body
        with self.lock:
            self.requests += 1
            self.raw += seen["head"] + len(body)
            self.gzipped += seen["head"] + min(len(body), len(packed))
        return [body]


def photo(path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    light = Image.linear_gradient("L").resize((4000, 3000)).point(lambda v: 200 + v // 8)
    paper = Image.blend(light, Image.effect_noise((4000, 3000), 6), 0.15).convert("RGB")
    draw = ImageDraw.Draw(paper)
    font = ImageFont.load_default(size=44)
    for row in range(40):
        draw.text(
            (300, 250 + row * 62),
            f"{row + 1:02d}. SSD 1TB đơn giá 1.250.000 VAT 10%",
            fill=(20, 20, 30),
            font=font,
        )
    paper.save(path, "JPEG", quality=95)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-slow3g", action="store_true")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from webapp import create_app

    folder = Path(tempfile.mkdtemp(prefix="phone-bytes-"))
    keys = folder / "keys"
    InstitutionKey.create(keys)
    settings = replace(Settings(), database_url=f"sqlite:///{folder}/db.sqlite", keys_dir=keys)
    runtime = Runtime(settings)
    runtime.init_db()
    with runtime.transaction() as session:
        create_people(runtime, session)
    for i in range(5):
        journeys.propose(runtime, **{**journeys.SMALL_REQUEST, "title": f"EnetViet {i}"})
    app = create_app({"SETTINGS": settings, "ATTACHMENTS_DIR": str(folder / "files")})
    meter = Meter(app.wsgi_app)
    app.wsgi_app = meter  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    figures: dict[str, Any] = {"checkout": str(Path(__file__).resolve().parent.parent)}

    def settle(page: Any) -> None:
        page.wait_for_load_state("networkidle")
        time.sleep(1.5)  # the service worker's own fetches (install, pages kept) finish

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        context = browser.new_context(base_url=base, **PHONE)
        page = context.new_page()
        meter.reset()
        page.goto("/login")
        page.fill("#login", "hanh")
        page.fill("#password", DEMO_PASSWORD)
        page.click("button.primary")
        settle(page)
        page.goto("/requests/new")
        settle(page)
        figures["first_visit"] = meter.reset()
        page.close()
        page = context.new_page()
        page.goto("/requests/mine")
        settle(page)
        page.goto("/requests/new")
        settle(page)
        figures["repeat_visit"] = meter.reset()

        if not args.no_slow3g:
            picture = folder / "bao-gia.jpg"
            photo(picture)
            figures["photo_bytes"] = picture.stat().st_size
            page.goto("/requests/new")
            settle(page)
            page.set_default_timeout(300_000)  # the old form waits for the whole upload
            cdp = context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.emulateNetworkConditions", SLOW_3G)
            page.fill("#title", "Mua ổ cứng SSD")
            page.select_option("#line", "SW-ASSET")
            page.fill("#amount", "1.250.000")
            page.select_option("#budget_year", "2025")
            page.set_input_files("input[type=file][multiple]", str(picture))
            page.wait_for_timeout(3000)  # the photo is shrunk on the phone while she reads it over
            meter.reset()
            started = time.monotonic()
            page.click("button.primary.wide")
            page.wait_for_url("**/requests/2024-2025/*", timeout=300_000)
            page.wait_for_load_state()
            figures["slow3g_submit_seconds"] = round(time.monotonic() - started, 1)
            figures["slow3g_submit"] = meter.reset()
        browser.close()
    server.shutdown()
    json.dump(figures, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
