"""A district deployment under load: many schools on one PostgreSQL, one gunicorn node.

    python bench/district_load.py --database-url postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
        [--schools 100] [--users 20] [--requests 400]

Two runs in the same process against the same kind of deployment (EXPENSES_MULTI_SCHOOL=1,
gunicorn on 127.0.0.1): --schools schools with the virtual users spread over them (user i works
in schools i, i+users, ...), then one school with every user in it. Scenarios: a signed step
(submit, POST /s/<code>/requests/<n>/act) and the review queue page (GET /s/<code>/review).
JSON lines: p50/p95/p99 per run and scenario, and the ratio of the many-school run to the
one-school run. Each run has a fresh database on the given cluster (dropped afterwards); only
127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import create_engine, text
from web_load import emit, percentiles

from workflow import journeys
from workflow.demo import DEMO_PASSWORD, DEMO_SECRET, create_people
from workflow.runtime import PROJECT_ROOT, Settings
from workflow.tenancy import District

TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


class SchoolClient:
    """One virtual user in one school: its connection, the school's session cookie."""

    def __init__(self, port: int, code: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.prefix, self.name = f"/s/{code}", f"session_{code}"
        self.cookie, self.token = "", ""

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> int:
        headers = {"Cookie": f"{self.name}={self.cookie}"} if self.cookie else {}
        body = None
        if form is not None:
            body = urlencode({"csrf_token": self.token, **form})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.connection.request(method, self.prefix + path, body=body, headers=headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # gunicorn closed the idle keep-alive connection before reading the request
            self.connection.close()
            self.connection.connect()
            self.connection.request(method, self.prefix + path, body=body, headers=headers)
            response = self.connection.getresponse()
        page = response.read().decode("utf-8", "replace")
        cookie = re.search(rf"{self.name}=([^;]+)", response.getheader("Set-Cookie") or "")
        if cookie:
            self.cookie = cookie.group(1)
        token = TOKEN.search(page)
        if token:
            self.token = token.group(1)
        return response.status

    def login(self, login: str) -> SchoolClient:
        self.request("GET", "/login")
        status = self.request("POST", "/login", {"login": login, "password": DEMO_PASSWORD})
        assert status == 302, status
        # a page of the signed-in session: its CSRF token is the one the posts need
        assert self.request("GET", "/requests/mine" if login == "hanh" else "/review") == 200
        return self


def prepare(district: District, schools: int, drafts_per_school: int) -> dict[str, list[str]]:
    """``schools`` schools with the demo people; returns each school's drafts to submit."""
    district.init()
    drafts: dict[str, list[str]] = {}
    for index in range(schools):
        code = f"s{index:03d}"
        district.add_school(
            code,
            name=f"Trường {code}",
            origin=f"{code}.edu.vn/expenses",
            admin_login="quantri",
            admin_email=f"quantri@{code}.edu.vn",
        )
        runtime = district.runtime(code)
        with runtime.transaction() as session:
            create_people(runtime, session, domain=f"{code}.edu.vn")
        drafts[code] = [
            journeys.propose(runtime, **{**journeys.SMALL_REQUEST, "title": f"EnetViet {i}"})
            for i in range(drafts_per_school)
        ]
    return drafts


def gunicorn(url: str, keys: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "EXPENSES_MULTI_SCHOOL": "1",
        "DATABASE_URL": url,
        "EXPENSES_KEYS": str(keys),
        "EXPENSES_SECRET_KEY": uuid.uuid4().hex * 2,
        "EXPENSES_LOGIN_TRIES_PER_MINUTE": "100000",
    }
    binary = str(Path(sys.executable).parent / "gunicorn")
    handle = log.open("wb")
    server = subprocess.Popen(
        [binary, "-w", str(os.cpu_count() or 2), "--threads", "4", "-b", f"127.0.0.1:{port}"]
        + ["wsgi:app"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=handle,
        stderr=handle,
    )
    for _ in range(400):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/district/login")
            connection.getresponse().read()
            return server
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(log.read_text())


def load(
    users: int,
    codes_of: Callable[[int], list[str]],
    clients: Callable[[int, str], SchoolClient],
    total: int,
    request_for: Callable[[SchoolClient, str], tuple[str, str, dict[str, str] | None] | None],
) -> list[float]:
    """``users`` threads share ``total`` requests; user i goes round its schools."""
    samples: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def user(number: int) -> None:
        codes = codes_of(number)
        turn = 0
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            code = codes[turn % len(codes)]
            turn += 1
            client = clients(number, code)
            with lock:
                planned = request_for(client, code)
            if planned is None:
                return
            method, path, form = planned
            start = time.perf_counter()
            status = client.request(method, path, form)
            elapsed = time.perf_counter() - start
            assert status in (200, 302), (path, status)
            with lock:
                samples.append(elapsed)

    threads = [threading.Thread(target=user, args=(n,)) for n in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


def run(admin_url: str, schools: int, users: int, requests: int) -> dict[str, dict[str, float]]:
    """One deployment of ``schools`` schools under ``users`` users; percentiles by scenario."""
    sys.path.insert(0, str(PROJECT_ROOT / "tests"))
    from smtp_server import free_port  # noqa: PLC0415

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"bench_district_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    figures: dict[str, dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            settings = replace(Settings(), database_url=url, keys_dir=folder / "keys")
            district = District(settings)
            started = time.perf_counter()
            drafts = prepare(district, schools, -(-requests // schools) + users)
            district.dispose()
            emit(figure="prepared", schools=schools, seconds=round(time.perf_counter() - started))
            port = free_port()
            server = gunicorn(url, settings.keys_dir, port, folder / "gunicorn.log")
            try:
                codes = sorted(drafts)

                def codes_of(number: int) -> list[str]:
                    return codes[number % len(codes) :: users] or codes

                sessions: dict[tuple[str, int, str], SchoolClient] = {}

                def as_login(login: str) -> Callable[[int, str], SchoolClient]:
                    def client(number: int, code: str) -> SchoolClient:
                        key = (login, number, code)
                        if key not in sessions:
                            sessions[key] = SchoolClient(port, code).login(login)
                        return sessions[key]

                    return client

                def submit(client: SchoolClient, code: str) -> tuple[str, str, dict[str, str]]:
                    number = drafts[code].pop()
                    form = {"trigger": "submit", "secret": DEMO_SECRET}
                    return "POST", f"/requests/{number}/act", form

                def queue(client: SchoolClient, code: str) -> tuple[str, str, None]:
                    return "GET", "/review", None

                # NOTE: every worker makes a school's app on its first request there: a few
                # untimed requests per school first, so that the figures are of warm schools.
                warm = SchoolClient(port, codes[0])
                for code in codes:
                    warm.prefix = f"/s/{code}"
                    for _ in range(12):
                        warm.request("GET", "/login")
                warm.connection.close()
                # The queue first, while every school's queue holds the same (nothing yet):
                # afterwards one school's queue would hold all the submitted requests.
                for scenario, login, make in (
                    ("queue_page", "long", queue),
                    ("submit_signed", "hanh", submit),
                ):
                    for number in range(users):  # sign-ins are not part of the figures
                        for code in codes_of(number):
                            as_login(login)(number, code)
                    samples = load(users, codes_of, as_login(login), requests, make)
                    figures[scenario] = percentiles(samples)
                    emit(
                        figure=scenario,
                        schools=schools,
                        users=users,
                        requests=len(samples),
                        **figures[scenario],
                    )
                emit(figure="worker_memory", schools=schools, **_worker_memory(server.pid))
                for client in sessions.values():
                    client.connection.close()
            finally:
                server.terminate()
                try:
                    server.wait(60)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return figures


def _worker_memory(master: int) -> dict[str, int]:
    """Resident memory (MB) of gunicorn's workers, after every school's app was made."""
    sizes = []
    for child in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        status = Path(f"/proc/{child}/status").read_text()
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        if found:
            sizes.append(int(found.group(1)) // 1024)
    return {"workers": len(sizes), "max_rss_mb": max(sizes, default=0)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--schools", type=int, default=100)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    if not args.database_url:
        parser.error("a PostgreSQL cluster is needed: --database-url or TEST_DATABASE_URL")
    many = run(args.database_url, args.schools, args.users, args.requests)
    one = run(args.database_url, 1, args.users, args.requests)
    for scenario in many:
        emit(
            figure=f"{scenario}_many_vs_one",
            schools=args.schools,
            **{
                f"{cut}_ratio": round(many[scenario][cut] / max(one[scenario][cut], 0.01), 2)
                for cut in ("p50_ms", "p95_ms", "p99_ms")
            },
        )


if __name__ == "__main__":
    main()
