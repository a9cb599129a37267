"""Step 8: checkpoints. Each signed note verifies, its unsigned fields repeat it, the final one
covers every event and is not older than any event; a trusted checkpoint is a prefix of the log,
and a consistency proof (RFC 9162) shows that the final checkpoint extends the trusted one.

Roots are taken from the one pass over the events (``Roots``): the run records the tree hash at
each size a checkpoint names, so no checkpoint makes the verifier hash the log again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..checkpoint import Checkpoint, CheckpointInvalid, open_checkpoint
from ..merkle import Frontier, ProofInvalid, verify_consistency
from .chain import CLOCK_TOLERANCE, Chain
from .fields import parse_ts
from .report import Kind, Report

PROOF_FORMAT = "expense-audit-consistency-proof"
PROOF_VERSION = 1
PROOF_FIELDS = frozenset(
    {
        "format",
        "version",
        "origin",
        "old_size",
        "old_root",
        "new_size",
        "new_root",
        "new_checkpoint",
        "proof",
    }
)


@dataclass
class Roots:
    """The tree as the events are read: its frontier and its root at each size asked for."""

    frontier: Frontier
    wanted: set[int]
    at: dict[int, bytes] = field(default_factory=dict)

    @classmethod
    def starting(cls, frontier: Frontier, sizes: Iterable[int]) -> Roots:
        """Roots from ``frontier`` on (sizes below it cannot be known; its own is)."""
        roots = cls(frontier, {s for s in sizes if s > frontier.size})
        roots.at[frontier.size] = frontier.root()
        return roots

    def append(self, leaf: bytes) -> None:
        self.frontier.append(leaf)
        if self.frontier.size in self.wanted:
            self.at[self.frontier.size] = self.frontier.root()

    @property
    def size(self) -> int:
        return self.frontier.size


def parse_checkpoint_lines(raw: bytes, report: Report) -> list[tuple[int, str, str]]:
    """(size, root hex, note) of each checkpoints.jsonl line; a malformed line is a problem."""
    entries = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line and number > 1 and raw.endswith(b"\n"):
            continue
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            entry = None
        if (
            not isinstance(entry, dict)
            or set(entry) != {"size", "root", "note"}
            or type(entry["size"]) is not int
            or not isinstance(entry["root"], str)
            or not isinstance(entry["note"], str)
        ):
            report.add(
                None, Kind.CHECKPOINT_INVALID, f"checkpoints.jsonl line {number} is malformed"
            )
            continue
        entries.append((entry["size"], entry["root"], entry["note"]))
    return entries


def check_checkpoints(
    entries: Sequence[tuple[int, str, str]],
    *,
    roots: Roots,
    public_raw: bytes | None,
    origin: str,
    chain: Chain,
    report: Report,
) -> Checkpoint | None:
    """Every checkpoint verifies and matches the log; the final one covers every event.

    Returns the final checkpoint when it covers the log.
    """
    if public_raw is None:
        report.add(
            None, Kind.CHECKPOINT_INVALID, "no institution key (log.init) to check checkpoints with"
        )
        return None
    last_seq = roots.size
    largest, final, previous = 0, None, -1
    for size, root_hex, note in entries:
        try:
            checkpoint = open_checkpoint(note, public_raw, origin=origin)
        except CheckpointInvalid as exc:
            report.add(None, Kind.CHECKPOINT_INVALID, f"checkpoint of size {size}: {exc.message}")
            continue
        if checkpoint.size != size or checkpoint.root_hex != root_hex:
            report.add(
                None,
                Kind.CHECKPOINT_MISMATCH,
                f"checkpoints.jsonl says size {size} root {root_hex[:16]:.16}…, its signed note says {checkpoint.size} {checkpoint.root_hex[:16]}…",
            )
        if checkpoint.size <= previous:
            report.add(None, Kind.CHECKPOINT_INVALID, "checkpoints.jsonl is not in increasing size")
        previous = max(previous, checkpoint.size)
        if checkpoint.size > last_seq:
            report.add(
                last_seq,
                Kind.CHECKPOINT_BEYOND_LOG,
                f"a checkpoint signed {checkpoint.size} events, the bundle holds {last_seq}: events were removed",
            )
            continue
        root = roots.at.get(checkpoint.size)
        if root is None:
            # NOTE: below a trusted checkpoint resumed from a saved state the earlier leaves are
            # not read again; those checkpoints were checked by the run that saved the state.
            continue
        if root != checkpoint.root:
            report.add(
                checkpoint.size,
                Kind.CHECKPOINT_MISMATCH,
                f"the first {checkpoint.size} events do not match the signed checkpoint",
            )
            continue
        if checkpoint.size >= largest:
            largest, final = checkpoint.size, checkpoint
            report.checkpoint_size, report.checkpoint_root = checkpoint.size, checkpoint.root_hex
    if largest != last_seq or final is None:
        report.add(
            last_seq or None,
            Kind.CHECKPOINT_MISSING,
            f"the final checkpoint covers {largest} of {last_seq} events",
        )
        return None
    _check_time(final, chain, report)
    return final


def _check_time(final: Checkpoint, chain: Chain, report: Report) -> None:
    if final.time is None:
        report.add(None, Kind.CHECKPOINT_INVALID, "the final checkpoint carries no signed time")
        return
    signed_at: datetime = parse_ts(final.time)
    if chain.latest is not None and chain.latest > signed_at + CLOCK_TOLERANCE:
        report.add(
            None,
            Kind.TIME_AFTER_CHECKPOINT,
            f"an event is dated {chain.latest_text}, after the final checkpoint signed at {final.time}",
        )


def open_trusted(
    trusted_note: str, *, public_raw: bytes | None, origin: str, report: Report
) -> Checkpoint | None:
    """The checkpoint the auditor kept, verified with the log's institution key."""
    if public_raw is None:
        report.add(None, Kind.TRUSTED_CHECKPOINT_INVALID, "the log names no institution key")
        return None
    try:
        return open_checkpoint(trusted_note, public_raw, origin=origin)
    except CheckpointInvalid as exc:
        report.add(None, Kind.TRUSTED_CHECKPOINT_INVALID, exc.message)
        return None


