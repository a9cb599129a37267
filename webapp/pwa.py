"""The installable app: the web manifest and the service worker, served from the site's root.

The worker's scope must be "/" to keep pages for offline reading, so it is served at /sw.js
rather than under /static. Its version is a hash of the files it keeps, so any change to them
installs a new worker, which fetches them afresh and drops the old copies.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

from flask import Flask, Response, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from .requests.routes import HOME_BY_ROLE

# What the worker keeps from its first install: enough for any page seen before to open offline.
PRECACHE = (
    "style.css",
    "app.js",
    "pwa.js",
    "offline-drafts.js",
    "photo-shrink.js",
    "favicon.svg",
    "offline.html",
)


@cache
def _version(folder: str) -> str:
    digest = hashlib.sha256()
    for name in PRECACHE:
        digest.update(name.encode() + b"\0" + (Path(folder) / name).read_bytes())
    return digest.hexdigest()[:16]


def register(app: Flask) -> None:
    """Add /sw.js and /manifest.webmanifest."""
    folder = str(app.static_folder)

    @app.get("/sw.js")
    def service_worker() -> BaseResponse:
        """The service worker, with the list and version of the files it keeps."""
        version = _version(folder) if not app.debug else _version.__wrapped__(folder)
        urls = [url_for("static", filename=name) for name in PRECACHE]
        script = (Path(folder) / "sw.js").read_text(encoding="utf-8")
        homes = [url_for(endpoint) for _, endpoint in HOME_BY_ROLE]
        for placeholder, value in (
            ('"__VERSION__"', version),
            ('["__PRECACHE__"]', urls),
            ('["__HOMES__"]', homes),
            ('"__ROOT__"', request.script_root),
        ):
            script = script.replace(placeholder, json.dumps(value))
        response = Response(script, mimetype="text/javascript")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Service-Worker-Allowed"] = request.script_root + "/"
        response.set_etag(version)
        return response.make_conditional(request)

    @app.get("/manifest.webmanifest")
    def manifest() -> BaseResponse:
        """The web app manifest (Vietnamese name; icons for Android and iOS)."""
        icons = [
            {
                "src": url_for("static", filename=f"icons/{name}.png"),
                "sizes": f"{size}x{size}",
                "type": "image/png",
                "purpose": purpose,
            }
            for name, size, purpose in (
                ("icon-192", 192, "any"),
                ("icon-512", 512, "any"),
                ("maskable-512", 512, "maskable"),
            )
        ]
        body = {
            "name": "Duyệt chi CNTT",
            "short_name": "Duyệt chi",
            "description": "Đề xuất, duyệt và chi mua sắm CNTT của trường",
            "lang": "vi",
            "dir": "ltr",
            # Under a multi-school deployment the app is the school's: /s/<code>/.
            "start_url": request.script_root + "/",
            "scope": request.script_root + "/",
            "id": request.script_root + "/",
            "display": "standalone",
            "background_color": "#ffffff",
            "theme_color": "#0b5cab",
            "icons": icons,
        }
        response = Response(
            json.dumps(body, ensure_ascii=False), mimetype="application/manifest+json"
        )
        response.headers["Cache-Control"] = "no-cache"
        response.add_etag()
        return response.make_conditional(request)
