"""Step 8: checkpoints. Each signed note verifies, its unsigned fields repeat it, the final one
covers every event and is not older than any event; a trusted checkpoint is a prefix of the log."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from ..checkpoint import Checkpoint, CheckpointInvalid, open_checkpoint
from ..merkle import root_from_leaf_hashes
from .chain import CLOCK_TOLERANCE, Chain
from .fields import parse_ts
from .report import Kind, Report


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
    leaves: Sequence[bytes],
    public_raw: bytes | None,
    origin: str,
    chain: Chain,
    report: Report,
) -> None:
    """Every checkpoint verifies and matches the log; the final one covers every event."""
    if public_raw is None:
        report.add(
            None, Kind.CHECKPOINT_INVALID, "no institution key (log.init) to check checkpoints with"
        )
        return
    last_seq = len(leaves)
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
        if root_from_leaf_hashes(leaves[: checkpoint.size]) != checkpoint.root:
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
        return
    _check_time(final, chain, report)


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


def check_trusted(
    trusted_note: str,
    *,
    leaves: Sequence[bytes],
    public_raw: bytes | None,
    origin: str,
    report: Report,
) -> None:
    """The checkpoint the auditor kept must be a prefix of this log."""
    if public_raw is None:
        report.add(None, Kind.TRUSTED_CHECKPOINT_INVALID, "the log names no institution key")
        return
    try:
        trusted = open_checkpoint(trusted_note, public_raw, origin=origin)
    except CheckpointInvalid as exc:
        report.add(None, Kind.TRUSTED_CHECKPOINT_INVALID, exc.message)
        return
    if trusted.size > len(leaves):
        report.add(
            len(leaves),
            Kind.CHECKPOINT_BEYOND_LOG,
            f"your trusted checkpoint covers {trusted.size} events, the bundle holds {len(leaves)}: the log was truncated",
        )
    elif root_from_leaf_hashes(leaves[: trusted.size]) != trusted.root:
        report.add(
            trusted.size,
            Kind.TRUSTED_CHECKPOINT_MISMATCH,
            f"the first {trusted.size} events differ from your trusted checkpoint: history was rewritten",
        )
