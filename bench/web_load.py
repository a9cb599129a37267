"""Web latency under load: gunicorn on 127.0.0.1, a bounded load generator, percentiles.

    python bench/web_load.py [--users 20 50] [--requests 200] [--big 100000] [--postgres]
        [--scenarios queue_page submit_signed approve_signed submit_passkey approve_passkey]

Production costs: every signing key is sealed with the default scrypt cost (EXPENSES_SCRYPT_N,
as `flask users add` makes them) and passwords use werkzeug's real hash; --demo-keys uses the
demo's cheap keys instead (the figures of issue 12). --big 0 skips the table-size part.

Scenarios (each bounded by --requests and by --seconds): the review queue page, submitting a
request (a signed step), approving one (a signed step), against the bare /healthz endpoint of
the same app at the same concurrency. The *_signed scenarios sign with the server-held key (the
scrypt unlock runs on the server at every step); the *_passkey ones sign as a phone does: each
virtual user is its own account, whose passkey (the tests' software authenticator) was enrolled
through the web pages, and a step is two requests, the decision to sign and then the signed
answer (the fingerprint in between is not timed). Then the queue and ledger pages with 1k and
with --big requests in the table: the ratio shows whether their cost follows the page or the
table. Only 127.0.0.1 is ever contacted.
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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from populate import populate

from expense_audit.webauthn import b64url_decode
from workflow import journeys
from workflow.demo import DEMO_PASSWORD, DEMO_SECRET, PEOPLE, create_people
from workflow.keys import DEFAULT_SCRYPT_N, InstitutionKey
from workflow.runtime import PROJECT_ROOT, Runtime, Settings

sys.path.insert(0, str(PROJECT_ROOT / "tests"))  # the tests' SMTP helper and soft authenticator
from smtp_server import free_port  # noqa: E402
from softauthn import SoftAuthenticator  # noqa: E402

PASSKEY_SCENARIOS = {"submit_passkey": "submit", "approve_passkey": "approve"}
TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
COOKIE = re.compile(r"session=([^;]+)")


class Client:
    """One virtual user: its own connection and session cookie."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookie = ""
        self.token = ""
        self.location = ""  # of the last redirect
        self.user = ""  # who signed in

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        *,
        body_json: dict[str, Any] | None = None,
    ) -> tuple[int, str]:
        headers = {"Cookie": f"session={self.cookie}"} if self.cookie else {}
        body = None
        if form is not None:
            body = urlencode({"csrf_token": self.token, **form})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body_json is not None:
            # The page scripts send the page's CSRF token in a header with their JSON bodies.
            body = json.dumps(body_json)
            headers["Content-Type"] = "application/json"
            headers["X-CSRFToken"] = self.token
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        self.location = urlsplit(response.getheader("Location") or "").path
        cookie = COOKIE.search(response.getheader("Set-Cookie") or "")
        if cookie:
            self.cookie = cookie.group(1)
        token = TOKEN.search(text)
        if token:
            self.token = token.group(1)
        return response.status, text

    def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON body as the page scripts do; the JSON answer (which must be a success)."""
        status, text = self.request("POST", path, body_json=body)
        assert status == 200, (path, status, text[:500])
        answer: dict[str, Any] = json.loads(text)
        return answer

    def login(self, login: str, page: str = "/") -> None:
        """Sign in, then open ``page`` (following its redirects): the session is new, and the
        next posts carry that page's CSRF token."""
        self.request("GET", "/login")
        status, _ = self.request("POST", "/login", {"login": login, "password": DEMO_PASSWORD})
        assert status == 302, status
        self.user = login
        for _hop in range(3):
            status, _ = self.request("GET", page)
            if status != 302:
                break
            page = self.location
        assert self.token, (login, page, status)


Make = Callable[[int], tuple[str, str, dict[str, str] | None]]  # request i -> method, path, form


def get(path: str) -> Make:
    """The same page at every request."""
    return lambda i: ("GET", path, None)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49] * 1000, 1),
        "p95_ms": round(cuts[94] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
    }


