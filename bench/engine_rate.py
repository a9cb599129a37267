"""Engine throughput: requests/s through the full chain (4 signed, persisted transitions) against
raw signed appends on the same database, and against SpiffWorkflow driving the same process.

    python bench/engine_rate.py [--requests 300] [--postgres]

--postgres starts a throw-away cluster with scripts/pg.sh and measures PostgreSQL as well.
Keys use a low scrypt cost here so the engine is measured, not the key derivation; the cost of one
unlock at the production cost is printed separately.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, create_engine

from workflow import journeys
from workflow.audit import append_event
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


def measure(label: str, url: str, keys: Path, count: int, rounds: int) -> None:
    """The raw append and the full chain in alternating blocks of one run, so that a change of
    the machine's load (other people's runs) weighs on both alike."""
    runtime = fresh_runtime(url, keys)
    signer = _unlocked(runtime)
    full_chain(runtime, 2)  # warm up: definitions recorded, statements compiled
    raw_appends(runtime, 8, signer)
    raw_seconds = chain_seconds = 0.0
    block = max(1, count // rounds)
    for _ in range(rounds):
        raw_seconds += raw_appends(runtime, block * 4, signer)
        chain_seconds += full_chain(runtime, block)
    raw = rounds * block * 4 / raw_seconds
    chain = rounds * block / chain_seconds
    emit(figure="raw_signed_append", database=label, events_per_second=round(raw, 1))
    emit(
        figure="full_chain",
        database=label,
        requests_per_second=round(chain, 1),
        events_per_second=round(chain * 4, 1),
        ratio_events_vs_raw_append=round(chain * 4 / raw, 3),
    )
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
        )
        if args.postgres:
            env = {
                **os.environ,
                "PG_TEST_PORT": os.environ.get("PG_TEST_PORT", "54339"),
                "PG_TEST_DIR": os.environ.get("PG_TEST_DIR", "/tmp/expenses-pg-bench"),
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
                    "postgresql", url.rsplit("/", 1)[0] + "/bench", keys, args.requests, args.rounds
                )
            finally:
                subprocess.run(
                    ["bash", str(PROJECT_ROOT / "scripts" / "pg.sh"), "stop"], env=env, check=False
                )


if __name__ == "__main__":
    main()
