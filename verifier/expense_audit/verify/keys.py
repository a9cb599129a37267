"""Steps 5 and 6: signatures and keys. Which key must have signed each event, and the Ed25519 check.

Keys enter the log only through institution-signed events (log.init, key.register, key.revoke);
role grants and account locks (user.roles, user.active) are institution events too.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..canonical import event_hash, key_fingerprint, key_id, signing_message
from .fields import INSTITUTION
from .report import Kind, Problem, Report


@dataclass
class Key:
    owner: str
    public_hex: str
    registered_seq: int  # the event that registered it; it signs from the next one on
    revoked_seq: int | None = None

    def valid_at(self, seq: int) -> bool:
        return seq > self.registered_seq and (self.revoked_seq is None or seq <= self.revoked_seq)


@dataclass
class Keyring:
    """Keys, roles and locked accounts as the institution events so far establish them."""

    pinned: str | None = None
    keys: dict[str, Key] = field(default_factory=dict)
    roles: dict[str, set[str]] = field(default_factory=dict)
    locked: set[str] = field(default_factory=set)
    institution_key: str | None = None
    fingerprint: str = ""

    def signing_key(self, seq: int, body: dict[str, Any], report: Report) -> bytes | None:
        """The public key that must verify this event, or None (and a problem) if there is none."""
        kid, actor = body["key"], body["actor"]
        if body["action"] == "log.init" and actor == INSTITUTION:
            if seq != 1 or self.institution_key is not None:
                report.add(seq, Kind.FORBIDDEN_STEP, "log.init may only be the first event")
                return None
            self._init(seq, body, report)
        key = self.keys.get(kid)
        if key is None:
            report.add(seq, Kind.UNKNOWN_KEY, f"key {kid} was never registered in this log")
            return None
        if not key.valid_at(seq) and not (seq == 1 and kid == self.institution_key):
            until = key.revoked_seq if key.revoked_seq is not None else "now"
            report.add(
                seq,
                Kind.KEY_NOT_VALID,
                f"key {kid} of {key.owner} is valid for seq {key.registered_seq + 1}..{until}",
            )
        if key.owner != actor:
            report.add(
                seq, Kind.KEY_OWNER_MISMATCH, f"key {kid} belongs to {key.owner}, actor is {actor}"
            )
        return bytes.fromhex(key.public_hex)

    def _init(self, seq: int, body: dict[str, Any], report: Report) -> None:
        public_hex = body["data"]["institution_key"]
        public_raw = bytes.fromhex(public_hex)
        fingerprint = key_fingerprint(public_raw)
        if body["data"]["fingerprint"] != fingerprint:
            report.add(seq, Kind.MALFORMED, "log.init names a fingerprint that is not its key's")
        self.fingerprint = fingerprint
        # NOTE: a pin is compared in full, never as a prefix: grinding a prefix is instant.
        if self.pinned is not None and fingerprint != self.pinned:
            report.add(
                seq,
                Kind.INSTITUTION_KEY_MISMATCH,
                f"log is signed by {fingerprint}, you trust {self.pinned}",
            )
        self.institution_key = key_id(public_raw)
        self.keys[self.institution_key] = Key(INSTITUTION, public_hex, registered_seq=0)

    def apply(self, seq: int, body: dict[str, Any], report: Report) -> None:
        """Apply an institution event (fields already type-checked)."""
        if body["key"] != self.institution_key:
            report.add(
                seq, Kind.FORBIDDEN_STEP, "institution events must be signed by the institution key"
            )
            return
        action, data = body["action"], body["data"]
        if action == "user.roles":
            self.roles[data["login"]] = set(data["roles"])
        elif action == "user.active":
            if data["active"]:
                self.locked.discard(data["login"])
            else:
                self.locked.add(data["login"])
        elif action == "key.register":
            try:
                Ed25519PublicKey.from_public_bytes(bytes.fromhex(data["public_key"]))
            except ValueError:
                report.add(seq, Kind.UNKNOWN_KEY, "registered key is not an Ed25519 key")
                return
            if data["key_id"] in self.keys:
                report.add(seq, Kind.FORBIDDEN_STEP, f"key id {data['key_id']} registered twice")
                return
            if key_id(bytes.fromhex(data["public_key"])) != data["key_id"]:
                report.add(seq, Kind.MALFORMED, "registered key id is not the key's fingerprint")
                return
            self.keys[data["key_id"]] = Key(data["owner"], data["public_key"], registered_seq=seq)
        elif action == "key.revoke":
            key = self.keys.get(data["key_id"])
            if key is None or key.owner != data["owner"] or key.revoked_seq is not None:
                report.add(seq, Kind.FORBIDDEN_STEP, f"revokes key {data['key_id']} it cannot")
                return
            key.revoked_seq = seq

    def keys_file(self) -> list[dict[str, Any]]:
        """keys.json as the log implies it, in registration order."""
        entries: list[dict[str, Any]] = []
        for kid, key in self.keys.items():
            entry: dict[str, Any] = {
                "key_id": kid,
                "owner": key.owner,
                "public_key": key.public_hex,
            }
            if kid == self.institution_key:
                entry["fingerprint"] = self.fingerprint
                entry["registered_seq"] = 1
            else:
                entry["registered_seq"] = key.registered_seq
            entry["revoked_seq"] = key.revoked_seq
            entries.append(entry)
        return entries


# (seq, request, exact body bytes, claimed hash, signature, public key that must verify it)
Crypto = tuple[int, Any, bytes, str, bytes, bytes | None]
BATCH = 2048


def crypto_checks(items: list[Crypto]) -> list[Problem]:
    """Hash and signature of a batch of events (in worker processes when --jobs > 1)."""
    problems = []
    keys: dict[bytes, Ed25519PublicKey] = {}
    for seq, request, body_bytes, claimed, sig, public_raw in items:
        actual = event_hash(body_bytes)
        if actual != claimed:
            problems.append(
                Problem(
                    seq,
                    Kind.HASH_MISMATCH,
                    f"body hashes to {actual[:16]}…, line claims {claimed[:16]}…",
                    request,
                )
            )
        if public_raw is None:
            continue
        public = keys.get(public_raw)
        if public is None:
            public = keys[public_raw] = Ed25519PublicKey.from_public_bytes(public_raw)
        try:
            public.verify(sig, signing_message(body_bytes))
        except InvalidSignature:
            problems.append(
                Problem(
                    seq,
                    Kind.BAD_SIGNATURE,
                    "signature does not verify with the actor's key",
                    request,
                )
            )
    return problems


class Pool:
    """Crypto checks in-process (jobs=1) or in worker processes, a bounded number in flight."""

    def __init__(self, jobs: int) -> None:
        # NOTE: jobs counts processes, this one included: it replays while jobs - 1 workers check
        # hashes and signatures (on a 2-core machine, 2 workers plus this one only contend).
        self.executor = ProcessPoolExecutor(max_workers=jobs - 1) if jobs > 1 else None
        self.pending: deque[Future[list[Problem]]] = deque()
        self.limit = max(2, jobs * 3)

    def submit(self, batch: list[Crypto], report: Report) -> None:
        if not batch:
            return
        if self.executor is None:
            report.problems.extend(crypto_checks(batch))
            return
        self.pending.append(self.executor.submit(crypto_checks, batch))
        while len(self.pending) > self.limit:
            report.problems.extend(self.pending.popleft().result())

    def finish(self, report: Report) -> None:
        while self.pending:
            report.problems.extend(self.pending.popleft().result())

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)
