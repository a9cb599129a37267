"""Witness cosignatures in the C2SP tlog-cosignature format (``cosignature/v1``, Ed25519).

A cosignature is one more signature line on a checkpoint's signed note, by the witness's key:

    — <witness name> base64(key ID || u64 big-endian timestamp || Ed25519 signature)

key ID = SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4], and the signature is over
``cosignature/v1\\ntime <timestamp>\\n`` followed by the whole checkpoint text (extension lines
included, signature lines not). A witness is named to a verifier by its signed-note verifier key
``name+<key ID, 8 hex>+base64(0x04 || public key)``.

Semantics (from the spec): as of the timestamp, the checkpoint is the largest consistent tree head
the witness has seen for the log's origin. The witness says nothing about extension lines.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .checkpoint import (
    SIG_PREFIX,
    CheckpointInvalid,
    check_key_name,
    note_signatures,
    split_note,
)
from .errors import WorkflowError

COSIGNATURE_TYPE = b"\x04"  # the signed-note signature type of an Ed25519 cosignature/v1
HEADER = "cosignature/v1"
MAX_TIMESTAMP = 2**63 - 1  # the spec's bound on the u64 timestamp
PAYLOAD_LENGTH = 4 + 8 + 64  # key ID, timestamp, Ed25519 signature
_KEY_HASH = re.compile(r"[0-9a-f]{8}")


class CosignatureInvalid(WorkflowError):
    """A cosignature or a witness key that is malformed, or a cosignature that does not verify."""

    code = "cosignature_invalid"


class CosignatureMissing(WorkflowError):
    """A checkpoint carries no cosignature by the witness key asked for."""

    code = "cosignature_missing"


def cosigner_key_id(name: str, public_raw: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x04 || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + COSIGNATURE_TYPE + public_raw).digest()[:4]


@dataclass(frozen=True)
class CosignerKey:
    """A witness's name and Ed25519 public key, as a verifier trusts it."""

    name: str
    public_raw: bytes

    @property
    def key_id(self) -> bytes:
        return cosigner_key_id(self.name, self.public_raw)

    @property
    def vkey(self) -> str:
        """The signed-note verifier key: name+keyid(8 hex)+base64(0x04 || public key)."""
        return (
            f"{self.name}+{self.key_id.hex()}+"
            f"{base64.b64encode(COSIGNATURE_TYPE + self.public_raw).decode()}"
        )

    @classmethod
    def parse(cls, vkey: str) -> CosignerKey:
        """Read a verifier key string; its key ID must be the one its name and key give."""
        parts = vkey.strip().split("+", 2)  # NOTE: base64 may hold "+" too
        if len(parts) != 3:
            raise CosignatureInvalid(f"{vkey!r:.80} is not a verifier key (name+keyid+key)")
        name, key_hash, encoded = parts
        try:
            check_key_name(name)
        except CheckpointInvalid as exc:
            raise CosignatureInvalid(exc.message) from None
        if not _KEY_HASH.fullmatch(key_hash):
            raise CosignatureInvalid(f"key ID {key_hash!r:.20} is not 8 lower-case hex digits")
        try:
            material = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise CosignatureInvalid("the verifier key is not base64") from None
        if len(material) != 33 or material[:1] != COSIGNATURE_TYPE:
            raise CosignatureInvalid(
                "not an Ed25519 cosignature/v1 key: expected type 0x04 and 32 bytes, found "
                f"type 0x{material[:1].hex() or '--'} and {max(0, len(material) - 1)} bytes"
            )
        key = cls(name, material[1:])
        if key.key_id.hex() != key_hash:
            raise CosignatureInvalid(
                f"the verifier key says key ID {key_hash}, its name and key give {key.key_id.hex()}"
            )
        return key


@dataclass(frozen=True)
class Cosignature:
    """One cosignature line of a note, as read (not yet verified unless it says so)."""

    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    @property
    def line(self) -> str:
        """The note signature line, final newline included."""
        payload = self.key_id + struct.pack(">Q", self.timestamp) + self.signature
        return f"{SIG_PREFIX}{self.name} {base64.b64encode(payload).decode()}\n"


def cosignature_message(text: str, timestamp: int) -> bytes:
    """What the witness signs: the header line, the time line, then the checkpoint text."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CosignatureInvalid(f"timestamp {timestamp} is outside 0..2^63-1")
    return f"{HEADER}\ntime {timestamp}\n{text}".encode()


def cosign(note: str, key: Ed25519PrivateKey, *, name: str, timestamp: int) -> Cosignature:
    """Cosign a checkpoint note (its text only; the caller checked it first)."""
    check_key_name(name)
    text, _ = note_signatures(note)
    public_raw = key.public_key().public_bytes_raw()
    signature = key.sign(cosignature_message(text, timestamp))
    return Cosignature(name, cosigner_key_id(name, public_raw), timestamp, signature)


def cosignatures_in(note: str) -> list[Cosignature]:
    """Every signature line of a note shaped like an Ed25519 cosignature (76 bytes), unverified.

    NOTE: the shape is all a reader can go by without the witness's key; an institution's own
    Ed25519 line is 68 bytes and never matches.
    """
    _, lines = note_signatures(note)
    return [_cosignature(name, raw) for name, raw in lines if len(raw) == PAYLOAD_LENGTH]


def _cosignature(name: str, raw: bytes) -> Cosignature:
    (timestamp,) = struct.unpack(">Q", raw[4:12])
    return Cosignature(name, raw[:4], timestamp, raw[12:])


def verify_cosignature(note: str, key: CosignerKey) -> Cosignature:
    """The cosignature by ``key`` on ``note``, verified (fail closed).

    1. Split the note; keep the lines whose name and key ID are the witness's (others ignored).
    2. None: CosignatureMissing. More than one: refused (a key signs a note once).
    3. The payload is key ID, a timestamp no larger than 2^63-1, and a 64-byte signature.
    4. The Ed25519 signature verifies over the cosigned message.
    """
    text, lines = note_signatures(note)
    ours = [raw for name, raw in lines if name == key.name and raw[:4] == key.key_id]
    if not ours:
        raise CosignatureMissing(f"no cosignature by witness {key.name} ({key.key_id.hex()})")
    if len(ours) > 1:
        raise CosignatureInvalid(f"witness {key.name} signed the note {len(ours)} times")
    raw = ours[0]
    if len(raw) != PAYLOAD_LENGTH:
        raise CosignatureInvalid(
            f"a cosignature/v1 line holds {PAYLOAD_LENGTH} bytes, this one {len(raw)}"
        )
    cosignature = _cosignature(key.name, raw)
    try:
        Ed25519PublicKey.from_public_bytes(key.public_raw).verify(
            cosignature.signature, cosignature_message(text, cosignature.timestamp)
        )
    except InvalidSignature:
        raise CosignatureInvalid(
            f"the cosignature by witness {key.name} does not verify over this checkpoint"
        ) from None
    return cosignature


def with_cosignatures(note: str, lines: list[str]) -> str:
    """The note with each cosignature line appended once (the C2SP way to carry them)."""
    _, sig_block = split_note(note)
    seen = set(sig_block.split("\n"))
    extra = [line.rstrip("\n") for line in lines]
    return note + "".join(f"{line}\n" for line in dict.fromkeys(extra) if line not in seen)
