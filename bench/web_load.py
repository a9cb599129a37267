"""Web latency under load: gunicorn on 127.0.0.1, a bounded load generator, percentiles.

    python bench/web_load.py [--users 20 50] [--requests 200] [--big 100000] [--postgres]

Production costs: every signing key is sealed with the default scrypt cost (EXPENSES_SCRYPT_N,
as `flask users add` makes them) and passwords use werkzeug's real hash; --demo-keys uses the
demo's cheap keys instead (the figures of issue 12). --big 0 skips the table-size part.

Scenarios (each bounded by --requests and by --seconds): the review queue page, submitting a
request (a signed step), approving one (a signed step), against the bare /healthz endpoint of
the same app at the same concurrency. Then the queue and ledger pages with 1k and with --big
requests in the table: the ratio shows whether their cost follows the page or the table.
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode

from populate import populate

from workflow import journeys
from workflow.demo import DEMO_PASSWORD, DEMO_SECRET, PEOPLE, create_people
from workflow.keys import DEFAULT_SCRYPT_N, InstitutionKey
from workflow.runtime import PROJECT_ROOT, Runtime, Settings

TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
COOKIE = re.compile(r"session=([^;]+)")


class Client:
    """One virtual user: its own connection and session cookie."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookie = ""
        self.token = ""

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, str]:
        headers = {"Cookie": f"session={self.cookie}"} if self.cookie else {}
        body = None
        if form is not None:
            body = urlencode({"csrf_token": self.token, **form})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        cookie = COOKIE.search(response.getheader("Set-Cookie") or "")
        if cookie:
            self.cookie = cookie.group(1)
        token = TOKEN.search(text)
        if token:
            self.token = token.group(1)
        return response.status, text

    def login(self, login: str) -> None:
        self.request("GET", "/login")
        status, _ = self.request("POST", "/login", {"login": login, "password": DEMO_PASSWORD})
        assert status == 302, status
        self.request("GET", "/requests/mine" if login in ("hanh", "nga") else "/")


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49] * 1000, 1),
        "p95_ms": round(cuts[94] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
    }


