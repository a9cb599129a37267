"""Canonical event form: RFC 8785 JSON, hashes and the domain-separated signing message."""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

SIGNING_PREFIX = b"expense-audit/v1\n"
GENESIS_PREV = "0" * 64


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 (JCS) serialization of ``value``."""
    return rfc8785.dumps(value)


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def event_hash(body_bytes: bytes) -> str:
    """Hash of an event: SHA-256 over its canonical body bytes."""
    return sha256_hex(body_bytes)


def signing_message(body_bytes: bytes) -> bytes:
    """The bytes an actor signs: a fixed context prefix, then the canonical body."""
    # NOTE: the prefix makes a signature useless in any other protocol that signs raw JSON.
    return SIGNING_PREFIX + body_bytes


def key_fingerprint(public_raw: bytes) -> str:
    """Full hex SHA-256 fingerprint of a raw 32-byte Ed25519 public key."""
    return sha256_hex(public_raw)


def key_id(public_raw: bytes) -> str:
    """Short key id used in event bodies: the first 16 hex digits of the fingerprint."""
    return key_fingerprint(public_raw)[:16]
