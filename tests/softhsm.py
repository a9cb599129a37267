"""A SoftHSM2 token (Debian's softhsm2) holding a person's key: the PKCS#11 token of the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from .ca_tools import Person

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN, SO_PIN = "123456", "654321"


@dataclass(frozen=True)
class Token:
    module: str
    label: str
    key_label: str
    pin: str


def make_token(folder: Path, person: Person, *, label: str) -> Token:
    """A fresh token in ``folder`` with the person's private key on it.

    SoftHSM2 reads its configuration once per process (when the PKCS#11 module is first
    initialised), so the tests share one token for the whole session (conftest ``token``).
    """
    util = shutil.which("softhsm2-util")
    if util is None or not MODULE.exists():
        if os.environ.get("REQUIRE_SOFTHSM") == "1":
            pytest.fail("softhsm2 is missing: apt-get install softhsm2")
        pytest.skip("softhsm2 is not installed (apt-get install softhsm2)")
    tokens = folder / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SO_PIN],
        check=True,
        capture_output=True,
    )
    key = folder / f"{label}.pem"
    key.write_bytes(person.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    subprocess.run(
        [
            util,
            "--import",
            str(key),
            "--token",
            label,
            "--label",
            "sign",
            "--id",
            "01",
            "--pin",
            PIN,
        ],
        check=True,
        capture_output=True,
    )
    key.unlink()
    return Token(str(MODULE), label, "sign", PIN)
