"""App nodes as real processes (gunicorn) on loopback ports, and a small HTTP client for them."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from workflow.runtime import Settings

from .smtp_server import free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
SECRET_KEY = "a-secret-key-shared-by-every-node-0123456789"


def node_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a process of this deployment (the same on every node)."""
    env = {name: v for name, v in os.environ.items() if name != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "EXPENSES_KEYS": str(settings.keys_dir),
            "EXPENSES_ORIGIN": settings.origin,
            "EXPENSES_BASE_URL": settings.base_url,
            "EXPENSES_SECRET_KEY": SECRET_KEY,
            "EXPENSES_SCRYPT_N": str(settings.scrypt_n),
            **extra,
        }
    )
    return env


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str


@dataclass
class Node:
    """One gunicorn master with its workers, on its own port."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, settings: Settings, folder: Path, *, workers: int = 2, **env: str) -> Node:
        port = free_port()
        metrics = folder / f"metrics-{port}"
        metrics.mkdir(parents=True)
        log = folder / f"node-{port}.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}"]
                + ["-c", str(ROOT / "deploy" / "gunicorn.conf.py"), "--preload", "wsgi:app"],
                cwd=ROOT,
                env=node_env(settings, PROMETHEUS_MULTIPROC_DIR=str(metrics), **env),
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        node = cls(port, process, log)
        node._wait_ready()
        return node

    def _wait_ready(self) -> None:
        for _ in range(300):
            if self.process.poll() is not None:
                raise RuntimeError(f"node exited: {self.log.read_text()[-3000:]}")
            try:
                if self.request("GET", "/readyz").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"node not ready: {self.log.read_text()[-3000:]}")

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            body = urlencode(form) if form is not None else None
            sent = {"User-Agent": "node-test/1", **(headers or {})}
            if body is not None:
                sent["Content-Type"] = "application/x-www-form-urlencoded"
            connection.request(method, path, body=body, headers=sent)
            answer = connection.getresponse()
            return Response(
                answer.status, dict(answer.getheaders()), answer.read().decode("utf-8", "replace")
            )
        finally:
            connection.close()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)  # gunicorn's quick shutdown
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Browser:
    """One browser: its session cookie, sent to whichever node it talks to, and the address the
    balancer in front of the nodes vouches for (X-Forwarded-For)."""

    address: str = "192.0.2.1"
    cookie: str = ""
    token: str = ""
    seen: list[Response] = field(default_factory=list)

    def get(self, node: Node, path: str) -> Response:
        return self._keep(node.request("GET", path, headers=self._headers()))

    def post(self, node: Node, path: str, form: dict[str, str]) -> Response:
        if not self.token:
            self.get(node, "/login")
        return self._keep(
            node.request("POST", path, {"csrf_token": self.token, **form}, self._headers())
        )

    def login(self, node: Node, login: str, password: str) -> Response:
        self.get(node, "/login")
        return self.post(node, "/login", {"login": login, "password": password})

    def _headers(self) -> dict[str, str]:
        cookie = {"Cookie": f"session={self.cookie}"} if self.cookie else {}
        return {"X-Forwarded-For": self.address, **cookie}

    def _keep(self, response: Response) -> Response:
        cookie = response.headers.get("Set-Cookie", "")
        if cookie.startswith("session="):
            self.cookie = cookie.split(";", 1)[0].removeprefix("session=")
        match = TOKEN.search(response.body)
        if match:
            self.token = match.group(1)
        self.seen.append(response)
        return response