def load(
    port: int, users: int, total: int, seconds: float, login: str | None, make_request
) -> list[float]:  # type: ignore[no-untyped-def]
    """``users`` threads share ``total`` requests; each returns (method, path, form) per call."""
    samples: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))
    deadline = time.monotonic() + seconds

    def user() -> None:
        client = Client(port)
        if login:
            client.login(login)
        while time.monotonic() < deadline:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            method, path, form = make_request(index)
            start = time.perf_counter()
            status, text = client.request(method, path, form)
            elapsed = time.perf_counter() - start
            assert status in (200, 302), (
                path,
                status,
                re.findall(r"flash error[^>]*>([^<]+)", text),
            )
            with lock:
                samples.append(elapsed)

    threads = [threading.Thread(target=user) for _ in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


def production_people(runtime: Runtime) -> None:
    """The demo accounts with keys at the production scrypt cost (what `flask users add` does)."""
    with runtime.transaction() as session:
        directory = runtime.directory(session, scrypt_n=DEFAULT_SCRYPT_N)
        for person in PEOPLE:
            directory.create_user(
                login=person.login,
                name=person.name,
                email=f"{person.login}@th-demo.edu.vn",
                roles=person.roles,
                password=DEMO_PASSWORD,
                signing_secret=DEMO_SECRET if person.roles != ("auditor",) else None,
            )


def prepare(
    folder: Path,
    database_url: str,
    signed: int,
    *,
    demo_keys: bool,
    submits: bool = True,
    approvals: bool = True,
) -> tuple[Settings, list[str], list[str]]:
    keys = folder / "keys"
    InstitutionKey.create(keys)
    settings = replace(Settings(), database_url=database_url, keys_dir=keys)
    runtime = Runtime(settings)
    runtime.init_db()
    if demo_keys:
        with runtime.transaction() as session:
            create_people(runtime, session)
    else:
        production_people(runtime)
    drafts, forwarded = [], []
    for i in range(signed * 2):
        if (i % 2 and not approvals) or (not i % 2 and not submits):
            continue
        number = journeys.propose(runtime, **{**journeys.SMALL_REQUEST, "title": f"EnetViet {i}"})
        if i % 2:
            for _event in journeys.walk(runtime, number, DEMO_SECRET, until="forwarded"):
                pass
            forwarded.append(number)
        else:
            drafts.append(number)
    runtime.engine.dispose()
    return settings, drafts, forwarded


def gunicorn(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "EXPENSES_KEYS": str(settings.keys_dir),
        "EXPENSES_LOGIN_TRIES_PER_MINUTE": "10000",
    }
    binary = str(Path(sys.executable).parent / "gunicorn")
    handle = log.open("wb")
    server = subprocess.Popen(
        [
            binary,
            "-w",
            str(os.cpu_count() or 2),
            "--threads",
            "4",
            "-b",
            f"127.0.0.1:{port}",
            "wsgi:app",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=handle,
        stderr=handle,
    )
    for _ in range(200):
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
            return server
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(log.read_text())


def emit(**figure: object) -> None:
    print(json.dumps(figure), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--demo-keys", action="store_true", help="the demo's cheap keys")
    parser.add_argument(
        "--scenarios", nargs="+", default=["queue_page", "submit_signed", "approve_signed"]
    )
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument(
        "--postgres", action="store_true", help="a throw-away PostgreSQL cluster (scripts/pg.sh)"
    )
    args = parser.parse_args()
    if args.postgres:
        env = {
            "PG_TEST_PORT": "54349",
            "PG_TEST_DIR": "/tmp/expenses-pg-web",
            **os.environ,
            "PG_FSYNC": "on",  # production durability (synchronous_commit is on by default)
        }
        pg = PROJECT_ROOT / "scripts" / "pg.sh"
        started = subprocess.run(
            ["bash", str(pg), "start"], env=env, capture_output=True, text=True, check=True
        )
        try:
            run(args, started.stdout.strip().split("=", 1)[1])
        finally:
            subprocess.run(["bash", str(pg), "stop"], env=env, check=False)
    else:
        run(args, None)


def run(args: argparse.Namespace, postgres_url: str | None) -> None:
    """Every scenario against one database: SQLite in a temporary folder, or PostgreSQL."""
    sys.path.insert(0, str(PROJECT_ROOT / "tests"))
    from smtp_server import free_port  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        signed = args.requests * len(args.users)
        database_url = postgres_url or f"sqlite:///{folder / 'web.sqlite'}"
        emit(
            figure="database",
            name="postgresql" if postgres_url else "sqlite",
            keys="demo" if args.demo_keys else f"scrypt n={DEFAULT_SCRYPT_N}",
            load=round(os.getloadavg()[0], 2),
        )
        settings, drafts, forwarded = prepare(
            folder,
            database_url,
            signed,
            demo_keys=args.demo_keys,
            submits="submit_signed" in args.scenarios,
            approvals="approve_signed" in args.scenarios,
        )
        runtime = Runtime(settings)
        populate(runtime, 1_000)
        runtime.engine.dispose()
        port = free_port()
        server = gunicorn(settings, port, folder / "gunicorn.log")
        try:
            # NOTE: warm up every worker (the readiness probe answers once the first is up; the
            # first requests to a worker still importing the app took seconds).
            load(
                port, max(args.users), 200, args.seconds, None, lambda i: ("GET", "/healthz", None)
            )
            submits, approvals = iter(drafts), iter(forwarded)
            for users in args.users:
                bare = load(
                    port,
                    users,
                    args.requests,
                    args.seconds,
                    None,
                    lambda i: ("GET", "/healthz", None),
                )
                base = percentiles(bare)
                emit(
                    figure="bare_healthz",
                    users=users,
                    requests=len(bare),
                    **base,
                    load=round(os.getloadavg()[0], 2),
                )
                scenarios = {
                    "queue_page": ("long", lambda i: ("GET", "/review", None)),
                    "submit_signed": (
                        "hanh",
                        lambda i: (
                            "POST",
                            f"/requests/{next(submits)}/act",
                            {"trigger": "submit", "secret": DEMO_SECRET},
                        ),
                    ),
                    "approve_signed": (
                        "toan",
                        lambda i: (
                            "POST",
                            f"/requests/{next(approvals)}/act",
                            {"trigger": "approve", "secret": DEMO_SECRET},
                        ),
                    ),
                }
                for name, (login, make) in scenarios.items():
                    if name not in args.scenarios:
                        continue
                    started = time.perf_counter()
                    samples = load(port, users, args.requests, args.seconds, login, make)
                    wall = time.perf_counter() - started
                    figures = percentiles(samples)
                    emit(
                        figure=name,
                        users=users,
                        requests=len(samples),
                        **figures,
                        ratio_p50_vs_bare=round(figures["p50_ms"] / max(base["p50_ms"], 0.01), 1),
                        ratio_p95_vs_bare=round(figures["p95_ms"] / max(base["p95_ms"], 0.01), 1),
                        per_second=round(len(samples) / max(wall, 1e-9), 1),
                        load=round(os.getloadavg()[0], 2),
                    )
            pages: dict[tuple[str, int], float] = {}
            for rows in (1_000, args.big) if args.big else ():
                if rows != 1_000:
                    populate(Runtime(settings), rows - 1_000, start=200_000, seed=2)
                for name, login, path in (
                    ("queue_page", "long", "/review"),
                    ("ledger_page", "mai", "/ledger"),
                ):
                    samples = load(
                        port, 1, 40, args.seconds, login, lambda i, p=path: ("GET", p, None)
                    )
                    pages[(name, rows)] = percentiles(samples)["p50_ms"]
                    emit(
                        figure=f"{name}_by_table_size", table_rows=rows, p50_ms=pages[(name, rows)]
                    )
            for name in ("queue_page", "ledger_page") if args.big else ():
                emit(
                    figure=f"{name}_growth",
                    table_ratio=args.big / 1_000,
                    p50_ratio=round(pages[(name, args.big)] / pages[(name, 1_000)], 2),
                )
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
