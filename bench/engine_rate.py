"""Engine throughput: requests/s through the full chain (4 signed, persisted transitions) against
raw signed appends on the same database, and against SpiffWorkflow driving the same process.

    python bench/engine_rate.py [--requests 300] [--rounds 10] [--workers 4] [--postgres]

The raw append and the chain run in alternating blocks (--rounds) so that the machine's load
weighs on both alike; the time each holds the write lock is printed beside them; with
--workers N both run again in N processes at once.

--postgres starts a throw-away cluster with scripts/pg.sh (fsync on) and measures PostgreSQL as well.
Keys use a low scrypt cost here so the engine is measured, not the key derivation; the cost of one
unlock at the production cost is printed separately.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, Text, create_engine, event

from workflow import journeys
from workflow.audit import append_event
from workflow.db import READ_FIRST
from workflow.demo import PEOPLE
from workflow.keys import DEFAULT_SCRYPT_N, InstitutionKey, UnlockedKey, seal_new_key, unlock
from workflow.runtime import PROJECT_ROOT, Runtime, Settings

SECRET = "ky-demo-2024"


def emit(**figure: object) -> None:
    print(json.dumps(figure), flush=True)


def fresh_runtime(url: str, keys: Path) -> Runtime:
    runtime = Runtime(replace(Settings(), database_url=url, keys_dir=keys, scrypt_n=2**10))
    runtime.init_db()
    with runtime.transaction() as session:
        # NOTE: keys with a token scrypt cost, so the engine is measured and not the deliberately
        # slow key derivation; its production cost is printed as its own figure.
        directory = runtime.directory(session, scrypt_n=2)
        for person in PEOPLE:
            directory.create_user(
                login=person.login,
                name=person.name,
                email=f"{person.login}@bench.example",
                roles=person.roles,
                password="bench-password",
                signing_secret=SECRET,
            )
    return runtime


def _unlocked(runtime: Runtime) -> UnlockedKey:
    with runtime.transaction() as session:
        key = runtime.directory(session).active_key("hanh")
        assert key is not None
        assert key.encrypted_private is not None and key.kdf is not None
        return unlock(key.key_id, key.encrypted_private, key.kdf, SECRET, pepper=runtime.pepper)


def raw_appends(runtime: Runtime, count: int, signer: UnlockedKey) -> float:
    """Seconds for ``count`` signed events, one per transaction, key already unlocked."""
    start = time.perf_counter()
    for i in range(count):
        with runtime.transaction() as session:
            append_event(
                session,
                signer=signer,
                ts=runtime.now(),
                action="bench",
                actor="hanh",
                role="proposer",
                data={"i": i, "note": "raw append baseline"},
            )
    return time.perf_counter() - start


def full_chain(runtime: Runtime, count: int) -> float:
    """Seconds for ``count`` requests: draft, then submit, forward, approve, pay, each its own
    transaction."""
    start = time.perf_counter()
    for _ in range(count):
        number = journeys.propose(runtime, **journeys.SMALL_REQUEST)
        paid = journeys.payment(15_000, paid_on=runtime.now().date(), voucher="PC-1")
        for _event in journeys.walk(runtime, number, SECRET, paid=paid):
            pass
    return time.perf_counter() - start


def _worker(url: str, keys: str, kind: str, count: int, start: Any, results: Any) -> None:
    runtime = Runtime(replace(Settings(), database_url=url, keys_dir=Path(keys), scrypt_n=2**10))
    signer = _unlocked(runtime)
    start.wait()
    if kind == "raw":
        results.put(raw_appends(runtime, count * 4, signer))
    else:
        results.put(full_chain(runtime, count))
    runtime.engine.dispose()


def concurrent(label: str, url: str, keys: Path, count: int, workers: int) -> None:
    """Events/s with ``workers`` processes at once: raw appends, then the full chain. With the
    work before the lock done in parallel, only the lock's share is serialized."""
    context = multiprocessing.get_context("fork")
    rates = {}
    for kind in ("raw", "chain", "raw", "chain"):
        start, results = context.Event(), context.Queue()
        per_worker = max(1, count // workers)
        processes = [
            context.Process(target=_worker, args=(url, str(keys), kind, per_worker, start, results))
            for _ in range(workers)
        ]
        for process in processes:
            process.start()
        time.sleep(1.0)  # every worker has its engine and key
        began = time.perf_counter()
        start.set()
        for process in processes:
            process.join()
        elapsed = time.perf_counter() - began
        rates.setdefault(kind, []).append(workers * per_worker * 4 / elapsed)
        results.close()
    raw, chain = max(rates["raw"]), max(rates["chain"])
    emit(
        figure="concurrent_events_per_second",
        database=label,
        workers=workers,
        raw_append=round(raw, 1),
        full_chain=round(chain, 1),
        ratio=round(chain / raw, 3),
        note="best of two runs each, alternating",
    )


def spiff(url: str, count: int) -> float:
    """Requests/s: SpiffWorkflow runs the same three user tasks, its state serialized to JSON and
    stored in the same database between tasks (one transaction per task)."""
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.parser import BpmnParser
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.util.task import TaskState

    parser = BpmnParser()
    parser.add_bpmn_file(str(Path(__file__).parent / "assets" / "expense_approval.bpmn"))
    spec = parser.get_spec("expense_approval")
    serializer = BpmnWorkflowSerializer()
    engine = create_engine(url)
    table = Table(
        "spiff_workflows",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("state", String(20)),
        Column("body", Text),
    )
    table.metadata.create_all(engine)
    start = time.perf_counter()
    for i in range(count):
        workflow = BpmnWorkflow(spec)
        workflow.do_engine_steps()
        with engine.begin() as connection:
            connection.execute(
                table.insert().values(
                    id=i + 1, state="review", body=serializer.serialize_json(workflow)
                )
            )
        for name in ("review", "approve", "pay"):
            with engine.begin() as connection:
                body = (
                    connection.execute(table.select().where(table.c.id == i + 1).with_for_update())
                    .one()
                    .body
                )
                workflow = serializer.deserialize_json(body)
                task = workflow.get_tasks(state=TaskState.READY, manual=True)[0]
                assert task.task_spec.name == name
                task.data[name] = {"by": name}
                task.run()
                workflow.do_engine_steps()
                connection.execute(
                    table.update()
                    .where(table.c.id == i + 1)
                    .values(state=name, body=serializer.serialize_json(workflow))
                )
        assert workflow.is_completed()
    engine.dispose()
    return count / (time.perf_counter() - start)


class LockClock:
    """Time write transactions hold the write lock: from the moment they have it (SQLite: after
    the writers' queue and BEGIN IMMEDIATE; PostgreSQL: from BEGIN, an upper bound) until their
    COMMIT has returned. Read-first transactions take no lock and are not counted."""

    def __init__(self, engine: Engine) -> None:
        self.held = 0.0
        self.transactions = 0
        self._since: dict[int, float] = {}
        dialect = engine.dialect
        commit, rollback = dialect.do_commit, dialect.do_rollback

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            if not connection.get_execution_options().get(READ_FIRST):
                self._since[id(connection.connection)] = time.perf_counter()

        def ended(dbapi_connection: Any) -> None:
            since = self._since.pop(id(dbapi_connection), None)
            if since is not None:
                self.held += time.perf_counter() - since
                self.transactions += 1

        def do_commit(dbapi_connection: Any) -> None:
            commit(dbapi_connection)
            ended(dbapi_connection)

        def do_rollback(dbapi_connection: Any) -> None:
            rollback(dbapi_connection)
            ended(dbapi_connection)

        setattr(dialect, "do_commit", do_commit)  # noqa: B010
        setattr(dialect, "do_rollback", do_rollback)  # noqa: B010

    def reset(self) -> None:
        self.held, self.transactions = 0.0, 0


def measure(label: str, url: str, keys: Path, count: int, rounds: int, workers: int) -> None:
    """The raw append and the full chain in alternating blocks of one run, so that a change of
    the machine's load (other people's runs) weighs on both alike."""
    runtime = fresh_runtime(url, keys)
    signer = _unlocked(runtime)
    full_chain(runtime, 2)  # warm up: definitions recorded, statements compiled
    raw_appends(runtime, 8, signer)
    clock = LockClock(runtime.engine)
    raw_seconds = chain_seconds = raw_held = chain_held = 0.0
    block = max(1, count // rounds)
    for _ in range(rounds):
        clock.reset()
        raw_seconds += raw_appends(runtime, block * 4, signer)
        raw_held += clock.held
        clock.reset()
        chain_seconds += full_chain(runtime, block)
        chain_held += clock.held
    events = rounds * block * 4
    raw, chain = events / raw_seconds, rounds * block / chain_seconds
    emit(figure="raw_signed_append", database=label, events_per_second=round(raw, 1))
    emit(
        figure="full_chain",
        database=label,
        requests_per_second=round(chain, 1),
        events_per_second=round(chain * 4, 1),
        ratio_events_vs_raw_append=round(chain * 4 / raw, 3),
    )
    emit(
        figure="write_lock_held_per_event_ms",
        database=label,
        raw_append=round(raw_held / events * 1000, 3),
        full_chain=round(chain_held / events * 1000, 3),
        note="the chain's includes its drafts' transactions (5 per 4 events)",
        ratio_raw_vs_chain=round(raw_held / chain_held, 3),
    )
    if workers > 1:
        runtime.engine.dispose()
        concurrent(label, url, keys, count, workers)
    runtime.engine.dispose()
    try:
        other = spiff(url, count)
    except ImportError:
        emit(
            figure="spiffworkflow",
            database=label,
            skipped="pip install SpiffWorkflow (bench extra)",
        )
        return
    emit(
        figure="spiffworkflow_same_process",
        database=label,
        requests_per_second=round(other, 1),
        ratio_ours_vs_spiff=round(chain / other, 3),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--rounds", type=int, default=10, help="alternating blocks")
    parser.add_argument("--workers", type=int, default=4, help="processes at once (1: none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        keys = Path(folder) / "keys"
        InstitutionKey.create(keys)
        start = time.perf_counter()
        sealed = seal_new_key(SECRET, scrypt_n=DEFAULT_SCRYPT_N)
        unlock(sealed.key_id, sealed.encrypted_private, sealed.kdf, SECRET)
        emit(
            figure="unlock_at_production_cost",
            scrypt_n=DEFAULT_SCRYPT_N,
            seconds=round((time.perf_counter() - start) / 2, 3),
        )
        measure(
            "sqlite",
            f"sqlite:///{Path(folder) / 'bench.sqlite'}",
            keys,
            args.requests,
            args.rounds,
            args.workers,
        )
        if args.postgres:
            env = {
                **os.environ,
                "PG_TEST_PORT": os.environ.get("PG_TEST_PORT", "54339"),
                "PG_TEST_DIR": os.environ.get("PG_TEST_DIR", "/tmp/expenses-pg-bench"),
                "PG_FSYNC": "on",  # production durability (synchronous_commit is on by default)
            }
            started = subprocess.run(
                ["bash", str(PROJECT_ROOT / "scripts" / "pg.sh"), "start"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            url = started.stdout.strip().split("=", 1)[1]
            try:
                admin = create_engine(url, isolation_level="AUTOCOMMIT")
                with admin.connect() as connection:
                    connection.exec_driver_sql("CREATE DATABASE bench")
                admin.dispose()
                measure(
                    "postgresql",
                    url.rsplit("/", 1)[0] + "/bench",
                    keys,
                    args.requests,
                    args.rounds,
                    args.workers,
                )
            finally:
                subprocess.run(
                    ["bash", str(PROJECT_ROOT / "scripts" / "pg.sh"), "stop"], env=env, check=False
                )


if __name__ == "__main__":
    main()