def together(
    count: int, sign_in: Callable[[int], Client], work: Callable[[Client, float], None]
) -> float:
    """``count`` threads: each signs in, all wait until every one has, then each works until
    its work is done or the deadline passed. Returns the seconds the working part took.

    NOTE: signing in hashes the password at its production cost; done while others are
    measured, it would take threads and cores from the timed requests.
    """
    clock: dict[str, float] = {}

    def start_clock() -> None:  # run by the last thread to arrive, before any goes on
        clock["start"] = time.monotonic()

    barrier = threading.Barrier(count, action=start_clock)

    def thread(index: int) -> None:
        try:
            client = sign_in(index)
        except BaseException:
            barrier.abort()  # the others stop waiting (BrokenBarrierError)
            raise
        barrier.wait()
        # NOTE: gunicorn closes a connection idle for 2 s (keep-alive), as this one may have
        # been while the others signed in: start on a fresh one (the session cookie stays).
        client.connection.close()
        work(client, clock["start"])

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(count)]
    for each in threads:
        each.start()
    for each in threads:
        each.join()
    return time.monotonic() - clock.get("start", time.monotonic())


def load(
    port: int,
    users: int,
    total: int,
    seconds: float,
    login: str | None,
    make_request: Make,
) -> tuple[list[float], float]:
    """``users`` threads share ``total`` requests; each returns (method, path, form) per call.
    Returns the samples and the seconds they took."""
    samples: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def sign_in(_index: int) -> Client:
        client = Client(port)
        if login:
            client.login(login)
        return client

    def work(client: Client, start: float) -> None:
        while time.monotonic() < start + seconds:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            method, path, form = make_request(index)
            begin = time.perf_counter()
            status, text = client.request(method, path, form)
            elapsed = time.perf_counter() - begin
            assert status in (200, 302), (
                path,
                status,
                re.findall(r"flash error[^>]*>([^<]+)", text),
            )
            with lock:
                samples.append(elapsed)

    wall = together(users, sign_in, work)
    return samples, wall


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


# --- Passkeys: each virtual user is its own account with its own phone. ---------------------------


def passkey_logins(count: int) -> dict[str, list[str]]:
    """The bench's own proposers and approvers (one account per virtual user)."""
    return {
        "submit": [f"bench-p{i:02d}" for i in range(count)],
        "approve": [f"bench-a{i:02d}" for i in range(count)],
    }


def passkey_people(runtime: Runtime, count: int) -> None:
    """Create the accounts, each with a server-held key at the production cost for now: its
    owner moves to a passkey through the web (enrol()), signed off by that key."""
    logins = passkey_logins(count)
    with runtime.transaction() as session:
        directory = runtime.directory(session, scrypt_n=DEFAULT_SCRYPT_N)
        for role, trigger in (("proposer", "submit"), ("approver", "approve")):
            for login in logins[trigger]:
                directory.create_user(
                    login=login,
                    name=f"Bench {login}",
                    email=f"{login}@th-demo.edu.vn",
                    roles=(role,),
                    password=DEMO_PASSWORD,
                    signing_secret=DEMO_SECRET,
                )


Work = dict[int, dict[str, list[str]]]  # users count -> account -> the requests it signs


def deal(numbers: list[str], logins: list[str]) -> dict[str, list[str]]:
    """The requests dealt round-robin to the accounts."""
    return {login: numbers[i :: len(logins)] for i, login in enumerate(logins)}


def passkey_drafts(runtime: Runtime, users: list[int], total: int) -> Work:
    """For each user count, ``total`` drafts of that many proposers, dealt round-robin."""
    proposers = passkey_logins(max(users))["submit"]
    drafts: Work = {}
    for count in users:
        owners = proposers[:count]
        numbers = [
            journeys.propose(
                runtime,
                owners[i % count],
                **{**journeys.SMALL_REQUEST, "title": f"EnetViet passkey {count}-{i}"},
            )
            for i in range(total)
        ]
        drafts[count] = deal(numbers, owners)
    return drafts


