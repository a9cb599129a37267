"""The district as a witness (C2SP tlog-witness): cosign each school's checkpoints, append-only.

Per log origin the witness keeps the school's institution key and the last checkpoint it cosigned.
A new checkpoint comes with an RFC 9162 consistency proof from that size; the witness cosigns it
only if the school signed it and it extends what was cosigned before. A school that rewrote or cut
its history can then no longer obtain a cosignature, and an auditor who asks for one sees it.

No Flask here: the same class serves a district's own small witness database (`flask witness`,
POST /add-checkpoint) and, in a multi-school deployment, the district's schema.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from expense_audit.checkpoint import Checkpoint, CheckpointInvalid, check_key_name, open_checkpoint
from expense_audit.cosignature import Cosignature, CosignerKey, cosign
from expense_audit.errors import WorkflowError
from expense_audit.merkle import ProofInvalid, verify_consistency

from .clock import Clock
from .models import WitnessLog

MAX_PROOF_LINES = 63  # tlog-witness: a client MUST NOT send more
KEY_FILE = "witness.key"
VKEY_FILE = "witness.vkey"
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


class WitnessError(WorkflowError):
    """Base of the witness's refusals; ``status`` is the tlog-witness HTTP status."""

    code = "witness_error"
    status = 400


class WitnessKeyMissing(WitnessError):
    """The witness key file is missing, unreadable, or does not match its verifier key."""

    code = "witness_key_missing"
    status = 500


class RequestMalformed(WitnessError):
    """An add-checkpoint request outside the protocol (old size above the size, bad lines)."""

    code = "witness_request_malformed"


class UnknownLog(WitnessError):
    """No log of that origin is registered with the witness."""

    code = "witness_unknown_log"
    status = 404


class CheckpointNotSigned(WitnessError):
    """The checkpoint carries no valid signature by the log's registered institution key."""

    code = "witness_not_signed"
    status = 403


class OldSizeMismatch(WitnessError):
    """The request's old size is not the last size cosigned; ``latest_size`` says which is."""

    code = "witness_old_size_mismatch"
    status = 409


class RollbackRefused(OldSizeMismatch):
    """The checkpoint is smaller than one the witness already cosigned: history was cut."""

    code = "witness_rollback"


class ForkRefused(WitnessError):
    """Same size as the last cosigned checkpoint with another root: history was rewritten."""

    code = "witness_fork"
    status = 409


class ConsistencyRefused(ForkRefused):
    """The consistency proof does not verify: the new checkpoint does not extend the old one."""

    code = "witness_inconsistent"
    status = 422


