"""Passkey registration on the server: verify the browser's answer, keep the key as SPKI DER.

The offline verifier reads no CBOR, so the COSE key of a new credential is converted here, once,
into SubjectPublicKeyInfo DER plus its COSE algorithm; that is what the enrollment event records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from webauthn import verify_registration_response
from webauthn.helpers import decode_credential_public_key, decoded_public_key_to_cryptography
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException

from expense_audit.errors import WorkflowError
from expense_audit.webauthn import Passkey, load_public_key, passkey_key_id

# NOTE: the offline verifier accepts exactly these two; offering more at registration would
# enroll keys whose signatures every later verification refuses.
SUPPORTED_ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
]


class PasskeyRegistrationRefused(WorkflowError):
    """The browser's registration answer did not verify (challenge, origin, rpId, UV, algorithm)."""

    code = "passkey_registration_refused"


@dataclass(frozen=True)
class RegisteredPasskey:
    """A verified new credential, in the form the enrollment event records."""

    credential_id: bytes
    public_key: bytes  # SubjectPublicKeyInfo DER
    alg: int  # -7 ES256 or -8 EdDSA
    sign_count: int
    backed_up: bool  # a synced passkey (iCloud Keychain, Google Password Manager...)
    aaguid: str
    rp_id: str
    origins: tuple[str, ...]

    @property
    def key_id(self) -> str:
        """The id decisions signed by this passkey carry in their ``key`` member."""
        return passkey_key_id(self.public_key)

    def as_passkey(self) -> Passkey:
        """The verifier's view of this key."""
        return Passkey(self.credential_id, self.public_key, self.alg, self.rp_id, self.origins)


def spki_from_registration(
    credential: Mapping[str, Any] | str,
    *,
    expected_challenge: bytes,
    rp_id: str,
    origins: Sequence[str],
) -> RegisteredPasskey:
    """Verify a navigator.credentials.create() answer (PublicKeyCredential JSON) with UV required.

    Returns the credential with its COSE public key converted to SPKI DER. The key comes from the
    verified attestation, never from the client's separate ``response.publicKey`` member.
    """
    try:
        verified = verify_registration_response(
            credential=dict(credential) if isinstance(credential, Mapping) else credential,
            expected_challenge=expected_challenge,
            expected_rp_id=rp_id,
            expected_origin=list(origins),
            require_user_verification=True,
            supported_pub_key_algs=SUPPORTED_ALGORITHMS,
        )
        decoded = decode_credential_public_key(verified.credential_public_key)
        public = decoded_public_key_to_cryptography(decoded)
    except (WebAuthnException, ValueError) as exc:
        raise PasskeyRegistrationRefused(
            f"passkey registration refused: {exc}", reason=str(exc)
        ) from exc
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    alg = int(decoded.alg)
    # The same check the offline verifier makes (ES256 must be P-256, -8 must be Ed25519).
    load_public_key(spki, alg)
    return RegisteredPasskey(
        credential_id=verified.credential_id,
        public_key=spki,
        alg=alg,
        sign_count=verified.sign_count,
        backed_up=verified.credential_backed_up,
        aaguid=verified.aaguid,
        rp_id=rp_id,
        origins=tuple(origins),
    )