def passkey_approvals(forwarded: list[str], users: list[int], total: int) -> Work:
    """For each user count, ``total`` forwarded requests dealt round-robin to that many
    approvers (any approver may approve any of them)."""
    approvers = passkey_logins(max(users))["approve"]
    return {
        count: deal(forwarded[i * total : (i + 1) * total], approvers[:count])
        for i, count in enumerate(users)
    }


def enrol(port: int, login: str, origin: str) -> SoftAuthenticator:
    """What a phone does on the signing-key page: create a passkey, have the server-held key
    sign it in (the old secret), then confirm it with its first signature."""
    client = Client(port)
    client.login(login, page="/signing-key")
    options = client.post_json("/signing-key/passkey/options", {"password": DEMO_PASSWORD})
    public_key = options["publicKey"]
    phone = SoftAuthenticator(rp_id=public_key["rp"]["id"], origin=origin)
    credential = phone.create(
        b64url_decode(public_key["challenge"]), user_id=b64url_decode(public_key["user"]["id"])
    )
    pending = client.post_json(
        "/signing-key/passkey",
        {"password": DEMO_PASSWORD, "credential": credential, "old_secret": DEMO_SECRET},
    )
    confirmation = phone.get(b64url_decode(pending["publicKey"]["challenge"]))
    client.post_json(
        "/signing-key/passkey/confirm",
        {"decision": pending["decision"], "credential": confirmation},
    )
    client.connection.close()
    return phone


def enrol_all(port: int, logins: list[str], origin: str) -> dict[str, SoftAuthenticator]:
    """Enrol every account's passkey, a few at a time (each costs password hashes and an unlock)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        phones = pool.map(lambda login: enrol(port, login, origin), logins)
        return dict(zip(logins, phones, strict=True))


def passkey_step(
    client: Client, phone: SoftAuthenticator, number: str, trigger: str
) -> tuple[float, float]:
    """One signed step as the person lives it: the decision (with the WebAuthn options), the
    phone's assertion (not timed: the fingerprint), the signed answer. Returns the server's
    time for both requests and for the second alone, in seconds."""
    start = time.perf_counter()
    prepared = client.post_json(f"/requests/{number}/decision", {"trigger": trigger})
    decision_time = time.perf_counter() - start
    credential = phone.get(b64url_decode(prepared["publicKey"]["challenge"]))
    start = time.perf_counter()
    signed = client.post_json(
        f"/requests/{number}/sign", {"decision": prepared["decision"], "credential": credential}
    )
    sign_time = time.perf_counter() - start
    assert signed.get("ok"), signed
    return decision_time + sign_time, sign_time


def load_passkey(
    port: int,
    phones: dict[str, SoftAuthenticator],
    trigger: str,
    work: dict[str, list[str]],
    seconds: float,
) -> tuple[list[float], list[float], float]:
    """One thread per account of ``work``, each signing its own requests (or until ``seconds``
    ran out). Returns the samples of the pairs, of the sign requests alone, and the seconds
    they took."""
    pairs: list[float] = []
    signs: list[float] = []
    lock = threading.Lock()
    logins = list(work)

    def sign_in(index: int) -> Client:
        client = Client(port)
        client.login(logins[index], page="/signing-key")
        return client

    def steps(client: Client, start: float) -> None:
        login = client.user
        for number in work[login]:
            if time.monotonic() > start + seconds:
                return
            pair, sign = passkey_step(client, phones[login], number, trigger)
            with lock:
                pairs.append(pair)
                signs.append(sign)

    wall = together(len(logins), sign_in, steps)
    return pairs, signs, wall


def prepare(
    folder: Path, database_url: str, *, drafts: int, forwarded: int, demo_keys: bool
) -> tuple[Settings, list[str], list[str]]:
    """The database with the demo people, ``drafts`` drafts of Hạnh's and ``forwarded``
    requests waiting for the principal's approval."""
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
    made_drafts, made_forwarded = [], []
    for i in range(drafts + forwarded):
        number = journeys.propose(runtime, **{**journeys.SMALL_REQUEST, "title": f"EnetViet {i}"})
        if i < drafts:
            made_drafts.append(number)
            continue
        for _event in journeys.walk(runtime, number, DEMO_SECRET, until="forwarded"):
            pass
        made_forwarded.append(number)
    runtime.engine.dispose()
    return settings, made_drafts, made_forwarded


