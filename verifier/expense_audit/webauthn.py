"""Offline check of a WebAuthn assertion (passkey signature) with `cryptography` alone.

The verifier distribution may depend only on cryptography, rfc8785 and transitions, so nothing
here reads CBOR: the log records each passkey as SubjectPublicKeyInfo DER plus its COSE algorithm
(the server converts the COSE key once, at registration), and an assertion's authenticatorData
has a fixed 37-byte head that needs no CBOR.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from .errors import WorkflowError

ES256 = -7  # ECDSA with SHA-256 on P-256
EDDSA = -8  # EdDSA on Ed25519 (the only curve accepted under -8)
ALGORITHMS = {ES256: "ES256", EDDSA: "EdDSA"}

FLAG_UP = 0x01  # user present
FLAG_UV = 0x04  # user verified (fingerprint, face, PIN, screen lock)
FLAG_BE = 0x08  # backup eligible (a synced passkey)
FLAG_BS = 0x10  # backed up
FLAG_AT = 0x40  # attested credential data: registration only
FLAG_ED = 0x80  # extension data follows the fixed head
AUTH_DATA_HEAD = 37  # rpIdHash (32) || flags (1) || signCount (4, big-endian)

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


# --- Errors: one class per failure, each saying what was expected and what was found. -------------


class AssertionInvalid(WorkflowError):
    """Base of every refusal of a passkey assertion; ``code`` is the problem kind."""

    code = "assertion_invalid"

    def __init__(self, what: str, *, expected: Any, found: Any, **details: Any) -> None:
        super().__init__(
            f"{what}: expected {expected}, found {found}",
            expected=expected,
            found=found,
            **details,
        )


class UnsupportedAlgorithm(AssertionInvalid):
    """The key's algorithm is neither ES256 (-7) nor EdDSA/Ed25519 (-8)."""

    code = "unsupported_algorithm"


class PublicKeyInvalid(AssertionInvalid):
    """The recorded SPKI DER does not parse, or holds another key type or curve than its alg."""

    code = "public_key_invalid"


class EncodingInvalid(AssertionInvalid):
    """A field that must be unpadded base64url is not (exactly) that."""

    code = "encoding_invalid"


class CredentialMismatch(AssertionInvalid):
    """The assertion names another credential than the key it is checked against."""

    code = "credential_mismatch"


class AuthenticatorDataInvalid(AssertionInvalid):
    """authenticatorData is truncated, has trailing bytes, or carries registration data."""

    code = "authenticator_data_invalid"


class ClientDataInvalid(AssertionInvalid):
    """clientDataJSON is not a UTF-8 JSON object with the members WebAuthn defines."""

    code = "client_data_invalid"


class ClientDataTypeWrong(AssertionInvalid):
    """clientDataJSON.type is not "webauthn.get" (e.g. a registration response)."""

    code = "client_data_type_wrong"


class ChallengeMismatch(AssertionInvalid):
    """The assertion answers another challenge: it was made for another decision."""

    code = "challenge_mismatch"


class OriginNotAllowed(AssertionInvalid):
    """The assertion was made on a web origin the key was not registered for."""

    code = "origin_not_allowed"


class CrossOriginAssertion(AssertionInvalid):
    """The assertion was made inside a cross-origin iframe."""

    code = "cross_origin_assertion"


class RpIdMismatch(AssertionInvalid):
    """authenticatorData.rpIdHash is not sha256 of the key's relying-party id."""

    code = "rp_id_mismatch"


class UserPresenceMissing(AssertionInvalid):
    """The UP flag is off: nobody touched the authenticator."""

    code = "user_presence_missing"


class UserVerificationMissing(AssertionInvalid):
    """The UV flag is off: no fingerprint, face, PIN or screen lock was checked."""

    code = "user_verification_missing"


class SignCountNotIncreasing(AssertionInvalid):
    """The signature counter did not increase: the authenticator may have been cloned."""

    code = "sign_count_not_increasing"


