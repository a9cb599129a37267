"""Adding a school with one command, and moving a school's own instance into the district (issue 16)."""

from __future__ import annotations

import re
import stat
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from expense_audit.verify import verify_bundle
from workflow.bundle import export_bundle
from workflow.db import make_engine
from workflow.keys import InstitutionKey
from workflow.migrate import upgrade
from workflow.models import AuditEvent, CheckpointRow, OutboxMail
from workflow.runtime import Runtime

from .conftest import SETTINGS, SteppingClock
from .district import SchoolBrowser, add_demo_school, deployment, district_app, needs_postgres
from .factories import School, pay_data

pytestmark = needs_postgres


def test_school_add_creates_key_log_and_an_admin_who_signs_in_once(tmp_path: Path) -> None:
    with deployment(tmp_path, codes=()) as district:
        app = district_app(district, tmp_path)
        runner = app.test_cli_runner()
        result = runner.invoke(
            args=[
                "school",
                "add",
                "gamma",
                "--name",
                "Trường Tiểu học Gamma",
                "--origin",
                "th-gamma.edu.vn/expenses",
                "--admin",
                "quantri",
            ]
        )
        assert result.exit_code == 0, result.output
        password = re.search(r"one-time password: (\S+)", result.output)
        fingerprint = re.search(r"fingerprint: ([0-9a-f]{64})", result.output)
        assert password and fingerprint
        key_dir = tmp_path / "keys" / "gamma"
        assert InstitutionKey.from_directory(key_dir).fingerprint == fingerprint.group(1)
        assert stat.S_IMODE((key_dir / "institution.key").stat().st_mode) == 0o600
        with district.runtime("gamma").transaction() as session:
            genesis = session.get(AuditEvent, 1)
            assert genesis is not None and genesis.action == "log.init"

        browser = SchoolBrowser(app, "/s/gamma")
        browser.get("/login")
        response = browser.post("/login", {"login": "quantri", "password": password.group(1)})
        assert response.status_code == 302
        assert browser.get("/admin/users").headers["Location"].startswith("/s/gamma/password")

        listed = runner.invoke(args=["school", "list"])
        assert "gamma\tth-gamma.edu.vn/expenses\tTrường Tiểu học Gamma" in listed.output
        again = runner.invoke(
            args=["school", "add", "gamma", "--name", "G", "--origin", "x.vn/e", "--admin", "a"]
        )
        assert again.exit_code == 1 and "exists already" in again.output


def test_school_commands_run_in_each_school_with_its_own_log(tmp_path: Path) -> None:
    with deployment(tmp_path) as district:
        runner = district_app(district, tmp_path).test_cli_runner()
        checkpoints = runner.invoke(args=["school", "each", "checkpoint"])
        assert checkpoints.exit_code == 0, checkpoints.output
        assert "== alpha\nth-alpha.edu.vn/expenses\n" in checkpoints.output
        assert "== beta\nth-beta.edu.vn/expenses\n" in checkpoints.output
        verified = runner.invoke(args=["school", "run", "beta", "audit", "verify"])
        assert verified.exit_code == 0, verified.output
        assert "VALID" in verified.output
        unknown = runner.invoke(args=["school", "run", "nosuch", "checkpoint"])
        assert unknown.exit_code == 1 and "no school" in unknown.output


def _own_instance(folder: Path) -> tuple[Runtime, School]:
    """A school on its own SQLite instance, with history and two checkpoints."""
    keys = folder / "own-keys"
    InstitutionKey.create(keys)
    settings = replace(
        SETTINGS,
        database_url=f"sqlite:///{folder / 'own.sqlite'}",
        keys_dir=keys,
        origin="th-omega.edu.vn/expenses",
    )
    runtime = Runtime(settings, clock=SteppingClock())
    runtime.init_db()
    school = School.create(runtime)
    paid = school.to_state("approved")
    school.act(paid, "pay", "mai", data=pay_data())
    with runtime.transaction() as session:
        runtime.checkpoint(session)
    school.to_state("submitted", line="PRINT", amount="500.000")
    with runtime.transaction() as session:
        runtime.checkpoint(session)
    return runtime, school


def _log(runtime: Runtime) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with runtime.transaction() as session:
        events = [
            (e.seq, e.hash, e.prev, e.request, e.action, e.actor, e.key_id, e.ts, e.body, e.sig)
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
        ]
        checkpoints = [
            (c.size, c.root, c.note)
            for c in session.scalars(select(CheckpointRow).order_by(CheckpointRow.size))
        ]
    return events, checkpoints