@dataclass(frozen=True)
class WitnessKey:
    """The district's witness key: a name (a schema-less URL) and an Ed25519 private key."""

    name: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> CosignerKey:
        return CosignerKey(self.name, self.private.public_key().public_bytes_raw())

    @property
    def vkey(self) -> str:
        """The verifier key auditors pass to `audit-verify --witness-key`."""
        return self.public.vkey

    @classmethod
    def create(
        cls, directory: str | Path, *, name: str, passphrase: str | None = None
    ) -> WitnessKey:
        """Generate the witness key under ``directory`` (mode 0600, encrypted by a passphrase)."""
        check_key_name(name)
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        private = Ed25519PrivateKey.generate()
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase.encode())
            if passphrase
            else serialization.NoEncryption()
        )
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        try:
            fd = os.open(folder / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise WitnessKeyMissing(
                f"{folder / KEY_FILE} already exists; refusing to overwrite it."
            ) from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        key = cls(name, private)
        (folder / VKEY_FILE).write_text(key.vkey + "\n", encoding="utf-8")
        return key

    @classmethod
    def from_directory(cls, directory: str | Path, *, passphrase: str | None = None) -> WitnessKey:
        """Load the witness key and its name (from the verifier key file beside it)."""
        folder = Path(directory)
        try:
            pem = (folder / KEY_FILE).read_bytes()
            vkey = (folder / VKEY_FILE).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise WitnessKeyMissing(
                f"Witness key not found in {folder} ({exc.strerror}): run "
                "`flask --app wsgi witness init-key NAME`."
            ) from None
        try:
            private = serialization.load_pem_private_key(
                pem, passphrase.encode() if passphrase else None
            )
        except (TypeError, ValueError) as exc:
            raise WitnessKeyMissing(f"Cannot read {folder / KEY_FILE}: {exc}") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise WitnessKeyMissing(f"{folder / KEY_FILE} is not an Ed25519 key.")
        name = vkey.split("+", 1)[0]
        key = cls(name, private)
        if key.vkey != vkey:
            raise WitnessKeyMissing(f"{folder / VKEY_FILE} does not belong to {KEY_FILE}.")
        return key


class Witness:
    """Cosigns checkpoints of the logs registered with it, each only if it extends the last."""

    def __init__(self, session: Session, *, key: WitnessKey, clock: Clock) -> None:
        self.session = session
        self.key = key
        self.clock = clock

    def register_log(self, origin: str, public_raw: bytes) -> WitnessLog:
        """Accept checkpoints of ``origin`` signed by this institution key (idempotent).

        NOTE: a registered origin never changes key here: a school that lost its key is a
        decision for the district, made by removing the row knowingly, not by a request.
        """
        check_key_name(origin)
        if len(public_raw) != 32:
            raise RequestMalformed("an institution key is 32 bytes (Ed25519)")
        row = self.session.get(WitnessLog, origin)
        if row is not None:
            if row.public_key != public_raw.hex():
                raise CheckpointNotSigned(
                    f"{origin} is registered with another institution key", origin=origin
                )
            return row
        row = WitnessLog(
            origin=origin, public_key=public_raw.hex(), size=0, registered_at=self.clock()
        )
        self.session.add(row)
        self.session.flush()
        return row

    def latest(self, origin: str) -> WitnessLog | None:
        """What the witness holds for ``origin`` (None when not registered)."""
        return self.session.get(WitnessLog, origin)

    def add_checkpoint(
        self, origin: str, note: str, *, old_size: int, proof: Sequence[bytes]
    ) -> Cosignature:
        """Verify and cosign a checkpoint of ``origin``; the caller's transaction commits.

        1. The origin is registered; its row is locked for this transaction, so two submissions
           against the same old state cannot both be cosigned (tlog-witness's atomic update).
        2. The checkpoint is signed by the registered institution key, for this origin.
        3. Not smaller than the last cosigned checkpoint (rollback), and the old size is that one.
        4. Same size: same root (else a fork). Larger: the RFC 9162 proof verifies (else a fork).
        5. Record the new checkpoint, then cosign it.
        """
        if len(proof) > MAX_PROOF_LINES or any(len(node) != 32 for node in proof):
            raise RequestMalformed(f"a proof is at most {MAX_PROOF_LINES} hashes of 32 bytes")
        row = self.session.scalars(
            select(WitnessLog).where(WitnessLog.origin == origin).with_for_update()
        ).first()
        if row is None:
            raise UnknownLog(f"no log {origin!r:.80} is registered with this witness")
        checkpoint = self._open(row, note)
        if checkpoint.size < row.size:
            rollback = RollbackRefused(
                f"{origin}: a checkpoint of {checkpoint.size} events, the witness already "
                f"cosigned {row.size}: the log was cut",
                latest_size=row.size,
            )
            if old_size > checkpoint.size:
                rollback.status = 400  # tlog-witness answers this request shape with 400
            raise rollback
        if old_size > checkpoint.size:
            raise RequestMalformed(
                f"old size {old_size} is larger than the checkpoint's size {checkpoint.size}"
            )
        if old_size != row.size:
            raise OldSizeMismatch(
                f"{origin}: the witness last cosigned size {row.size}, not {old_size}",
                latest_size=row.size,
            )
        if row.size == 0 and proof:
            raise RequestMalformed(f"{origin}: a proof from size 0 must be empty")
        old_root = bytes.fromhex(row.root) if row.root is not None else b""
        if checkpoint.size == row.size and row.size > 0 and checkpoint.root != old_root:
            raise ForkRefused(
                f"{origin}: another root for size {row.size} than the one cosigned: "
                "history was rewritten",
                latest_size=row.size,
            )
        if row.size > 0:
            try:
                verify_consistency(row.size, checkpoint.size, old_root, checkpoint.root, proof)
            except ProofInvalid as exc:
                raise ConsistencyRefused(
                    f"{origin}: the checkpoint of size {checkpoint.size} does not extend the "
                    f"one cosigned at size {row.size} ({exc})",
                    latest_size=row.size,
                ) from None
        now = self.clock()
        row.size, row.root, row.note, row.cosigned_at = (
            checkpoint.size,
            checkpoint.root_hex,
            note,
            now,
        )
        self.session.flush()
        return cosign(note, self.key.private, name=self.key.name, timestamp=unix_seconds(now))

    def _open(self, row: WitnessLog, note: str) -> Checkpoint:
        try:
            return open_checkpoint(note, bytes.fromhex(row.public_key), origin=row.origin)
        except CheckpointInvalid as exc:
            raise CheckpointNotSigned(
                f"{row.origin}: not a checkpoint signed by the registered key ({exc.message})"
            ) from None


def unix_seconds(moment: datetime) -> int:
    """POSIX seconds of a naive UTC datetime (the clock's form)."""
    return int(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp())


# tlog-witness add-checkpoint, the wire form: "old N\n", proof lines, "\n", the checkpoint note.


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The request body of POST <prefix>/add-checkpoint."""
    lines = [f"old {old_size}\n", *(base64.b64encode(node).decode() + "\n" for node in proof)]
    return ("".join(lines) + "\n" + note).encode()


def parse_add_checkpoint(body: bytes) -> tuple[int, list[bytes], str]:
    """(old size, proof, note) of an add-checkpoint request body; RequestMalformed if not one."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestMalformed("the request is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise RequestMalformed("no empty line between the proof and the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    if not first.startswith("old ") or not _SIZE.fullmatch(first[4:]):
        raise RequestMalformed("the first line must be `old <size>`")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise RequestMalformed(f"more than {MAX_PROOF_LINES} proof lines")
    proof = []
    for line in lines[1:]:
        try:
            node = base64.b64decode(line, validate=True)
        except ValueError:
            raise RequestMalformed("a proof line is not base64") from None
        if len(node) != 32:
            raise RequestMalformed("a proof line is not a 32-byte hash")
        proof.append(node)
    return int(first[4:]), proof, note
