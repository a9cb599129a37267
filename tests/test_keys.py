"""Keys: encrypted at rest, unlocked only by the owner's secret, rotated and revoked through the log."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from expense_audit.checkpoint import (
    CheckpointInvalid,
    checkpoint_text,
    note_key_id,
    open_checkpoint,
    sign_checkpoint,
    verifier_key,
)
from workflow.errors import InstitutionKeyExists, InstitutionKeyMissing, SecretTooWeak, WrongSecret
from workflow.keys import InstitutionKey, seal_new_key, unlock
from workflow.livecheck import verify_live
from workflow.models import SigningKey

from .factories import SECRET, School


def test_private_keys_are_encrypted_at_rest(school: School, settings) -> None:  # type: ignore[no-untyped-def]
    with school.runtime.transaction() as session:
        key = session.scalars(select(SigningKey).where(SigningKey.login == "hanh")).one()
        assert key.encrypted_private is not None and key.kdf is not None
        private_raw = unlock(
            key.key_id, key.encrypted_private, key.kdf, SECRET, pepper=school.runtime.pepper
        ).private.private_bytes_raw()
        assert private_raw not in key.encrypted_private
    if settings.database_url.startswith("sqlite"):
        database = Path(settings.database_url.removeprefix("sqlite:///")).read_bytes()
        assert private_raw not in database
    with pytest.raises(WrongSecret):
        unlock(key.key_id, key.encrypted_private, key.kdf, "654321", pepper=school.runtime.pepper)
    # A copy of the database without the pepper file beside the institution key gives nothing
    # to try secrets against, not even the right one.
    with pytest.raises(InstitutionKeyMissing, match="pepper"):
        unlock(key.key_id, key.encrypted_private, key.kdf, SECRET)


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("123", "ít nhất 10"),
        ("0000000000", "chữ số"),
        ("1234567890", "chữ số"),
        ("qwertyuiop", "phổ biến"),
    ],
    ids=["short", "zeros", "digits", "common"],
)
def test_weak_signing_secrets_are_refused(secret: str, reason: str) -> None:
    with pytest.raises(SecretTooWeak, match=reason):
        seal_new_key(secret, scrypt_n=2**10)


def test_rotation_revokes_the_old_key_and_signs_with_the_new(school: School) -> None:
    runtime = school.runtime
    with runtime.transaction() as session:
        directory = runtime.directory(session)
        old = directory.active_key("hanh")
        hanh = directory.get_user("hanh")
        assert hanh is not None
        new = directory.keyring.rotate_server_key(hanh, SECRET, "moi-moi-khoa-99").key
        # Revoked from the moment the new key entered the log (the next event).
        assert old is not None and old.revoked_seq == new.registered_seq + 1
        assert new.method == "rotation" and new.confirmed_seq is not None
    number = school.draft()
    with pytest.raises(WrongSecret):
        school.act(number, "submit", "hanh", secret=SECRET)
    event = school.act(number, "submit", "hanh", secret="moi-moi-khoa-99")
    assert event.key_id == new.key_id
    with runtime.transaction() as session:
        assert verify_live(session, institution=runtime.institution, now=runtime.now()).valid


def test_institution_key_file_is_private_and_optionally_encrypted(tmp_path: Path) -> None:
    key = InstitutionKey.create(tmp_path / "a")
    assert (tmp_path / "a" / "institution.key").stat().st_mode & 0o077 == 0
    assert not InstitutionKey.readable_by_others(tmp_path / "a")
    assert key.fingerprint in (tmp_path / "a" / "institution.pub").read_text()
    with pytest.raises(InstitutionKeyExists, match="already exists"):
        InstitutionKey.create(tmp_path / "a")
    InstitutionKey.create(tmp_path / "b", passphrase="truong-demo")
    with pytest.raises(InstitutionKeyMissing):
        InstitutionKey.from_directory(tmp_path / "b")
    assert InstitutionKey.from_directory(tmp_path / "b", passphrase="truong-demo").fingerprint
    with pytest.raises(InstitutionKeyMissing, match="init-institution"):
        InstitutionKey.from_directory(tmp_path / "none")


def test_checkpoint_is_a_c2sp_signed_note(tmp_path: Path) -> None:
    key = InstitutionKey.create(tmp_path)
    root = hashlib.sha256(b"root").digest()
    checkpoint = sign_checkpoint("th-demo.edu.vn/expenses", 42, root, key.private)
    text, signature_line = checkpoint.note.split("\n\n")
    assert text == f"th-demo.edu.vn/expenses\n42\n{base64.b64encode(root).decode()}"
    assert signature_line.startswith("\u2014 th-demo.edu.vn/expenses ") and signature_line.endswith(
        "\n"
    )
    blob = base64.b64decode(signature_line.split(" ")[-1])
    expected_id = hashlib.sha256(b"th-demo.edu.vn/expenses\n\x01" + key.public_raw).digest()[:4]
    assert blob[:4] == expected_id == note_key_id("th-demo.edu.vn/expenses", key.public_raw)
    key.private.public_key().verify(blob[4:], (text + "\n").encode())
    assert open_checkpoint(checkpoint.note, key.public_raw).size == 42
    other = InstitutionKey.create(tmp_path / "other")
    with pytest.raises(CheckpointInvalid, match="no signature"):
        open_checkpoint(checkpoint.note, other.public_raw)
    with pytest.raises(CheckpointInvalid):
        open_checkpoint(checkpoint.note.replace("\n42\n", "\n43\n"), key.public_raw)
    with pytest.raises(CheckpointInvalid, match="origin"):
        open_checkpoint(checkpoint.note, key.public_raw, origin="other.example/log")


@pytest.mark.parametrize("origin", ["", "th demo/expenses", "a+b", "tab\there"])
def test_origin_that_no_signed_note_allows_is_refused_at_start_up(origin: str) -> None:
    from workflow.runtime import Settings

    with pytest.raises(CheckpointInvalid):
        Settings(origin=origin)


def test_checkpoint_size_in_non_ascii_digits_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    note = sign_checkpoint("th-demo.edu.vn/expenses", 42, b"\x00" * 32, key).note
    with pytest.raises(CheckpointInvalid, match="tree size"):
        open_checkpoint(note.replace("\n42\n", "\n4\u0662\n"), key.public_key().public_bytes_raw())


def test_checkpoint_with_too_many_signature_lines_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    note = sign_checkpoint("th-demo.edu.vn/expenses", 1, b"\x00" * 32, key).note
    extra = "\u2014 witness AAAAAAAA\n" * 101
    with pytest.raises(CheckpointInvalid, match="signature lines"):
        open_checkpoint(note + extra, key.public_key().public_bytes_raw())


def test_verifier_key_string_matches_the_signed_note_format() -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    name, key_hash, blob = verifier_key("th-demo.edu.vn/expenses", public).split("+", 2)
    assert name == "th-demo.edu.vn/expenses"
    assert bytes.fromhex(key_hash) == note_key_id(name, public)
    assert base64.b64decode(blob) == b"\x01" + public


def _signed_note(key: Ed25519PrivateKey, text: str) -> str:
    """A note over ``text`` with a valid signature, as an insider holding the key could write."""
    origin = text.split("\n", 1)[0]
    public = key.public_key().public_bytes_raw()
    blob = base64.b64encode(note_key_id(origin, public) + key.sign(text.encode())).decode()
    return f"{text}\n\u2014 {origin} {blob}\n"


def test_checkpoint_note_with_an_empty_line_is_refused_not_cut_elsewhere() -> None:
    # A signed text with a blank line in it: a reader cutting at the first blank line would see
    # a short checkpoint and take the rest for signatures; the checkpoint spec forbids the line.
    key = Ed25519PrivateKey.generate()
    text = (
        checkpoint_text("th-demo.edu.vn/expenses", 7, b"\x00" * 32)
        + "\ntime 2025-01-13T00:40:00Z\n"
    )
    note = _signed_note(key, text)
    with pytest.raises(CheckpointInvalid, match="line is empty"):
        open_checkpoint(note, key.public_key().public_bytes_raw())
    # The same note without the empty line verifies: the refusal is the empty line's.
    clean = _signed_note(key, text.replace("\n\ntime", "\ntime"))
    assert (
        open_checkpoint(clean, key.public_key().public_bytes_raw()).time == "2025-01-13T00:40:00Z"
    )


@pytest.mark.parametrize(
    "control",
    ["\x00", "\x07", "\x1b[2J", "\r", "\t", "\x7f"],
    ids=["nul", "bell", "escape", "cr", "tab", "del"],
)
def test_checkpoint_note_with_a_control_character_is_refused(control: str) -> None:
    # Terminal escapes or a NUL in a signed note would show an inspector another text than the
    # one that was signed (or cut it short in C tools); the signed-note spec forbids them.
    key = Ed25519PrivateKey.generate()
    text = checkpoint_text("th-demo.edu.vn/expenses", 7, b"\x00" * 32) + f"time{control} x\n"
    with pytest.raises(CheckpointInvalid, match="control characters"):
        open_checkpoint(_signed_note(key, text), key.public_key().public_bytes_raw())