class AssertionReplayed(AssertionInvalid):
    """The same assertion is used again for a decision it already signed."""

    code = "assertion_replayed"


class AssertionSignatureInvalid(AssertionInvalid):
    """The signature over authenticatorData || sha256(clientDataJSON) does not verify."""

    code = "assertion_signature_invalid"


# --- Values. -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Passkey:
    """A passkey as the log records it at enrollment."""

    credential_id: bytes
    public_key: bytes  # SubjectPublicKeyInfo DER
    alg: int  # ES256 or EDDSA
    rp_id: str  # e.g. "th-demo.edu.vn"
    origins: tuple[str, ...]  # e.g. ("https://th-demo.edu.vn",)


@dataclass(frozen=True)
class Assertion:
    """The parts of a navigator.credentials.get() response that the check needs."""

    credential_id: bytes
    authenticator_data: bytes
    client_data_json: bytes
    signature: bytes


@dataclass(frozen=True)
class AuthenticatorData:
    """The fixed head of authenticatorData (extension bytes, if any, are signed but not read)."""

    rp_id_hash: bytes
    flags: int
    sign_count: int
    extensions: bytes


@dataclass(frozen=True)
class ClientData:
    """The members of clientDataJSON the check reads."""

    type: str
    challenge: str
    origin: str
    cross_origin: bool


@dataclass(frozen=True)
class VerifiedAssertion:
    """What a valid assertion tells: its counter, its flags and where it was made."""

    sign_count: int
    flags: int
    origin: str

    @property
    def backup_eligible(self) -> bool:
        """True for a synced passkey (it may live on several devices)."""
        return bool(self.flags & FLAG_BE)


# --- Encoding helpers. ---------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url, as WebAuthn and the browser's JSON use it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, field: str = "value") -> bytes:
    """Decode unpadded base64url, refusing any other spelling of the same bytes."""
    if not isinstance(text, str):
        raise EncodingInvalid(
            f"{field} is not unpadded base64url",
            expected="characters A-Z a-z 0-9 - _ without '='",
            found=repr(text)[:80],
            field=field,
        )
    decoded = _b64url_canonical(text)
    if decoded is None:
        raise EncodingInvalid(
            f"{field} is not unpadded base64url",
            expected="characters A-Z a-z 0-9 - _ without '='",
            found=repr(text)[:80],
            field=field,
        )
    data, canonical = decoded
    # NOTE: non-zero padding bits decode to the same bytes; only the canonical spelling passes, so
    # one byte string has exactly one text form in the log.
    if not canonical:
        raise EncodingInvalid(
            f"{field} is not canonical base64url",
            expected=b64url_encode(data),
            found=text,
            field=field,
        )
    return data


@functools.lru_cache(maxsize=4096)
def _b64url_canonical(text: str) -> tuple[bytes, bool] | None:
    """The bytes of unpadded base64url text and whether it is their canonical spelling.

    None if the text is not that alphabet and length.

    NOTE: cached: the verifier decodes each member of a passkey signature several times (checks of
    the log body, of the signature object, the assertion); bytes are immutable.
    """
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - the pattern guards this
        return None
    return data, b64url_encode(data) == text


def passkey_key_id(spki_der: bytes) -> str:
    """Short key id of a passkey for decisions: 16 hex digits of sha256(SPKI DER)."""
    return hashlib.sha256(spki_der).hexdigest()[:16]