def test_school_moved_from_sqlite_keeps_log_checkpoints_and_key(tmp_path: Path) -> None:
    own, _ = _own_instance(tmp_path)
    events, checkpoints = _log(own)
    fingerprint = own.institution.fingerprint
    own.dispose()

    with deployment(tmp_path / "district", codes=()) as district:
        district.init()
        runner = district_app(district, tmp_path).test_cli_runner()
        result = _import(
            runner,
            own.settings.database_url,
            own.settings.keys_dir,
            name="Trường Tiểu học Omega",
        )
        assert result.exit_code == 0, result.output
        assert f"{len(events)} events" in result.output and fingerprint in result.output

        moved = district.runtime("omega")
        assert moved.settings.origin == "th-omega.edu.vn/expenses"
        assert _log(moved) == (events, checkpoints)  # byte for byte, every kept checkpoint
        with moved.transaction() as session:
            export_bundle(
                session,
                tmp_path / "moved.zip",
                institution=moved.institution,
                now=moved.now(),
            )
        report = verify_bundle(
            tmp_path / "moved.zip",
            institution_key=fingerprint,
            trusted_checkpoint=checkpoints[-1][2],
        )
        assert report.valid, report.headline()
        assert report.institution_fingerprint == fingerprint

        # The moved school goes on: its chain continues and new rows get fresh ids.
        school = School(moved)
        mails_before = len(school.mails())
        number = school.to_state("submitted", line="WEB", amount="300.000")
        with moved.transaction() as session:
            head = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
            assert head is not None and head.seq > len(events)
            assert session.scalars(select(OutboxMail)).all()
        assert school.request(number) is not None and len(school.mails()) > mails_before


def test_import_refuses_a_code_or_origin_already_in_the_district(tmp_path: Path) -> None:
    own, _ = _own_instance(tmp_path)
    own.dispose()
    with deployment(tmp_path / "district", codes=("omega",)) as district:
        runner = district_app(district, tmp_path).test_cli_runner()
        base = ["school", "import", "--from", own.settings.database_url]
        keys = ["--keys", str(own.settings.keys_dir), "--name", "Omega"]
        taken_origin = runner.invoke(args=[*base, "omega2", *keys])
        assert taken_origin.exit_code == 1 and "origin" in taken_origin.output
        assert not (tmp_path / "district" / "keys" / "omega2").exists()

        old = tmp_path / "old.sqlite"
        engine = make_engine(f"sqlite:///{old}")
        upgrade(engine, "0008")
        engine.dispose()
        behind = runner.invoke(
            args=["school", "import", "--from", f"sqlite:///{old}", "older", *keys]
        )
        assert behind.exit_code == 1 and "at migration 0008" in behind.output
        assert [school.code for school in district.schools()] == ["omega"]


def test_district_witness_cosigns_the_checkpoints_of_every_school(
    tmp_path: Path,
) -> None:
    with deployment(tmp_path, codes=("alpha",)) as district:
        app = district_app(district, tmp_path)
        runner = app.test_cli_runner()
        created = runner.invoke(args=["district", "witness-init", "pgd.example.vn/witness"])
        assert created.exit_code == 0, created.output
        vkey = re.search(r"--witness-key`: (\S+)", created.output)
        assert vkey, created.output
        add_demo_school(district, "beta")  # a school added after the witness was made
        for code in ("alpha", "beta"):
            runtime = district.runtime(code)
            number = School(runtime).to_state("submitted")
            with runtime.transaction() as session:
                runtime.checkpoint(session)
                path = tmp_path / f"{code}.zip"
                export_bundle(
                    session,
                    path,
                    institution=runtime.institution,
                    now=runtime.now(),
                    cosign=runtime.cosign,
                )
            report = verify_bundle(path, witness_keys=[vkey.group(1)])
            assert report.valid, (code, number, report.problems)
            assert any(c["verified"] for c in report.cosignatures), code


def test_import_refuses_attachments_that_link_outside_the_folder(tmp_path: Path) -> None:
    """A school's server hands over an attachments folder whose file links to another school's key.

    Copied by following the link, the key's bytes would sit in the moved school's attachments,
    served to its users as an attachment its own (hostile) database names.
    """
    own, _ = _own_instance(tmp_path)
    own.dispose()
    with deployment(tmp_path / "district", codes=("alpha",)) as district:
        app = district_app(district, tmp_path)
        secret = Path(district.get_school("alpha").keys_dir) / "institution.key"  # type: ignore[union-attr]
        folder = tmp_path / "handed-over"
        sha = "ab" * 32
        (folder / sha[:2]).mkdir(parents=True)
        (folder / sha[:2] / sha).symlink_to(secret)
        result = _import(
            app.test_cli_runner(),
            own.settings.database_url,
            own.settings.keys_dir,
            "--attachments",
            str(folder),
        )
        assert result.exit_code == 1 and "link" in result.output
        assert [school.code for school in district.schools()] == ["alpha"]
        copies = [p for p in tmp_path.rglob(sha) if p.is_file() and not p.is_symlink()]
        assert copies == []


