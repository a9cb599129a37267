"""Backup and restore on PostgreSQL: pg_dump of a school's database restored into a fresh
cluster verifies, and is consistent with the checkpoint a witness kept from before the backup; a
restore of an older backup (a rollback past what witnesses saw) is caught."""

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
from workflow.demo import create_history
from workflow.runtime import Settings

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


def _kept_checkpoint(school: School, folder: Path) -> Path:
    """The checkpoint a witness (the district) received and kept."""
    with school.runtime.transaction() as session:
        note = school.runtime.checkpoint(session).note
    path = folder / "kept-checkpoint.txt"
    path.write_text(note, encoding="utf-8")
    return path


def test_a_restored_backup_verifies_and_extends_the_kept_checkpoint(
    school: School, second_cluster: Cluster, tmp_path: Path
) -> None:
    create_history(school.runtime, 6)
    kept = _kept_checkpoint(school, tmp_path)
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


def test_restoring_a_backup_older_than_the_witnessed_checkpoint_is_caught(
    school: School, second_cluster: Cluster, tmp_path: Path
) -> None:
    """Someone restores last week's backup over the steps a witness already saw: the restored log
    verifies on its own, but not against the checkpoint the witness kept."""
    create_history(school.runtime, 3)
    old_dump = _dump(school.runtime.settings, tmp_path / "old.dump")
    school.to_state("approved")
    kept = _kept_checkpoint(school, tmp_path)

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
