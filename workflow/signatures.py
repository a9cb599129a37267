"""Checking a person's signature on a decision on the server, with the verifier's own code.

The server never signs for a person who holds a passkey: it checks the assertion the phone made
(expense_audit.webauthn) exactly as the auditor's verifier will, and keeps the key's counter.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from expense_audit.decision import batch_challenge, verify_decision_signature
from expense_audit.errors import Refusal, WorkflowError
from expense_audit.webauthn import Passkey, VerifiedAssertion, b64url_decode

from .models import SigningKey

PASSKEY = "passkey"
SERVER_HELD = "server-held"


class SignatureRefused(Refusal):
    """The signature does not sign this decision with the person's key."""

    code = "signature_refused"


def verification_key(key: SigningKey) -> Passkey | Ed25519PublicKey:
    """The public key a step signed with ``key`` must verify under."""
    if key.kind == PASSKEY:
        return Passkey(
            credential_id=b64url_decode(key.credential_id or "", field="credential_id"),
            public_key=b64url_decode(key.public_key, field="public_key"),
            alg=int(key.alg or 0),
            rp_id=str(key.rp_id),
            origins=tuple(key.origins or ()),
        )
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(key.public_key))


@dataclass(frozen=True)
class Verified:
    """A signature checked against a key, before the write lock: the key and its counter."""

    key_id: str
    assertion: VerifiedAssertion | None


def check_signature(
    key: SigningKey, decision: Mapping[str, Any], signature: Mapping[str, Any]
) -> None:
    """Verify ``signature`` over ``decision`` with ``key``; a passkey's counter must go up."""
    keep_counter(key, verify_signature(key, decision, signature), signature)


def verify_signature(
    key: SigningKey, decision: Mapping[str, Any], signature: Mapping[str, Any]
) -> Verified:
    """The slow part of check_signature (the cryptography), which needs no lock."""
    try:
        verified = verify_decision_signature(decision, signature, key=verification_key(key))
    except WorkflowError as error:
        raise SignatureRefused(
            "Chữ ký không hợp lệ cho bước này. Không có gì được ghi.",
            en="The signature is not valid for this step. Nothing was recorded.",
            reason=error.code,
            detail=error.message,
        ) from None
    return Verified(key.key_id, verified)


@dataclass(frozen=True)
class CounterUse:
    """What a passkey's assertion leaves on its key for the next: the counter, and the batch
    (its challenge, hex) when the assertion signed several decisions at once."""

    sign_count: int
    batch: str | None


def accept_counter(
    key: SigningKey, checked: Verified, signature: Mapping[str, Any]
) -> CounterUse | None:
    """Under the write lock: the key is still the one that verified, and a passkey's counter
    went up since its last use, or the use is the next decision of the batch the last one
    signed. Returns what to keep on the key for the next (None: not a passkey)."""
    if key.key_id != checked.key_id:
        raise SignatureRefused(
            "Khóa ký đã thay đổi trong lúc ký. Không có gì được ghi.",
            en="Your signing key changed while you signed. Nothing was recorded.",
            reason="key_changed",
        )
    verified = checked.assertion
    if verified is None:
        return None
    hashes = signature.get("batch")
    batch = batch_challenge(hashes).hex() if hashes is not None else None
    # NOTE: a counter that does not rise points at a cloned authenticator (zero: not kept).
    # One assertion signs a whole batch, whose events are committed one by one: the same
    # counter again is accepted for that batch's next decision only (the verifier's rule,
    # expense_audit.webauthn.SignCounters), not for any signature that says it is a batch.
    same_batch = (
        batch is not None and batch == key.last_batch and verified.sign_count == key.sign_count
    )
    if (
        (verified.sign_count or key.sign_count)
        and verified.sign_count <= key.sign_count
        and not same_batch
    ):
        raise SignatureRefused(
            "Thiết bị ký báo bộ đếm không tăng: có thể khóa đã bị sao chép. Không có gì được ghi.",
            en="The authenticator's counter did not go up: the key may have been cloned. "
            "Nothing was recorded.",
            reason="sign_count",
        )
    return CounterUse(verified.sign_count, batch)


def keep_counter(key: SigningKey, checked: Verified, signature: Mapping[str, Any]) -> None:
    """accept_counter() for a key read through the ORM, what it returns kept on it for the next.

    NOTE: every passkey use raises the counter the verifier holds the next one to (a key's
    confirmation and a mandate's grant too, not only steps): one not kept here lets a cloned
    authenticator's lower counter through, into an event the verifier flags.
    """
    use = accept_counter(key, checked, signature)
    if use is not None:
        key.sign_count, key.last_batch = use.sign_count, use.batch


def b64url(data: bytes) -> str:
    """Unpadded base64url, as WebAuthn and the log write binary values."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
