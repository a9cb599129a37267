"""Production start-up refuses unsafe configurations; the app runs under gunicorn."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from webapp import UnsafeConfiguration, create_app
from workflow.keys import InstitutionKey
from workflow.runtime import Settings

from .smtp_server import free_port

GOOD_SECRET = "x" * 40


def _settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'p.sqlite'}", keys_dir=tmp_path / "keys")


def test_production_refuses_without_secret_key(tmp_path: Path) -> None:
    InstitutionKey.create(tmp_path / "keys")
    with pytest.raises(UnsafeConfiguration, match="EXPENSES_SECRET_KEY"):
        create_app({"SETTINGS": _settings(tmp_path), "ENV": "production"})


def test_production_refuses_debug(tmp_path: Path) -> None:
    InstitutionKey.create(tmp_path / "keys")
    with pytest.raises(UnsafeConfiguration, match="debug"):
        create_app(
            {
                "SETTINGS": _settings(tmp_path),
                "ENV": "production",
                "SECRET_KEY": GOOD_SECRET,
                "DEBUG": True,
            }
        )


def test_production_refuses_institution_key_readable_by_others(tmp_path: Path) -> None:
    InstitutionKey.create(tmp_path / "keys")
    os.chmod(tmp_path / "keys" / "institution.key", 0o644)
    with pytest.raises(UnsafeConfiguration, match="chmod 600"):
        create_app(
            {"SETTINGS": _settings(tmp_path), "ENV": "production", "SECRET_KEY": GOOD_SECRET}
        )
    os.chmod(tmp_path / "keys" / "institution.key", 0o600)
    assert create_app(
        {"SETTINGS": _settings(tmp_path), "ENV": "production", "SECRET_KEY": GOOD_SECRET}
    )


def test_runs_under_gunicorn(tmp_path: Path) -> None:
    gunicorn = shutil.which("gunicorn") or str(Path(sys.executable).parent / "gunicorn")
    InstitutionKey.create(tmp_path / "keys")
    port = free_port()
    env = {
        **os.environ,
        "EXPENSES_ENV": "production",
        "EXPENSES_SECRET_KEY": GOOD_SECRET,
        "EXPENSES_KEYS": str(tmp_path / "keys"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'g.sqlite'}",
    }
    root = Path(__file__).resolve().parent.parent
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [gunicorn, "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=root,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/healthz", timeout=2
                ) as response:
                    assert response.status == 200
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("gunicorn did not answer: " + (tmp_path / "gunicorn.log").read_text())
    finally:
        server.terminate()
        server.wait(10)
        log.close()


def test_translations_compile_outside_a_read_only_package() -> None:
    from webapp.i18n import SOURCES, compile_catalogs

    folder = compile_catalogs("/proc/not-writable")  # falls back to a temporary folder
    assert (folder / "vi" / "LC_MESSAGES" / "messages.mo").exists()
    assert not (SOURCES / "vi" / "LC_MESSAGES" / "messages.mo").exists()
