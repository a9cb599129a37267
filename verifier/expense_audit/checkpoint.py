"""Checkpoints in the C2SP tlog-checkpoint format, signed as C2SP signed notes (Ed25519).

Strict as the specs ask: the size line is ASCII digits without a leading zero, no note line is
empty or holds a control character, the key name follows the signed-note rules, and a note may
carry at most MAX_SIGNATURES signature lines. One extension line, ``time <RFC 3339 UTC>``, records
when the institution signed it (other tools ignore extension lines, as the spec lets them).
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import WorkflowError

SIG_PREFIX = "\u2014 "  # em dash and a space
ED25519_TYPE = b"\x01"
MAX_SIGNATURES = 100  # as golang.org/x/mod/sumdb/note
TIME_PREFIX = "time "
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


class CheckpointInvalid(WorkflowError):
    """A checkpoint note is malformed or its signature does not verify."""

    code = "checkpoint_invalid"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    note: str  # the whole signed note, exactly as signed
    time: str | None = None  # the signed `time` extension line, when there is one

    @property
    def root_hex(self) -> str:
        return self.root.hex()


def check_key_name(name: str) -> None:
    """Raise CheckpointInvalid unless ``name`` is a signed-note key name (and a log origin)."""
    if not name:
        raise CheckpointInvalid("a key name must not be empty")
    if "+" in name or any(c.isspace() for c in name) or _CONTROL.search(name):
        raise CheckpointInvalid(f"key name {name!r} holds a space, '+' or a control character")
    if "\ufffd" in name or not name.isprintable():
        raise CheckpointInvalid(f"key name {name!r} holds a character that cannot be printed")


def note_key_id(name: str, public_raw: bytes) -> bytes:
    """C2SP signed-note key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE + public_raw).digest()[:4]


def verifier_key(name: str, public_raw: bytes) -> str:
    """The signed-note verifier key string: name+keyid(8 hex)+base64(0x01 || public key)."""
    check_key_name(name)
    (hash32,) = struct.unpack(">I", note_key_id(name, public_raw))
    return f"{name}+{hash32:08x}+{base64.b64encode(ED25519_TYPE + public_raw).decode()}"


def checkpoint_text(origin: str, size: int, root: bytes, time: str | None = None) -> str:
    """The checkpoint body: origin, tree size, base64 root hash, then the optional time line."""
    text = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
    return text + (f"{TIME_PREFIX}{time}\n" if time is not None else "")


def sign_checkpoint(
    origin: str,
    size: int,
    root: bytes,
    key: Ed25519PrivateKey,
    *,
    now: datetime | None = None,
) -> Checkpoint:
    """Sign a checkpoint with the institution key; the key name is the log's origin."""
    check_key_name(origin)
    time = now.strftime("%Y-%m-%dT%H:%M:%SZ") if now is not None else None
    text = checkpoint_text(origin, size, root, time)
    public_raw = key.public_key().public_bytes_raw()
    signature = key.sign(text.encode())
    blob = base64.b64encode(note_key_id(origin, public_raw) + signature).decode()
    return Checkpoint(origin, size, root, f"{text}\n{SIG_PREFIX}{origin} {blob}\n", time)


def split_note(note: str) -> tuple[str, str]:
    """The text (final newline included) and the signature block of a signed note."""
    if not isinstance(note, str) or not note.endswith("\n") or _CONTROL.search(note):
        raise CheckpointInvalid("not a signed note (control characters or no final newline)")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise CheckpointInvalid("not a signed note")
    return note[: cut + 1], note[cut + 2 :]


def note_signatures(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """The text of a signed note and (key name, key ID + signature) of every signature line."""
    text, sig_block = split_note(note)
    return text, _signature_lines(sig_block)


def open_checkpoint(note: str, public_raw: bytes, *, origin: str | None = None) -> Checkpoint:
    """Parse a signed checkpoint and verify its signature by the given key (fail closed)."""
    # 1. Split the text from the signature block at the last blank line (signed-note spec).
    # NOTE: a checkpoint's text has no empty line, so a note with one is refused below rather than
    # cut at another place than other tools would cut it.
    text, sig_block = split_note(note)
    # 2. The checkpoint body: origin, size, root, extension lines.
    note_origin, size, root, time = _checkpoint_text(text, origin)
    # 3. Find our key's signature line by name and key ID; verify it.
    wanted = note_key_id(note_origin, public_raw)
    signatures = [s for name, s in _signature_lines(sig_block) if name == note_origin]
    ours = next((s for s in signatures if s[:4] == wanted), None)
    if ours is None:
        raise CheckpointInvalid("no signature by the institution key")
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(ours[4:], text.encode())
    except InvalidSignature:
        raise CheckpointInvalid("signature does not verify") from None
    return Checkpoint(note_origin, size, root, note, time)


def _checkpoint_text(text: str, origin: str | None) -> tuple[str, int, bytes, str | None]:
    """Origin, tree size, root hash and the optional time line of a checkpoint's text."""
    lines = text.split("\n")[:-1]
    if len(lines) < 3:
        raise CheckpointInvalid("checkpoint needs origin, size and root lines")
    if any(not line for line in lines):
        raise CheckpointInvalid("a checkpoint line is empty")
    note_origin, size_line, root_line = lines[0], lines[1], lines[2]
    check_key_name(note_origin)
    if origin is not None and note_origin != origin:
        raise CheckpointInvalid(f"origin is {note_origin!r}, expected {origin!r}")
    # NOTE: str.isdigit() accepts non-ASCII digits; the spec wants ASCII decimal only.
    if not _SIZE.fullmatch(size_line):
        raise CheckpointInvalid(f"bad tree size {size_line!r}")
    try:
        root = base64.b64decode(root_line, validate=True)
    except ValueError:
        raise CheckpointInvalid("root hash is not base64") from None
    if len(root) != 32:
        raise CheckpointInvalid("root hash is not 32 bytes")
    times = [line[len(TIME_PREFIX) :] for line in lines[3:] if line.startswith(TIME_PREFIX)]
    if len(times) > 1 or any(not _TIME.fullmatch(t) for t in times):
        raise CheckpointInvalid(f"bad time line {times!r:.80}")
    return note_origin, int(size_line), root, (times[0] if times else None)


def _signature_lines(sig_block: str) -> list[tuple[str, bytes]]:
    """(key name, key ID + signature) of every signature line; any malformed line is refused.

    NOTE: signatures of other keys (witnesses) are returned too and ignored by the caller.
    """
    lines = sig_block.split("\n")[:-1]
    if not lines:
        raise CheckpointInvalid("a signed note needs a signature line")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointInvalid(f"more than {MAX_SIGNATURES} signature lines")
    result = []
    for line in lines:
        if not line.startswith(SIG_PREFIX):
            raise CheckpointInvalid("malformed signature line")
        name, _, blob = line[len(SIG_PREFIX) :].rpartition(" ")
        check_key_name(name)
        try:
            raw = base64.b64decode(blob, validate=True)
        except ValueError:
            raise CheckpointInvalid("signature is not base64") from None
        if len(raw) < 5:
            raise CheckpointInvalid("signature too short")
        result.append((name, raw))
    return result
