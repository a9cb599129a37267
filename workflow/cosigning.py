"""The school's side of witnessing: submit each new checkpoint with its consistency proof to the
district's witness, keep the cosignatures it returns, and put them on the checkpoints' notes.

The witness is either an object in this process (``LocalWitness``: the district's witness database
reachable from here) or a tlog-witness HTTP service (``HttpWitness``: POST <url>/add-checkpoint).
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from expense_audit.checkpoint import Checkpoint
from expense_audit.cosignature import (
    CosignatureInvalid,
    CosignatureMissing,
    CosignerKey,
    cosignatures_in,
    verify_cosignature,
    with_cosignatures,
)
from expense_audit.merkle import consistency_proof

from .audit import event_leaf, iter_events
from .clock import Clock
from .models import CheckpointCosignature, CheckpointRow
from .witness import (
    OldSizeMismatch,
    RequestMalformed,
    Witness,
    WitnessError,
    WitnessKey,
    add_checkpoint_body,
)

log = logging.getLogger(__name__)
SIZE_CONTENT_TYPE = "text/x.tlog.size"


class WitnessUnreachable(WitnessError):
    """The witness did not answer, or answered outside the protocol."""

    code = "witness_unreachable"
    status = 502


class WitnessClient(Protocol):
    """Where checkpoints go to be cosigned (tlog-witness add-checkpoint)."""

    def add_checkpoint(
        self, origin: str, note: str, *, old_size: int, proof: Sequence[bytes]
    ) -> list[str]:
        """The cosignature lines for ``note``; OldSizeMismatch(latest_size=...) on a 409."""
        ...


class LocalWitness:
    """A witness whose database this process reaches: one transaction per submission."""

    def __init__(self, sessions: sessionmaker[Session], *, key: WitnessKey, clock: Clock) -> None:
        self.sessions = sessions
        self.key = key
        self.clock = clock

    def add_checkpoint(
        self, origin: str, note: str, *, old_size: int, proof: Sequence[bytes]
    ) -> list[str]:
        with self.sessions() as session, session.begin():
            witness = Witness(session, key=self.key, clock=self.clock)
            return [witness.add_checkpoint(origin, note, old_size=old_size, proof=proof).line]


class HttpWitness:
    """A tlog-witness service: POST <url>/add-checkpoint."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise WitnessUnreachable(f"the witness URL must be http(s), not {url!r:.80}")
        self.url = url.rstrip("/") + "/add-checkpoint"
        self.timeout = timeout

    def add_checkpoint(
        self, origin: str, note: str, *, old_size: int, proof: Sequence[bytes]
    ) -> list[str]:
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked in __init__)
            self.url,
            data=add_checkpoint_body(old_size, proof, note),
            method="POST",
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body = response.read(64 * 1024).decode("utf-8")
        except urllib.error.HTTPError as exc:
            text = exc.read(1024).decode("utf-8", "replace")
            if exc.code == 409 and exc.headers.get("Content-Type", "").startswith(
                SIZE_CONTENT_TYPE
            ):
                size = text.strip()
                if size.isascii() and size.isdigit():
                    raise OldSizeMismatch(
                        f"the witness last cosigned size {size}", latest_size=int(size)
                    ) from None
            error = WitnessError(f"the witness refused the checkpoint: {exc.code} {text:.200}")
            error.status = exc.code
            raise error from None
        except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
            raise WitnessUnreachable(f"the witness at {self.url} did not answer: {exc}") from None
        lines = [line + "\n" for line in body.split("\n") if line]
        if not lines or not all(line.startswith("\u2014 ") for line in lines):
            raise WitnessUnreachable("the witness's answer holds no signature lines")
        return lines


def stored_lines(session: Session, size: int, note: str) -> list[str]:
    """The cosignature lines kept for the checkpoint of ``size`` with exactly this note."""
    rows = session.scalars(
        select(CheckpointCosignature)
        .where(CheckpointCosignature.size == size)
        .order_by(CheckpointCosignature.id)
    ).all()
    return [row.line for row in rows if row.note == note]


def cosigned_notes(session: Session, rows: Sequence[CheckpointRow]) -> list[str]:
    """Each checkpoint's note with every cosignature kept for it appended (C2SP signed note)."""
    if not rows:
        return []
    kept: dict[tuple[int, str], list[str]] = {}
    for cosignature in session.scalars(
        select(CheckpointCosignature)
        .where(CheckpointCosignature.size >= rows[0].size)
        .order_by(CheckpointCosignature.id)
    ):
        kept.setdefault((cosignature.size, cosignature.note), []).append(cosignature.line)
    return [with_cosignatures(row.note, kept.get((row.size, row.note), [])) for row in rows]


def submit_checkpoint(
    session: Session,
    checkpoint: Checkpoint,
    *,
    witness: WitnessClient,
    now: datetime,
    witness_key: CosignerKey | None = None,
) -> list[str]:
    """Have ``witness`` cosign ``checkpoint`` (already stored) and keep its cosignatures.

    The proof starts from the largest size this log was cosigned at; when the witness answers
    that it holds another size (409), the proof is made again from that size, once.
    ``witness_key``: when given, a returned line that does not verify by it is refused.
    """
    kept = stored_lines(session, checkpoint.size, checkpoint.note)
    if kept:
        return kept
    leaves = [event_leaf(e.hash, e.sig) for e in iter_events(session)][: checkpoint.size]
    old_size = (
        session.scalars(
            select(CheckpointCosignature.size)
            .where(CheckpointCosignature.size <= checkpoint.size)
            .order_by(CheckpointCosignature.size.desc())
        ).first()
        or 0
    )
    try:
        lines = _submit(witness, checkpoint, leaves, old_size)
    except OldSizeMismatch as exc:
        latest = int(exc.latest_size)
        if latest > checkpoint.size or latest == old_size:
            raise
        lines = _submit(witness, checkpoint, leaves, latest)
    note = with_cosignatures(checkpoint.note, lines)
    found = cosignatures_in(note)
    if witness_key is not None:
        try:
            found = [verify_cosignature(note, witness_key)]
        except (CosignatureInvalid, CosignatureMissing) as exc:
            raise WitnessUnreachable(f"the witness's answer: {exc.message}") from None
    for cosignature in found:
        session.add(
            CheckpointCosignature(
                size=checkpoint.size,
                witness=cosignature.name,
                key_id=cosignature.key_id.hex(),
                timestamp=cosignature.timestamp,
                line=cosignature.line,
                note=checkpoint.note,
                created_at=now,
            )
        )
    session.flush()
    return [c.line for c in found]


def _submit(
    witness: WitnessClient, checkpoint: Checkpoint, leaves: list[bytes], old_size: int
) -> list[str]:
    if old_size > len(leaves):
        raise RequestMalformed(f"old size {old_size} beyond the log's {len(leaves)} events")
    proof = consistency_proof(leaves, old_size) if old_size else []
    return witness.add_checkpoint(
        checkpoint.origin, checkpoint.note, old_size=old_size, proof=proof
    )