# --- Parsing. ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024, typed=True)
def load_public_key(spki_der: bytes, alg: int) -> ec.EllipticCurvePublicKey | Ed25519PublicKey:
    """The public key of a passkey, refusing any algorithm or curve but ES256/P-256 and Ed25519.

    NOTE: cached (a pure function of its bytes; refusals are raised, never cached): the verifier
    loads a key for every passkey step of a log, twice.
    """
    if isinstance(alg, bool) or alg not in ALGORITHMS:
        raise UnsupportedAlgorithm(
            "passkey algorithm not accepted",
            expected="-7 (ES256) or -8 (EdDSA)",
            found=alg,
        )
    try:
        key = serialization.load_der_public_key(spki_der)
    except (ValueError, TypeError) as exc:
        raise PublicKeyInvalid(
            "passkey public key unreadable",
            expected="SubjectPublicKeyInfo DER",
            found=f"{len(spki_der)} bytes ({exc})",
        ) from exc
    if alg == ES256:
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            return key
        expected = "an EC key on P-256 (secp256r1) for ES256"
    else:
        if isinstance(key, Ed25519PublicKey):
            return key
        expected = "an Ed25519 key for EdDSA"
    found = getattr(getattr(key, "curve", None), "name", None) or type(key).__name__
    raise PublicKeyInvalid(
        "passkey key type does not match its algorithm", expected=expected, found=found
    )


