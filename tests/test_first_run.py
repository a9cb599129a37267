"""A new user's first minutes with `scripts/run.sh`: what they see, where mail goes, a second run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from .smtp_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def _start(tmp_path: Path, port: int, *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    env = {
        **os.environ,
        "PORT": str(port),
        "DEMO_REQUESTS": "3",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite'}",
        "EXPENSES_KEYS": str(tmp_path / "keys"),
        "EXPENSES_DEMO_MAIL": str(tmp_path / "demo-mail.txt"),
        "EXPENSES_SCRYPT_N": "1024",
    }
    env.pop("EXPENSES_BASE_URL", None)
    env.pop("EXPENSES_SMTP_HOST", None)
    process = subprocess.Popen(
        ["bash", "scripts/run.sh", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if "Open http://" in line:
            break
    else:
        pytest.fail("run.sh ended early:\n" + "\n".join(lines[-40:]))
    for _ in range(150):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    return process, lines


def _stop(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    assert process.stdout is not None
    process.stdout.close()


def test_new_user_sees_the_logins_last_and_mail_links_follow_port(tmp_path: Path) -> None:
    port = free_port()
    process, lines = _start(tmp_path, port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/favicon.ico", timeout=5) as icon:
            assert icon.status == 200 and b"<svg" in icon.read()
        # NOTE: the mail worker delivers every few seconds: wait for its first round.
        mail_file = tmp_path / "demo-mail.txt"
        for _ in range(300):
            if mail_file.exists() and "http://" in mail_file.read_text():
                break
            time.sleep(0.2)
    finally:
        _stop(process)
    tail = "\n".join(lines[-14:])
    assert "hanh" in tail and "demo-2024" in tail and "ky-demo-2024" in tail
    assert f"demo-mail.txt (links point to http://localhost:{port})" in tail
    mail = (tmp_path / "demo-mail.txt").read_text()
    assert f"http://localhost:{port}/" in mail and "localhost:5000" not in mail

    # a second start: no pip, and the old database is named, not silently reused
    again, lines = _start(tmp_path, port)
    _stop(again)
    output = "\n".join(lines)
    assert "Installing" not in output
    assert "Reusing the demo database" in output and "--reset" in output
    assert "already holds 3 requests" in output

    fresh, lines = _start(tmp_path, port, "--reset")
    _stop(fresh)
    output = "\n".join(lines)
    assert "Removed the old demo database" in output and "Reusing" not in output