def test_moved_attachments_land_where_the_school_app_serves_them(tmp_path: Path) -> None:
    own, _ = _own_instance(tmp_path)
    own.dispose()
    with deployment(tmp_path / "district", codes=()) as district:
        app = district_app(district, tmp_path)
        folder = tmp_path / "handed-over"
        sha = "cd" * 32
        (folder / sha[:2]).mkdir(parents=True)
        (folder / sha[:2] / sha).write_bytes(b"%PDF-1.4 invoice")
        result = _import(
            app.test_cli_runner(),
            own.settings.database_url,
            own.settings.keys_dir,
            "--attachments",
            str(folder),
        )
        assert result.exit_code == 0, result.output
        school_app = app.extensions["schools"].school_app("omega")
        served = Path(school_app.config["ATTACHMENTS_DIR"]) / sha[:2] / sha
        assert served.read_bytes() == b"%PDF-1.4 invoice"


def _import(runner: Any, source_url: str, keys: Path, *extra: str, name: str = "Omega") -> Any:
    """`school import omega` of the single-school database at ``source_url`` with ``keys``."""
    args = ["school", "import", "omega", "--name", name, "--from", source_url, "--keys", str(keys)]
    return runner.invoke(args=[*args, *extra])


def _tampered_import(tmp_path: Path, tamper: str) -> tuple[Any, list[str]]:
    """Import an own instance whose SQLite file was edited by ``tamper`` (raw SQL); the result."""
    import sqlite3

    own, _ = _own_instance(tmp_path)
    own.dispose()
    path = own.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='trigger'"):
            connection.execute(f'DROP TRIGGER "{name}"')
        connection.executescript(tamper)
    with deployment(tmp_path / "district", codes=()) as district:
        result = _import(
            district_app(district, tmp_path).test_cli_runner(),
            own.settings.database_url,
            own.settings.keys_dir,
        )
        return result, [school.code for school in district.schools()]


def test_import_refuses_a_log_whose_past_event_was_rewritten(tmp_path: Path) -> None:
    result, schools = _tampered_import(
        tmp_path,
        "UPDATE audit_events SET body = CAST(replace(CAST(body AS TEXT), 'mai', 'lan') AS BLOB) "
        "WHERE seq = (SELECT max(seq) FROM audit_events WHERE action = 'pay');",
    )
    assert result.exit_code == 1 and "does not verify" in result.output, result.output
    assert schools == []


def test_import_refuses_request_rows_that_differ_from_the_log(tmp_path: Path) -> None:
    result, schools = _tampered_import(tmp_path, "UPDATE requests SET state = 'paid';")
    assert result.exit_code == 1 and "does not verify" in result.output, result.output
    assert schools == []


def test_import_refuses_a_log_signed_by_another_key_than_the_one_handed_over(
    tmp_path: Path,
) -> None:
    own, _ = _own_instance(tmp_path)
    own.dispose()
    other = tmp_path / "other-keys"
    InstitutionKey.create(other)
    with deployment(tmp_path / "district", codes=()) as district:
        result = _import(
            district_app(district, tmp_path).test_cli_runner(), own.settings.database_url, other
        )
        assert result.exit_code == 1 and "does not verify" in result.output, result.output
        assert district.schools() == []
        assert not (tmp_path / "district" / "keys" / "omega").exists()


def test_import_refuses_a_rewritten_log_that_forks_from_the_old_witness_checkpoint(
    tmp_path: Path,
) -> None:
    """The school's server rebuilt its log from scratch, signed by its own key, dropping the
    old witness's cosignatures: it verifies on its own, but not from the checkpoint the
    witness cosigned before the move (--trust)."""
    own, _ = _own_instance(tmp_path)
    _, checkpoints = _log(own)
    cosigned = tmp_path / "witness-checkpoint.txt"
    cosigned.write_text(checkpoints[-1][2], encoding="utf-8")
    own.dispose()
    rewritten = Runtime(
        replace(own.settings, database_url=f"sqlite:///{tmp_path / 'rewritten.sqlite'}"),
        clock=SteppingClock(datetime(2025, 1, 12)),  # dated before the district's clock
    )
    rewritten.init_db()
    School.create(rewritten).to_state("approved", amount="900.000")
    rewritten.dispose()
    with deployment(tmp_path / "district", codes=()) as district:
        runner = district_app(district, tmp_path).test_cli_runner()
        keys, trust = own.settings.keys_dir, ("--trust", str(cosigned))
        forged = _import(runner, rewritten.settings.database_url, keys, *trust)
        assert forged.exit_code == 1 and "does not verify" in forged.output, forged.output
        assert district.schools() == []
        assert _log(rewritten)[1] == []  # the check's own checkpoint was not left in the source
        true = _import(runner, own.settings.database_url, keys, *trust)
        assert true.exit_code == 0, true.output
        assert [school.code for school in district.schools()] == ["omega"]