def parse_authenticator_data(raw: bytes) -> AuthenticatorData:
    """Split an assertion's authenticatorData into its fixed head and extension bytes."""
    if len(raw) < AUTH_DATA_HEAD:
        raise AuthenticatorDataInvalid(
            "authenticatorData truncated",
            expected=f"at least {AUTH_DATA_HEAD} bytes",
            found=f"{len(raw)} bytes",
        )
    flags = raw[32]
    if flags & FLAG_AT:
        raise AuthenticatorDataInvalid(
            "authenticatorData carries attested credential data",
            expected="AT flag off in an assertion",
            found=f"flags 0x{flags:02x}",
        )
    extensions = raw[AUTH_DATA_HEAD:]
    # NOTE: extension outputs are CBOR, which this distribution does not read. They are covered by
    # the signature, so they cannot be forged; the check only insists that the ED flag and the
    # presence of trailing bytes agree, and reads no extension output.
    if bool(flags & FLAG_ED) != bool(extensions):
        raise AuthenticatorDataInvalid(
            "authenticatorData length disagrees with its ED flag",
            expected=f"{AUTH_DATA_HEAD} bytes"
            if not flags & FLAG_ED
            else "extension bytes after the head",
            found=f"{len(raw)} bytes, flags 0x{flags:02x}",
        )
    return AuthenticatorData(
        rp_id_hash=raw[:32],
        flags=flags,
        sign_count=int.from_bytes(raw[33:37], "big"),
        extensions=extensions,
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate member in {sorted(keys)}")
    return dict(pairs)


def parse_client_data(raw: bytes) -> ClientData:
    """Read clientDataJSON: a UTF-8 JSON object with type, challenge, origin (crossOrigin optional)."""
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ClientDataInvalid(
            "clientDataJSON unreadable", expected="a UTF-8 JSON object", found=str(exc)[:120]
        ) from exc
    if not isinstance(value, dict):
        raise ClientDataInvalid(
            "clientDataJSON not an object", expected="a JSON object", found=type(value).__name__
        )
    for name in ("type", "challenge", "origin"):
        if not isinstance(value.get(name), str):
            raise ClientDataInvalid(
                f"clientDataJSON.{name} missing",
                expected=f"{name} as a string",
                found=repr(value.get(name))[:80],
            )
    cross_origin = value.get("crossOrigin", False)
    if not isinstance(cross_origin, bool):
        raise ClientDataInvalid(
            "clientDataJSON.crossOrigin not a boolean",
            expected="true or false",
            found=repr(cross_origin)[:80],
        )
    return ClientData(value["type"], value["challenge"], value["origin"], cross_origin)


def _check_es256_encoding(signature: bytes) -> None:
    """Refuse an ES256 signature that is not strict DER with 0 < r, s < n."""
    try:
        r, s = decode_dss_signature(signature)
    except ValueError as exc:
        raise AssertionSignatureInvalid(
            "ES256 signature unreadable",
            expected="a DER ECDSA-Sig-Value",
            found=f"{len(signature)} bytes",
        ) from exc
    if not (0 < r < P256_ORDER and 0 < s < P256_ORDER) or encode_dss_signature(r, s) != signature:
        raise AssertionSignatureInvalid(
            "ES256 signature not in strict DER form",
            expected="minimal DER with 0 < r, s < n",
            found=signature.hex()[:160],
        )


# --- The check. ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureCheck:
    """Step 7 of verify_assertion, apart: the cryptography alone, for a worker process."""

    public_key: bytes  # SPKI DER
    alg: int
    signature: bytes
    signed: bytes  # authenticatorData || sha256(clientDataJSON)


def check_assertion_signature(check: SignatureCheck) -> bool:
    """Whether the assertion's signature verifies (ES256 in strict DER, or Ed25519)."""
    try:
        public_key = load_public_key(check.public_key, check.alg)
        if isinstance(public_key, Ed25519PublicKey):
            public_key.verify(check.signature, check.signed)
        else:
            public_key.verify(check.signature, check.signed, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, WorkflowError):
        return False
    return True


def verify_assertion(
    assertion: Assertion,
    *,
    key: Passkey,
    challenge: bytes,
    defer: Callable[[SignatureCheck], None] | None = None,
) -> VerifiedAssertion:
    """Check one assertion against a registered passkey and the challenge it must answer.

    The signature counter is not judged here (it needs the key's history): pass the result to
    ``SignCounters.observe``. ``defer``: steps 1-6 here, and the signature (step 7) handed to
    ``defer`` for the caller to check elsewhere (the verifier's worker processes).
    """
    # 1. The key: ES256 on P-256 or Ed25519, nothing else.
    public_key = load_public_key(key.public_key, key.alg)
    # 2. The assertion names this credential.
    if not hmac.compare_digest(assertion.credential_id, key.credential_id):
        raise CredentialMismatch(
            "assertion made by another credential",
            expected=b64url_encode(key.credential_id),
            found=b64url_encode(assertion.credential_id),
        )
    # 3. authenticatorData is well formed (fixed head, no registration data).
    auth = parse_authenticator_data(assertion.authenticator_data)
    # 4. clientDataJSON: type, challenge (exact base64url text), origin, not cross-origin.
    client = parse_client_data(assertion.client_data_json)
    if client.type != "webauthn.get":
        raise ClientDataTypeWrong("clientDataJSON.type", expected="webauthn.get", found=client.type)
    expected_challenge = b64url_encode(challenge)
    # NOTE: compared as text, so a padded or otherwise re-spelled challenge is refused too.
    if not hmac.compare_digest(client.challenge.encode(), expected_challenge.encode()):
        raise ChallengeMismatch(
            "assertion answers another challenge",
            expected=expected_challenge,
            found=client.challenge,
        )
    if client.origin not in key.origins:
        raise OriginNotAllowed(
            "assertion made on another origin", expected=list(key.origins), found=client.origin
        )
    if client.cross_origin:
        raise CrossOriginAssertion("clientDataJSON.crossOrigin", expected=False, found=True)
    # 5. rpIdHash binds the assertion to our relying-party id.
    rp_id_hash = hashlib.sha256(key.rp_id.encode()).digest()
    if not hmac.compare_digest(auth.rp_id_hash, rp_id_hash):
        raise RpIdMismatch(
            "authenticatorData.rpIdHash",
            expected=f"sha256({key.rp_id!r}) = {rp_id_hash.hex()}",
            found=auth.rp_id_hash.hex(),
        )
    # 6. The person was present and verified (biometric, PIN or screen lock).
    if not auth.flags & FLAG_UP:
        raise UserPresenceMissing("UP flag", expected="set", found=f"flags 0x{auth.flags:02x}")
    if not auth.flags & FLAG_UV:
        raise UserVerificationMissing("UV flag", expected="set", found=f"flags 0x{auth.flags:02x}")
    # 7. The signature over authenticatorData || sha256(clientDataJSON).
    signed = assertion.authenticator_data + hashlib.sha256(assertion.client_data_json).digest()
    if defer is not None:
        if not isinstance(public_key, Ed25519PublicKey):
            _check_es256_encoding(assertion.signature)
        defer(SignatureCheck(key.public_key, key.alg, assertion.signature, signed))
        return VerifiedAssertion(sign_count=auth.sign_count, flags=auth.flags, origin=client.origin)
    try:
        if isinstance(public_key, Ed25519PublicKey):
            public_key.verify(assertion.signature, signed)
        else:
            # NOTE (malleability): ECDSA accepts (r, s) and (r, n - s) alike. Authenticators are
            # not required to emit low-S and many do not, so requiring low-S would refuse genuine
            # phones, and normalising would store bytes the authenticator never produced. Both
            # forms are therefore accepted (only strict DER, 0 < r, s < n); in exchange, nothing
            # may rely on signature bytes being unique: an event's identity is its decision, and
            # replay detection keys on the challenge and the decision hash (SignCounters), never
            # on signature bytes. A re-spelled signature changes the log body hash, which the
            # chain and the checkpoints already catch like any other rewrite.
            _check_es256_encoding(assertion.signature)
            public_key.verify(assertion.signature, signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise AssertionSignatureInvalid(
            "assertion signature does not verify",
            expected=f"a {ALGORITHMS[key.alg]} signature by key {passkey_key_id(key.public_key)}",
            found=f"{len(assertion.signature)} bytes that do not verify",
        ) from exc
    return VerifiedAssertion(sign_count=auth.sign_count, flags=auth.flags, origin=client.origin)


# --- Counters across events. ---------------------------------------------------------------------


@dataclass
class _Seen:
    sign_count: int
    challenge: bytes
    decisions: set[str] = field(default_factory=set)


@dataclass
class SignCounters:
    """Per-key signature counters, fed with each verified assertion in log order.

    One assertion may sign a whole batch; its events carry the same counter and challenge and
    differ by decision. So a repeat of the latest (counter, challenge) is accepted once per
    decision hash, and anything else must raise the counter (unless the authenticator keeps none).
    """

    _last: dict[str, _Seen] = field(default_factory=dict)

    def observe(
        self, key_id: str, *, sign_count: int, challenge: bytes, decision_hash: str
    ) -> None:
        """Record one use of ``key_id``; raise if its counter went back or the use is a replay."""
        last = self._last.get(key_id)
        if last is None:
            self._last[key_id] = _Seen(sign_count, challenge, {decision_hash})
            return
        if challenge == last.challenge:
            # The same signing act again: only another decision of the same batch is legitimate.
            if sign_count != last.sign_count or decision_hash in last.decisions:
                raise AssertionReplayed(
                    "assertion used again",
                    expected="a new assertion for a new decision",
                    found=f"challenge {challenge.hex()[:16]}… again for decision {decision_hash[:16]}…",
                    key=key_id,
                )
            last.decisions.add(decision_hash)
            return
        # NOTE: WebAuthn §6.1.1: a counter of zero on both sides means the authenticator keeps no
        # counter (synced passkeys); otherwise the new value must be strictly greater.
        if (sign_count or last.sign_count) and sign_count <= last.sign_count:
            raise SignCountNotIncreasing(
                "signature counter went back",
                expected=f"more than {last.sign_count}",
                found=sign_count,
                key=key_id,
            )
        self._last[key_id] = _Seen(sign_count, challenge, {decision_hash})

    def last(self, key_id: str) -> int | None:
        """The latest counter seen for ``key_id``, or None."""
        seen = self._last.get(key_id)
        return None if seen is None else seen.sign_count

    def export_state(self) -> dict[str, Any]:
        """JSON-ready state, so a resumed verification keeps judging counters across the cut."""
        return {
            key_id: {
                "sign_count": seen.sign_count,
                "challenge": seen.challenge.hex(),
                "decisions": sorted(seen.decisions),
            }
            for key_id, seen in sorted(self._last.items())
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> SignCounters:
        """Counters as ``export_state`` saved them."""
        counters = cls()
        for key_id, seen in state.items():
            counters._last[key_id] = _Seen(
                int(seen["sign_count"]), bytes.fromhex(seen["challenge"]), set(seen["decisions"])
            )
        return counters
