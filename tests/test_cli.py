"""The CLI a school's admin and an auditor use, from an empty directory to a verified bundle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from flask import Flask

from webapp import create_app
from workflow.runtime import Settings


def _app(tmp_path: Path) -> Flask:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'cli.sqlite'}",
        keys_dir=tmp_path / "keys",
        scrypt_n=2**10,
    )
    return create_app({"SETTINGS": settings, "TESTING": True})


def test_from_nothing_to_a_verified_bundle(tmp_path: Path) -> None:
    app = _app(tmp_path)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["keys", "init-institution"])
    assert result.exit_code == 0 and "Fingerprint:" in result.output
    fingerprint = result.output.split("Fingerprint:")[1].strip()
    assert runner.invoke(args=["keys", "init-institution"]).exit_code == 1
    printed = runner.invoke(args=["keys", "fingerprint"]).output.splitlines()
    assert printed[0] == fingerprint
    assert printed[1].startswith("verifier key: th-demo.edu.vn/expenses+")
    assert "initialised" in runner.invoke(args=["init-db"]).output
    demo = runner.invoke(args=["demo", "--requests", "24"])
    assert demo.exit_code == 0, demo.output
    for login in ("hanh", "nga", "long", "toan", "mai", "kiem", "admin"):
        assert f"  {login} " in demo.output
    assert "demo-2024" in demo.output
    created = runner.invoke(
        args=[
            "users",
            "create",
            "--login",
            "lan",
            "--name",
            "Phạm Thị Lan",
            "--email",
            "lan@th-demo.edu.vn",
            "--roles",
            "reviewer",
            "--password",
            "mat-khau-lan",
            "--signing-secret",
            "bi-mat-lan",
        ]
    )
    assert created.exit_code == 0, created.output
    checkpoint = runner.invoke(args=["checkpoint"])
    assert checkpoint.output.startswith("th-demo.edu.vn/expenses\n")
    verify = runner.invoke(args=["audit", "verify"])
    assert verify.exit_code == 0 and "VALID" in verify.output, verify.output
    bundle = tmp_path / "bundle.zip"
    assert runner.invoke(args=["audit", "export", str(bundle)]).exit_code == 0
    command = shutil.which("audit-verify") or ""
    argv = [command] if command else [sys.executable, "-m", "expense_audit.verify"]
    offline = subprocess.run(
        [*argv, str(bundle), "--institution-key", fingerprint], capture_output=True, text=True
    )
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert "VALID" in offline.stdout
    for fmt in ("csv", "xlsx"):
        out = tmp_path / f"ledger.{fmt}"
        assert (
            runner.invoke(args=["ledger", "export", "--format", fmt, "-o", str(out)]).exit_code == 0
        )
        assert out.stat().st_size > 100


def test_commands_fail_plainly_without_the_institution_key(tmp_path: Path) -> None:
    runner: CliRunner = _app(tmp_path).test_cli_runner()
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 1
    assert "init-institution" in result.output


def test_notify_commands_print_mail_in_development(tmp_path: Path) -> None:
    app = _app(tmp_path)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo", "--requests", "8"]).exit_code == 0
    sent = runner.invoke(args=["notify", "send"])
    assert sent.exit_code == 0 and "Subject: [2024-2025/" in sent.output
    assert "sent 0," in runner.invoke(args=["notify", "send"]).output.splitlines()[-1]
    assert (
        runner.invoke(args=["notify", "worker", "--rounds", "1", "--interval", "0"]).exit_code == 0
    )
    assert "reminder(s) queued" in runner.invoke(args=["notify", "remind"]).output
    assert runner.invoke(args=["notify", "failed"]).output == ""
