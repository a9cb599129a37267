"""A software WebAuthn authenticator (ES256 and Ed25519) for tests.

It answers navigator.credentials.create() / .get() the way a browser would hand the result to the
page: PublicKeyCredential JSON (``toJSON()``, as @simplewebauthn/browser and py_webauthn expect),
binary members as unpadded base64url, attestation "none". Knobs let a test make the answers
wrong in one named way at a time (UV off, another rpId, another origin, a counter going back...).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from expense_audit.webauthn import (
    EDDSA,
    ES256,
    FLAG_AT,
    FLAG_BE,
    FLAG_BS,
    FLAG_UP,
    FLAG_UV,
    P256_ORDER,
    b64url_encode,
)

SOFT_AAGUID = bytes(16)  # "none" attestation: the AAGUID is zeroed anyway


class SoftAuthenticator:
    """One credential on one (software) device, bound to one relying party."""

    def __init__(
        self,
        *,
        alg: int = ES256,
        rp_id: str = "th-demo.edu.vn",
        origin: str = "https://th-demo.edu.vn",
        keeps_counter: bool = True,
        synced: bool = False,
        credential_id: bytes | None = None,
    ) -> None:
        if alg == ES256:
            self._private: ec.EllipticCurvePrivateKey | Ed25519PrivateKey = ec.generate_private_key(
                ec.SECP256R1()
            )
        elif alg == EDDSA:
            self._private = Ed25519PrivateKey.generate()
        else:
            raise ValueError(f"the soft authenticator makes ES256 (-7) or EdDSA (-8), not {alg}")
        self.alg = alg
        self.rp_id = rp_id
        self.origin = origin
        self.keeps_counter = keeps_counter
        self.synced = synced
        self.credential_id = credential_id or os.urandom(16)
        self.sign_count = 0
        self.user_handle: bytes | None = None

    # --- What the relying party learns. ----------------------------------------------------------

    @property
    def spki(self) -> bytes:
        """The public key as SubjectPublicKeyInfo DER (what getPublicKey() returns)."""
        return self._private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def cose_key(self) -> bytes:
        """The public key as a COSE_Key in CBOR, as it sits in attestedCredentialData."""
        public = self._private.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            numbers = public.public_numbers()
            key: dict[int, Any] = {
                1: 2,  # kty: EC2
                3: ES256,
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        else:
            key = {1: 1, 3: EDDSA, -1: 6, -2: public.public_bytes_raw()}  # kty OKP, crv Ed25519
        return cbor2.dumps(key, canonical=True)

    # --- Ceremonies. ------------------------------------------------------------------------------

    def create(
        self,
        challenge: bytes,
        *,
        user_id: bytes,
        rp_id: str | None = None,
        origin: str | None = None,
        uv: bool = True,
    ) -> dict[str, Any]:
        """Answer navigator.credentials.create(): PublicKeyCredential JSON, attestation "none"."""
        self.user_handle = user_id
        client_data = self._client_data("webauthn.create", challenge, origin or self.origin, False)
        flags = FLAG_UP | FLAG_AT | (FLAG_UV if uv else 0) | self._backup_flags()
        attested = (
            SOFT_AAGUID
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self.cose_key
        )
        auth_data = self._auth_head(rp_id, flags, self.sign_count) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url_encode(self.credential_id),
            "rawId": b64url_encode(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url_encode(client_data),
                "attestationObject": b64url_encode(attestation),
                "authenticatorData": b64url_encode(auth_data),
                "transports": ["internal", "hybrid"],
                "publicKeyAlgorithm": self.alg,
                "publicKey": b64url_encode(self.spki),
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {"credProps": {"rk": True}},
        }

    def get(
        self,
        challenge: bytes,
        *,
        rp_id: str | None = None,
        origin: str | None = None,
        uv: bool = True,
        up: bool = True,
        client_type: str = "webauthn.get",
        cross_origin: bool = False,
        sign_count: int | None = None,
        high_s: bool | None = None,
    ) -> dict[str, Any]:
        """Answer navigator.credentials.get() for ``challenge``: PublicKeyCredential JSON.

        ``sign_count`` forces the counter (e.g. to make it go back); ``high_s`` forces an ES256
        signature's s into the upper (True) or lower (False) half of the group order.
        """
        if sign_count is None:
            if self.keeps_counter:
                self.sign_count += 1
            sign_count = self.sign_count
        client_data = self._client_data(client_type, challenge, origin or self.origin, cross_origin)
        flags = (FLAG_UP if up else 0) | (FLAG_UV if uv else 0) | self._backup_flags()
        auth_data = self._auth_head(rp_id, flags, sign_count)
        signature = self._sign(auth_data + hashlib.sha256(client_data).digest(), high_s)
        return {
            "id": b64url_encode(self.credential_id),
            "rawId": b64url_encode(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url_encode(client_data),
                "authenticatorData": b64url_encode(auth_data),
                "signature": b64url_encode(signature),
                "userHandle": b64url_encode(self.user_handle) if self.user_handle else None,
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }

    # --- Steps. -----------------------------------------------------------------------------------

    def _backup_flags(self) -> int:
        return FLAG_BE | FLAG_BS if self.synced else 0

    def _auth_head(self, rp_id: str | None, flags: int, sign_count: int) -> bytes:
        rp_id_hash = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        return rp_id_hash + bytes([flags]) + sign_count.to_bytes(4, "big")

    @staticmethod
    def _client_data(kind: str, challenge: bytes, origin: str, cross_origin: bool) -> bytes:
        # Browsers serialize these members in this order, without spaces (WebAuthn §5.8.1.1).
        return json.dumps(
            {
                "type": kind,
                "challenge": b64url_encode(challenge),
                "origin": origin,
                "crossOrigin": cross_origin,
            },
            separators=(",", ":"),
        ).encode()

    def _sign(self, message: bytes, high_s: bool | None) -> bytes:
        if isinstance(self._private, Ed25519PrivateKey):
            return self._private.sign(message)
        signature = self._private.sign(message, ec.ECDSA(hashes.SHA256()))
        if high_s is None:
            return signature
        r, s = decode_dss_signature(signature)
        if (s > P256_ORDER // 2) != high_s:
            s = P256_ORDER - s
        return encode_dss_signature(r, s)


def mirror_es256(signature: bytes) -> bytes:
    """The other valid ES256 signature over the same message: (r, s) becomes (r, n - s)."""
    r, s = decode_dss_signature(signature)
    return encode_dss_signature(r, P256_ORDER - s)
