"""Step 8b: witness cosignatures. Every cosignature line on the bundle's checkpoints is listed
(witness name, key ID, time, checkpoint size); those by a witness key the auditor named
(--witness-key) must verify, and the final checkpoint must carry one by each such key, made after
the checkpoint was signed and not in the future.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..checkpoint import Checkpoint, CheckpointInvalid
from ..cosignature import (
    Cosignature,
    CosignatureInvalid,
    CosignatureMissing,
    CosignerKey,
    cosignatures_in,
    verify_cosignature,
)
from .chain import CLOCK_TOLERANCE
from .fields import FieldInvalid, parse_ts
from .report import Kind, Report, VerifyError


class WitnessKeyInvalid(VerifyError):
    """A --witness-key that is not an Ed25519 cosignature/v1 verifier key (exit code 2)."""

    code = "witness_key_invalid"


def parse_witness_keys(vkeys: Sequence[str]) -> list[CosignerKey]:
    """The witness keys the auditor named; a malformed one is WitnessKeyInvalid."""
    keys = []
    for vkey in vkeys:
        try:
            keys.append(CosignerKey.parse(vkey))
        except CosignatureInvalid as exc:
            raise WitnessKeyInvalid(f"--witness-key: {exc.message}") from None
    return keys


def check_cosignatures(
    entries: Sequence[tuple[int, str, str]],
    *,
    final: Checkpoint | None,
    witness_keys: Sequence[CosignerKey],
    now: datetime,
    report: Report,
) -> None:
    """List every cosignature; verify those by the named witnesses; require them on the final.

    1. Each checkpoint note's cosignature-shaped lines are listed (unverified unless a named
       witness's name and key ID match it; a line of an unknown key is ignored, as the spec says).
    2. A line of a named witness must verify over its checkpoint and have a plausible time.
    3. The final checkpoint must carry a verifying cosignature of every named witness.
    """
    trusted = {(k.name, k.key_id): k for k in witness_keys}
    for size, _, note in entries:
        try:
            found = cosignatures_in(note)
        except CheckpointInvalid:
            continue  # reported by check_checkpoints
        for cosignature in found:
            key = trusted.get((cosignature.name, cosignature.key_id))
            verified = None if key is None else _verified(note, size, key, now, report)
            report.cosignatures.append(_listing(cosignature, size, verified))
    if not witness_keys or final is None:
        return
    for key in witness_keys:
        try:
            verify_cosignature(final.note, key)
        except CosignatureMissing:
            report.add(
                None,
                Kind.COSIGNATURE_MISSING,
                f"the final checkpoint (size {final.size}) is not cosigned by witness {key.name} "
                f"({key.key_id.hex()})",
            )
        except CosignatureInvalid:
            pass  # reported with its checkpoint above


def _verified(note: str, size: int, key: CosignerKey, now: datetime, report: Report) -> bool:
    try:
        cosignature = verify_cosignature(note, key)
    except CosignatureInvalid as exc:
        report.add(None, Kind.COSIGNATURE_INVALID, f"checkpoint of size {size}: {exc.message}")
        return False
    signed = _note_time(note)
    moment = datetime.fromtimestamp(cosignature.timestamp, UTC) if _in_range(cosignature) else None
    if moment is None or moment > now + CLOCK_TOLERANCE:
        report.add(
            None,
            Kind.COSIGNATURE_TIME_IMPLAUSIBLE,
            f"checkpoint of size {size}: witness {key.name} cosigned it at "
            f"{_iso(cosignature)}, after now ({now:%Y-%m-%dT%H:%M:%SZ})",
        )
        return False
    if signed is not None and moment < signed - CLOCK_TOLERANCE:
        report.add(
            None,
            Kind.COSIGNATURE_TIME_IMPLAUSIBLE,
            f"checkpoint of size {size}: witness {key.name} cosigned it at {_iso(cosignature)}, "
            f"before the school signed it ({signed:%Y-%m-%dT%H:%M:%SZ})",
        )
        return False
    return True


def _note_time(note: str) -> datetime | None:
    """The checkpoint's signed time line, when there is one (the note was checked already)."""
    for line in note.split("\n\n", 1)[0].split("\n")[3:]:
        if line.startswith("time "):
            try:
                return parse_ts(line[5:])
            except FieldInvalid:
                return None
    return None


def _in_range(cosignature: Cosignature) -> bool:
    return cosignature.timestamp <= 253402300799  # 9999-12-31T23:59:59Z


def _iso(cosignature: Cosignature) -> str:
    if not _in_range(cosignature):
        return f"unix time {cosignature.timestamp}"
    return datetime.fromtimestamp(cosignature.timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _listing(cosignature: Cosignature, size: int, verified: bool | None) -> dict[str, Any]:
    return {
        "witness": cosignature.name,
        "key_id": cosignature.key_id.hex(),
        "time": _iso(cosignature),
        "timestamp": cosignature.timestamp,
        "checkpoint_size": size,
        "verified": verified,
    }