def check_trusted(trusted: Checkpoint, *, roots: Roots, report: Report) -> None:
    """The checkpoint the auditor kept must be a prefix of this log."""
    if trusted.size > roots.size:
        report.add(
            roots.size,
            Kind.CHECKPOINT_BEYOND_LOG,
            f"your trusted checkpoint covers {trusted.size} events, the bundle holds {roots.size}: the log was truncated",
        )
    elif roots.at.get(trusted.size) != trusted.root:
        report.add(
            trusted.size,
            Kind.TRUSTED_CHECKPOINT_MISMATCH,
            f"the first {trusted.size} events differ from your trusted checkpoint: history was rewritten",
        )


def proof_document(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> dict[str, Any]:
    """The consistency-proof file `audit prove` writes (documented in the README)."""
    return {
        "format": PROOF_FORMAT,
        "version": PROOF_VERSION,
        "origin": new.origin,
        "old_size": old.size,
        "old_root": old.root_hex,
        "new_size": new.size,
        "new_root": new.root_hex,
        "new_checkpoint": new.note,
        "proof": [node.hex() for node in proof],
    }


def check_proof(
    document: object,
    *,
    trusted: Checkpoint,
    final: Checkpoint | None,
    public_raw: bytes,
    report: Report,
) -> Checkpoint | None:
    """RFC 9162 consistency from the trusted checkpoint to the proof's signed new checkpoint,
    which must be the bundle's final one. Returns that new checkpoint when everything holds."""
    problem = _proof_problem(document, trusted=trusted, public_raw=public_raw)
    if isinstance(problem, str):
        report.add(None, Kind.CONSISTENCY_PROOF_INVALID, problem)
        return None
    if final is not None and (problem.size, problem.root) != (final.size, final.root):
        report.add(
            None,
            Kind.CONSISTENCY_PROOF_INVALID,
            f"the proof reaches size {problem.size}, the bundle's final checkpoint is {final.size} with another root",
        )
        return None
    return problem


def _proof_problem(document: object, *, trusted: Checkpoint, public_raw: bytes) -> Checkpoint | str:
    if not isinstance(document, Mapping) or set(document) != PROOF_FIELDS:
        return "not a consistency-proof file (fields differ)"
    if document["format"] != PROOF_FORMAT or document["version"] != PROOF_VERSION:
        return f"unsupported proof format {document['format']!r:.60} {document['version']!r:.20}"
    if (
        type(document["old_size"]) is not int
        or document["old_size"] != trusted.size
        or document["old_root"] != trusted.root_hex
    ):
        return f"the proof starts from size {document['old_size']!r:.20}, your trusted checkpoint is {trusted.size} {trusted.root_hex[:16]}…"
    nodes = document["proof"]
    if not isinstance(nodes, list) or len(nodes) > 128 or not all(_is_hash(n) for n in nodes):
        return "the proof is not a list of at most 128 SHA-256 hashes in hex"
    try:
        new = open_checkpoint(document["new_checkpoint"], public_raw, origin=trusted.origin)
    except CheckpointInvalid as exc:
        return f"the proof's new checkpoint: {exc.message}"
    if document["new_size"] != new.size or document["new_root"] != new.root_hex:
        return "the proof's new_size and new_root differ from its signed new checkpoint"
    try:
        verify_consistency(
            trusted.size, new.size, trusted.root, new.root, [bytes.fromhex(n) for n in nodes]
        )
    except ProofInvalid as exc:
        return f"the signed checkpoint of size {new.size} does not extend yours: {exc}"
    return new


def _is_hash(value: object) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )
