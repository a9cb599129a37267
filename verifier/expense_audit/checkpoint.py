"""Checkpoints in the C2SP tlog-checkpoint format, signed as C2SP signed notes (Ed25519)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIG_PREFIX = "\u2014 "  # em dash and a space
ED25519_TYPE = b"\x01"


class CheckpointInvalid(Exception):
    """A checkpoint note is malformed or its signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    note: str  # the whole signed note, exactly as signed

    @property
    def root_hex(self) -> str:
        return self.root.hex()


def note_key_id(name: str, public_raw: bytes) -> bytes:
    """C2SP signed-note key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE + public_raw).digest()[:4]


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    """The checkpoint body: origin, tree size, base64 root hash, each on its own line."""
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign_checkpoint(origin: str, size: int, root: bytes, key: Ed25519PrivateKey) -> Checkpoint:
    """Sign a checkpoint with the institution key; the key name is the log's origin."""
    text = checkpoint_text(origin, size, root)
    public_raw = key.public_key().public_bytes_raw()
    signature = key.sign(text.encode())
    blob = base64.b64encode(note_key_id(origin, public_raw) + signature).decode()
    return Checkpoint(origin, size, root, f"{text}\n{SIG_PREFIX}{origin} {blob}\n")


def open_checkpoint(note: str, public_raw: bytes, *, origin: str | None = None) -> Checkpoint:
    """Parse a signed checkpoint and verify its signature by the given key (fail closed)."""
    # 1. Split the text from the signature block at the last blank line.
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise CheckpointInvalid("not a signed note")
    text, sig_block = note[: cut + 1], note[cut + 2 :]
    lines = text.split("\n")
    if len(lines) < 4:
        raise CheckpointInvalid("checkpoint needs origin, size and root lines")
    note_origin, size_line, root_line = lines[0], lines[1], lines[2]
    if origin is not None and note_origin != origin:
        raise CheckpointInvalid(f"origin is {note_origin!r}, expected {origin!r}")
    if not size_line.isdigit() or (size_line != "0" and size_line.startswith("0")):
        raise CheckpointInvalid(f"bad tree size {size_line!r}")
    try:
        root = base64.b64decode(root_line, validate=True)
    except ValueError:
        raise CheckpointInvalid("root hash is not base64") from None
    if len(root) != 32:
        raise CheckpointInvalid("root hash is not 32 bytes")
    # 2. Find our key's signature line by name and key ID; verify it.
    wanted = note_key_id(note_origin, public_raw)
    public = Ed25519PublicKey.from_public_bytes(public_raw)
    for line in sig_block.split("\n")[:-1]:
        if not line.startswith(SIG_PREFIX):
            raise CheckpointInvalid("malformed signature line")
        name, _, blob = line[len(SIG_PREFIX) :].rpartition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except ValueError:
            raise CheckpointInvalid("signature is not base64") from None
        if name != note_origin or raw[:4] != wanted:
            continue  # NOTE: signatures of other keys (witnesses) are ignored, per the spec
        try:
            public.verify(raw[4:], text.encode())
        except InvalidSignature:
            raise CheckpointInvalid("signature does not verify") from None
        return Checkpoint(note_origin, int(size_line), root, note)
    raise CheckpointInvalid("no signature by the institution key")
