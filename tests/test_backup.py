"""Backup and restore on PostgreSQL: pg_dump of a school's database restored into a fresh
cluster verifies, and is consistent with the checkpoint the district's witness last cosigned
before the backup; a restore of an older backup (a rollback past what the witness saw) is caught,
by the auditor's verifier and by the witness, which refuses to cosign it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from expense_audit.verify import verify_bundle
from workflow.cosigning import LocalWitness, submit_checkpoint
from workflow.db import make_engine, session_factory
from workflow.demo import create_history
from workflow.models import WitnessLog
from workflow.runtime import Runtime, Settings
from workflow.witness import RollbackRefused, Witness, WitnessKey

from .factories import School
from .nodes import ROOT, node_env
from .smtp_server import free_port

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name)
pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL") or not PG_BIN,
    reason="backup and restore are PostgreSQL's (pg_dump, pg_restore, a second cluster)",
)


def _libpq(url: str) -> str:
    """The SQLAlchemy URL as libpq tools take it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class Cluster:
    """A second PostgreSQL cluster, on its own port (initdb, like scripts/pg.sh)."""

    url: str

    def restore(self, dump: Path, name: str) -> str:
        admin = create_engine(self.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        target = make_url(self.url).set(database=name).render_as_string(hide_password=False)
        restored = subprocess.run(
            [str(PG_BIN[-1] / "pg_restore"), "--no-owner", "--exit-on-error"]
            + ["--dbname", _libpq(target), str(dump)],
            capture_output=True,
            text=True,
        )
        assert restored.returncode == 0, restored.stderr[-2000:]
        return target


@pytest.fixture(scope="module")
def second_cluster() -> Iterator[Cluster]:
    folder = tempfile.mkdtemp(prefix="pg-restore-")  # NOTE: under /tmp: the postgres user enters it
    env = {**os.environ, "PG_TEST_DIR": folder, "PG_TEST_PORT": str(free_port())}
    started = subprocess.run(
        ["bash", str(ROOT / "scripts" / "pg.sh"), "start"], env=env, capture_output=True, text=True
    )
    assert started.returncode == 0, started.stderr
    try:
        yield Cluster(started.stdout.strip().split("=", 1)[1])
    finally:
        subprocess.run(["bash", str(ROOT / "scripts" / "pg.sh"), "stop"], env=env, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def _dump(settings: Settings, out: Path) -> Path:
    dumped = subprocess.run(
        [str(PG_BIN[-1] / "pg_dump"), "-Fc", "--no-owner", "-f", str(out)]
        + [_libpq(settings.database_url)],
        capture_output=True,
        text=True,
    )
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    return out


def _flask(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=node_env(settings),
        capture_output=True,
        text=True,
    )


WITNESS_NAME = "phonggd.example.edu.vn/witness"


@pytest.fixture
def witness(school: School, tmp_path: Path) -> Iterator[LocalWitness]:
    """The district's witness, in the district's own database (a school's restore never touches
    it), with the school registered; the school's checkpoints go to it to be cosigned."""
    runtime = school.runtime
    engine = make_engine(f"sqlite:///{tmp_path / 'district-witness.sqlite'}")
    WitnessLog.__table__.create(engine)
    key = WitnessKey.create(tmp_path / "witness-keys", name=WITNESS_NAME)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        Witness(session, key=key, clock=runtime.clock).register_log(
            runtime.settings.origin, runtime.institution.public_raw
        )
    runtime.witness = LocalWitness(sessions, key=key, clock=runtime.clock)
    yield runtime.witness
    engine.dispose()


def _kept_checkpoint(school: School, witness: LocalWitness, folder: Path) -> Path:
    """The school signs a checkpoint, the witness cosigns it: the witness's last cosigned one."""
    with school.runtime.transaction() as session:
        note = school.runtime.checkpoint(session).note
    assert f"\u2014 {WITNESS_NAME} " in note  # cosigned
    with witness.sessions() as session:
        row = session.get(WitnessLog, school.runtime.settings.origin)
        assert row is not None and row.note is not None
    path = folder / "witness-checkpoint.txt"
    path.write_text(row.note, encoding="utf-8")
    return path


def _runtime_on(settings: Settings, school: School, witness: LocalWitness) -> Runtime:
    return Runtime(settings, clock=school.runtime.clock, witness=witness)


def test_a_restored_backup_verifies_and_extends_the_witness_checkpoint(
    school: School, witness: LocalWitness, second_cluster: Cluster, tmp_path: Path
) -> None:
    create_history(school.runtime, 6)
    kept = _kept_checkpoint(school, witness, tmp_path)
    school.to_state("forwarded")  # the school goes on working after the witness's checkpoint
    dump = _dump(school.runtime.settings, tmp_path / "backup.dump")

    restored = replace(
        school.runtime.settings, database_url=second_cluster.restore(dump, "restored")
    )
    verified = _flask(restored, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "VALID: the log verifies and every request row equals the replay" in verified.stdout
    bundle = tmp_path / "restored.zip"
    assert _flask(restored, "audit", "export", str(bundle)).returncode == 0
    fingerprint = school.runtime.institution.fingerprint
    report = verify_bundle(bundle, institution_key=fingerprint, trusted_checkpoint=kept.read_text())
    assert report.valid and report.trusted, report.problems
    # and by the auditor's own tool, with the kept checkpoint as the trust anchor
    command = shutil.which("audit-verify") or ""
    argv = [command] if command else [sys.executable, "-m", "expense_audit.verify"]
    offline = subprocess.run(
        [*argv, str(bundle), "--trust", str(kept), "--institution-key", fingerprint],
        capture_output=True,
        text=True,
    )
    assert offline.returncode == 0, offline.stdout + offline.stderr
    # the witness itself finds the restored log extends what it cosigned, and cosigns it again
    node = _runtime_on(restored, school, witness)
    try:
        with node.transaction() as session:
            note = node.checkpoint(session).note
    finally:
        node.dispose()
    assert f"\u2014 {WITNESS_NAME} " in note


def test_restoring_a_backup_older_than_the_witnessed_checkpoint_is_caught(
    school: School, witness: LocalWitness, second_cluster: Cluster, tmp_path: Path
) -> None:
    """Someone restores last week's backup over the steps the witness already cosigned: the
    restored log verifies on its own, but not against the witness's checkpoint, and the witness
    will not cosign it."""
    create_history(school.runtime, 3)
    old_dump = _dump(school.runtime.settings, tmp_path / "old.dump")
    school.to_state("approved")
    kept = _kept_checkpoint(school, witness, tmp_path)

    restored = replace(
        school.runtime.settings, database_url=second_cluster.restore(old_dump, "rolled_back")
    )
    assert _flask(restored, "audit", "verify").returncode == 0  # consistent with itself
    bundle = tmp_path / "rolled-back.zip"
    assert _flask(restored, "audit", "export", str(bundle)).returncode == 0
    report = verify_bundle(
        bundle,
        institution_key=school.runtime.institution.fingerprint,
        trusted_checkpoint=kept.read_text(),
    )
    assert [p.kind for p in report.problems] == ["checkpoint-beyond-log"]
    assert "the log was truncated" in report.problems[0].detail
    node = _runtime_on(restored, school, witness)
    try:
        with node.transaction() as session:
            checkpoint = node.checkpoint(session)  # signed; the witness's refusal is logged
            assert f"\u2014 {WITNESS_NAME} " not in checkpoint.note
            with pytest.raises(RollbackRefused, match="was cut"):
                submit_checkpoint(session, checkpoint, witness=witness, now=node.now())
    finally:
        node.dispose()
