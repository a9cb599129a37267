"""Canonical event form: RFC 8785 JSON, hashes and the domain-separated signing message."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import rfc8785

SIGNING_PREFIX = b"expense-audit/v1\n"
GENESIS_PREV = "0" * 64


_MAX_SAFE_INT = 2**53 - 1
_NON_BMP = re.compile(rb"[\xf0-\xff]")  # lead bytes of 4-byte UTF-8 sequences


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 (JCS) serialization of ``value``.

    NOTE: the same fast path as parse_canonical: for plain JSON (string keys, no floats, integers
    within 2^53, text inside the Basic Multilingual Plane) the C-accelerated json.dumps writes
    exactly RFC 8785; anything else is serialized by the rfc8785 package. A property test
    (tests/test_canonical_fast.py) keeps the two equal.
    """
    if _plain(value):
        try:
            fast = json.dumps(
                value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            ).encode()
        except UnicodeEncodeError:  # a lone surrogate: rfc8785 decides
            pass
        else:
            if not _NON_BMP.search(fast):
                return fast
    return rfc8785.dumps(value)


def _plain(value: Any) -> bool:
    """Only dicts with str keys, lists, str, bool, None and integers within 2^53."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_MAX_SAFE_INT <= value <= _MAX_SAFE_INT)
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if kind is list:
        return all(_plain(item) for item in value)
    return False


class _NotFast(Exception):
    pass


def _no_float(text: str) -> float:
    raise _NotFast


def _safe_int(text: str) -> int:
    value = int(text)
    if abs(value) > _MAX_SAFE_INT:
        raise _NotFast
    return value


def parse_canonical(raw: bytes) -> tuple[Any, bool]:
    """Parse an event body and tell whether ``raw`` is exactly its RFC 8785 form.

    NOTE: for JSON without floats, without integers beyond 2^53 and without characters outside
    the Basic Multilingual Plane, RFC 8785 output equals the C-accelerated
    ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``: object keys sort by
    code point (= UTF-16 unit order inside the BMP) and strings escape the same characters. Event
    bodies are always such JSON, so this fast path decides them; anything else (a float, a huge
    integer, a 4-byte UTF-8 sequence, any mismatch) is decided by the rfc8785 package itself.
    """
    if not _NON_BMP.search(raw):
        try:
            value = json.loads(raw, parse_float=_no_float, parse_int=_safe_int)
        except _NotFast:
            pass
        else:
            fast = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            if fast.encode() == raw:
                return value, True
    value = json.loads(raw)
    try:
        return value, canonical_json(value) == raw
    except (rfc8785.CanonicalizationError, ValueError, TypeError):
        return value, False


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