def gunicorn(
    settings: Settings, port: int, log: Path, profile: Path | None = None
) -> subprocess.Popen[bytes]:
    """The app in gunicorn (with --profile: behind werkzeug's profiler, bench/profiled_wsgi.py)."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "EXPENSES_KEYS": str(settings.keys_dir),
        "EXPENSES_BASE_URL": settings.base_url,  # passkeys: the RP ID and origin come from it
        "EXPENSES_LOGIN_TRIES_PER_MINUTE": "10000",
        "EXPENSES_LOG_FORMAT": "json",  # one line per request with its duration in the server
    }
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        env["BENCH_PROFILE_DIR"] = str(profile)
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
            *(["--pythonpath", "bench", "profiled_wsgi:app"] if profile else ["wsgi:app"]),
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


def server_times(log: Path, offset: int) -> dict[str, dict[str, float]]:
    """Percentiles of the server's own duration per route, from the log lines after ``offset``
    (what the app spent, without the wait for a gunicorn thread and the network)."""
    durations: dict[str, list[float]] = {}
    with log.open("rb") as handle:
        handle.seek(offset)
        for line in handle:
            if not line.startswith(b"{"):
                continue
            record = json.loads(line)
            if record.get("logger") == "webapp.requests":
                route = f"{record['method']} {record['route']}"
                durations.setdefault(route, []).append(record["duration_ms"] / 1000)
    return {route: percentiles(samples) for route, samples in durations.items() if len(samples) > 1}


def emit(**figure: object) -> None:
    print(json.dumps(figure), flush=True)


def emit_against(
    name: str,
    users: int,
    samples: list[float],
    base: dict[str, float],
    wall: float,
    **extra: object,
) -> None:
    """A scenario's percentiles beside the bare endpoint's of the same users count."""
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
        **extra,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--demo-keys", action="store_true", help="the demo's cheap keys")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=["queue_page", "submit_signed", "approve_signed"],
        choices=["queue_page", "submit_signed", "approve_signed", *PASSKEY_SCENARIOS],
    )
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument(
        "--postgres", action="store_true", help="a throw-away PostgreSQL cluster (scripts/pg.sh)"
    )
    parser.add_argument("--server-log", type=Path, help="keep gunicorn's JSON log there")
    parser.add_argument(
        "--profile", type=Path, help="a cProfile file per request there (bench/profiled_wsgi.py)"
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
        approvals = [s for s in ("approve_signed", "approve_passkey") if s in args.scenarios]
        settings, drafts, forwarded = prepare(
            folder,
            database_url,
            drafts=signed if "submit_signed" in args.scenarios else 0,
            forwarded=signed * len(approvals),
            demo_keys=args.demo_keys,
        )
        port = free_port()
        settings = replace(settings, base_url=f"http://127.0.0.1:{port}")
        runtime = Runtime(settings)
        populate(runtime, 1_000)
        passkeys = [s for s in PASSKEY_SCENARIOS if s in args.scenarios]
        work: dict[str, Work] = {}
        if passkeys:
            passkey_people(runtime, max(args.users))
        if "submit_passkey" in passkeys:
            work["submit_passkey"] = passkey_drafts(runtime, args.users, args.requests)
        if "approve_passkey" in passkeys:
            start = approvals.index("approve_passkey") * signed
            work["approve_passkey"] = passkey_approvals(
                forwarded[start : start + signed], args.users, args.requests
            )
        runtime.engine.dispose()
        log = args.server_log or folder / "gunicorn.log"
        server = gunicorn(settings, port, log, args.profile)
        try:
            # NOTE: warm up every worker (the readiness probe answers once the first is up; the
            # first requests to a worker still importing the app took seconds).
            load(port, max(args.users), 200, args.seconds, None, get("/healthz"))
            phones: dict[str, SoftAuthenticator] = {}
            if passkeys:
                # NOTE: the server reads a loopback address as localhost (an IP is no RP ID).
                logins = passkey_logins(max(args.users))
                wanted = [login for s in passkeys for login in logins[PASSKEY_SCENARIOS[s]]]
                phones = enrol_all(port, wanted, f"http://localhost:{port}")
            pools = {"submit_signed": iter(drafts)}
            if "approve_signed" in approvals:
                start = approvals.index("approve_signed") * signed
                pools["approve_signed"] = iter(forwarded[start : start + signed])
            for users in args.users:
                scenarios(args, port, users, log, pools, phones, work)
            table_size(args, port, settings)
        finally:
            server.terminate()
            server.wait(10)


def scenarios(
    args: argparse.Namespace,
    port: int,
    users: int,
    log: Path,
    pools: dict[str, Iterator[str]],
    phones: dict[str, SoftAuthenticator],
    work: dict[str, Work],
) -> None:
    """The bare endpoint, then each chosen scenario, at ``users`` concurrent users."""
    bare, _wall = load(port, users, args.requests, args.seconds, None, get("/healthz"))
    base = percentiles(bare)
    emit(
        figure="bare_healthz",
        users=users,
        requests=len(bare),
        **base,
        load=round(os.getloadavg()[0], 2),
    )
    forms: dict[str, tuple[str, Make]] = {
        "queue_page": ("long", get("/review")),
        "submit_signed": (
            "hanh",
            lambda i: (
                "POST",
                f"/requests/{next(pools['submit_signed'])}/act",
                {"trigger": "submit", "secret": DEMO_SECRET},
            ),
        ),
        "approve_signed": (
            "toan",
            lambda i: (
                "POST",
                f"/requests/{next(pools['approve_signed'])}/act",
                {"trigger": "approve", "secret": DEMO_SECRET},
            ),
        ),
    }
    for name in args.scenarios:
        offset = log.stat().st_size
        if name in forms:
            login, make = forms[name]
            samples, wall = load(port, users, args.requests, args.seconds, login, make)
            emit_against(name, users, samples, base, wall)
        else:
            trigger = PASSKEY_SCENARIOS[name]
            pairs, signs, wall = load_passkey(
                port, phones, trigger, work[name][users], args.seconds
            )
            emit_against(name, users, pairs, base, wall, part="decision + sign")
            emit_against(name, users, signs, base, wall, part="sign alone")
        emit(figure="server_time", scenario=name, users=users, routes=server_times(log, offset))


def table_size(args: argparse.Namespace, port: int, settings: Settings) -> None:
    """The queue and ledger pages with 1k and with --big requests in the table."""
    pages: dict[tuple[str, int], float] = {}
    for rows in (1_000, args.big) if args.big else ():
        if rows != 1_000:
            populate(Runtime(settings), rows - 1_000, start=200_000, seed=2)
        for name, login, path in (
            ("queue_page", "long", "/review"),
            ("ledger_page", "mai", "/ledger"),
        ):
            samples, _wall = load(port, 1, 40, args.seconds, login, get(path))
            pages[(name, rows)] = percentiles(samples)["p50_ms"]
            emit(figure=f"{name}_by_table_size", table_rows=rows, p50_ms=pages[(name, rows)])
    for name in ("queue_page", "ledger_page") if args.big else ():
        emit(
            figure=f"{name}_growth",
            table_ratio=args.big / 1_000,
            p50_ratio=round(pages[(name, args.big)] / pages[(name, 1_000)], 2),
        )


if __name__ == "__main__":
    main()
