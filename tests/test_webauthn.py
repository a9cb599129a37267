"""Offline passkey assertion check: valid answers for ES256 and Ed25519, and each way to cheat."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from webauthn import base64url_to_bytes, verify_authentication_response
from webauthn.helpers.exceptions import InvalidAuthenticationResponse

from expense_audit.errors import WorkflowError
from expense_audit.webauthn import (
    EDDSA,
    ES256,
    FLAG_UV,
    Assertion,
    AssertionReplayed,
    AssertionSignatureInvalid,
    AuthenticatorDataInvalid,
    ChallengeMismatch,
    ClientDataInvalid,
    ClientDataTypeWrong,
    CredentialMismatch,
    CrossOriginAssertion,
    EncodingInvalid,
    OriginNotAllowed,
    Passkey,
    PublicKeyInvalid,
    RpIdMismatch,
    SignCounters,
    SignCountNotIncreasing,
    UnsupportedAlgorithm,
    UserPresenceMissing,
    UserVerificationMissing,
    b64url_decode,
    b64url_encode,
    verify_assertion,
)
from workflow.passkeys import PasskeyRegistrationRefused, spki_from_registration

from .softauthn import SoftAuthenticator, mirror_es256

RP_ID = "th-demo.edu.vn"
ORIGIN = "https://th-demo.edu.vn"
CHALLENGE = hashlib.sha256(b"expense-audit/v2\n{}").digest()
ALGS = pytest.mark.parametrize("alg", [ES256, EDDSA], ids=["ES256", "Ed25519"])


def _enroll(alg: int, **knobs: Any) -> tuple[SoftAuthenticator, Passkey]:
    device = SoftAuthenticator(alg=alg, rp_id=RP_ID, origin=ORIGIN, **knobs)
    registration_challenge = b"registration-challenge-32-bytes!"
    answer = device.create(registration_challenge, user_id=b"user-7")
    registered = spki_from_registration(
        answer, expected_challenge=registration_challenge, rp_id=RP_ID, origins=[ORIGIN]
    )
    return device, registered.as_passkey()


def _assertion(answer: dict[str, Any]) -> Assertion:
    response = answer["response"]
    return Assertion(
        credential_id=b64url_decode(answer["rawId"]),
        authenticator_data=b64url_decode(response["authenticatorData"]),
        client_data_json=b64url_decode(response["clientDataJSON"]),
        signature=b64url_decode(response["signature"]),
    )


# --- Realism: the server-side library accepts what the soft authenticator makes. -------------------


@ALGS
def test_registration_is_accepted_by_py_webauthn_and_recorded_as_spki(alg: int) -> None:
    device = SoftAuthenticator(alg=alg, rp_id=RP_ID, origin=ORIGIN)
    answer = device.create(b"c" * 32, user_id=b"user-7")
    registered = spki_from_registration(
        answer, expected_challenge=b"c" * 32, rp_id=RP_ID, origins=[ORIGIN]
    )
    # The COSE key in the attestation became the same SPKI DER the browser reports (getPublicKey).
    assert (
        registered.public_key == device.spki == base64url_to_bytes(answer["response"]["publicKey"])
    )
    assert registered.alg == alg
    assert registered.credential_id == device.credential_id
    assert len(registered.key_id) == 16


@ALGS
def test_py_webauthn_accepts_the_soft_assertion(alg: int) -> None:
    device, _ = _enroll(alg)
    answer = device.get(CHALLENGE)
    verified = verify_authentication_response(
        credential=answer,
        expected_challenge=CHALLENGE,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        credential_public_key=device.cose_key,
        credential_current_sign_count=0,
        require_user_verification=True,
    )
    assert verified.new_sign_count == 1
    assert verified.user_verified


def test_py_webauthn_refuses_a_soft_assertion_without_user_verification() -> None:
    device, _ = _enroll(ES256)
    with pytest.raises(InvalidAuthenticationResponse, match="verif"):
        verify_authentication_response(
            credential=device.get(CHALLENGE, uv=False),
            expected_challenge=CHALLENGE,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
            credential_public_key=device.cose_key,
            credential_current_sign_count=0,
            require_user_verification=True,
        )


@pytest.mark.parametrize(
    ("knobs", "needle"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"rp_id": "evil.example"}, "RP ID"),
        ({"uv": False}, "verif"),
    ],
    ids=["wrong-origin", "wrong-rp-id", "no-user-verification"],
)
def test_registration_is_refused_when_the_ceremony_is_wrong(
    knobs: dict[str, Any], needle: str
) -> None:
    device = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    answer = device.create(b"c" * 32, user_id=b"user-7", **knobs)
    with pytest.raises(PasskeyRegistrationRefused, match=needle) as refused:
        spki_from_registration(answer, expected_challenge=b"c" * 32, rp_id=RP_ID, origins=[ORIGIN])
    assert isinstance(refused.value, WorkflowError)


def test_registration_answering_another_challenge_is_refused() -> None:
    device = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    answer = device.create(b"a" * 32, user_id=b"user-7")
    with pytest.raises(PasskeyRegistrationRefused, match="challenge"):
        spki_from_registration(answer, expected_challenge=b"b" * 32, rp_id=RP_ID, origins=[ORIGIN])


# --- Valid assertions. ---------------------------------------------------------------------------


@ALGS
def test_valid_assertion_verifies_offline(alg: int) -> None:
    device, passkey = _enroll(alg)
    verified = verify_assertion(_assertion(device.get(CHALLENGE)), key=passkey, challenge=CHALLENGE)
    assert verified.sign_count == 1
    assert verified.origin == ORIGIN
    assert not verified.backup_eligible


def test_synced_passkey_without_counter_verifies_and_is_marked_backup_eligible() -> None:
    device, passkey = _enroll(EDDSA, keeps_counter=False, synced=True)
    counters = SignCounters()
    for n in range(3):
        challenge = hashlib.sha256(b"decision %d" % n).digest()
        verified = verify_assertion(
            _assertion(device.get(challenge)), key=passkey, challenge=challenge
        )
        counters.observe(
            "k", sign_count=verified.sign_count, challenge=challenge, decision_hash=f"{n:064x}"
        )
        assert verified.sign_count == 0
        assert verified.backup_eligible


# --- Tampering, one attack per test. -------------------------------------------------------------


@ALGS
def test_altered_client_data_json_is_refused(alg: int) -> None:
    device, passkey = _enroll(alg)
    assertion = _assertion(device.get(CHALLENGE))
    client = json.loads(assertion.client_data_json)
    client["tokenBinding"] = {"status": "supported"}  # same challenge and origin, other bytes
    altered = replace(assertion, client_data_json=json.dumps(client).encode())
    with pytest.raises(AssertionSignatureInvalid, match="does not verify"):
        verify_assertion(altered, key=passkey, challenge=CHALLENGE)


def test_wrong_origin_is_refused() -> None:
    device, passkey = _enroll(ES256)
    answer = device.get(CHALLENGE, origin="https://th-demo.edu.vn.evil.example")
    with pytest.raises(OriginNotAllowed) as refused:
        verify_assertion(_assertion(answer), key=passkey, challenge=CHALLENGE)
    assert refused.value.expected == [ORIGIN]
    assert refused.value.found == "https://th-demo.edu.vn.evil.example"
    assert refused.value.code == "origin_not_allowed"


def test_origin_among_several_registered_origins_is_accepted() -> None:
    device, passkey = _enroll(ES256)
    passkey = replace(passkey, origins=(ORIGIN, "https://app.th-demo.edu.vn"))
    answer = device.get(CHALLENGE, origin="https://app.th-demo.edu.vn")
    assert verify_assertion(_assertion(answer), key=passkey, challenge=CHALLENGE).sign_count == 1


def test_wrong_rp_id_is_refused() -> None:
    device, passkey = _enroll(EDDSA)
    with pytest.raises(RpIdMismatch, match="rpIdHash") as refused:
        verify_assertion(
            _assertion(device.get(CHALLENGE, rp_id="evil.example")),
            key=passkey,
            challenge=CHALLENGE,
        )
    assert refused.value.found == hashlib.sha256(b"evil.example").hexdigest()


@ALGS
def test_uv_flag_off_is_refused(alg: int) -> None:
    device, passkey = _enroll(alg)
    with pytest.raises(UserVerificationMissing, match="UV flag: expected set, found flags 0x01"):
        verify_assertion(
            _assertion(device.get(CHALLENGE, uv=False)), key=passkey, challenge=CHALLENGE
        )


def test_uv_flag_set_after_signing_breaks_the_signature() -> None:
    device, passkey = _enroll(ES256)
    assertion = _assertion(device.get(CHALLENGE, uv=False))
    data = bytearray(assertion.authenticator_data)
    data[32] |= FLAG_UV
    with pytest.raises(AssertionSignatureInvalid):
        verify_assertion(
            replace(assertion, authenticator_data=bytes(data)), key=passkey, challenge=CHALLENGE
        )


def test_up_flag_off_is_refused() -> None:
    device, passkey = _enroll(ES256)
    with pytest.raises(UserPresenceMissing, match="UP flag"):
        verify_assertion(
            _assertion(device.get(CHALLENGE, up=False)), key=passkey, challenge=CHALLENGE
        )


@ALGS
def test_assertion_for_another_challenge_is_refused(alg: int) -> None:
    device, passkey = _enroll(alg)
    other = hashlib.sha256(b"another decision").digest()
    with pytest.raises(ChallengeMismatch) as refused:
        verify_assertion(_assertion(device.get(other)), key=passkey, challenge=CHALLENGE)
    assert refused.value.expected == b64url_encode(CHALLENGE)
    assert refused.value.found == b64url_encode(other)


def test_padded_challenge_spelling_is_refused() -> None:
    device, passkey = _enroll(ES256)
    assertion = _assertion(device.get(CHALLENGE))
    client = assertion.client_data_json.replace(b'","origin"', b'=","origin"')
    with pytest.raises(ChallengeMismatch):
        verify_assertion(
            replace(assertion, client_data_json=client), key=passkey, challenge=CHALLENGE
        )


def test_registration_response_offered_as_assertion_is_refused() -> None:
    device, passkey = _enroll(ES256)
    answer = device.get(CHALLENGE, client_type="webauthn.create")
    with pytest.raises(ClientDataTypeWrong, match="expected webauthn.get, found webauthn.create"):
        verify_assertion(_assertion(answer), key=passkey, challenge=CHALLENGE)


def test_cross_origin_iframe_assertion_is_refused() -> None:
    device, passkey = _enroll(ES256)
    with pytest.raises(CrossOriginAssertion):
        verify_assertion(
            _assertion(device.get(CHALLENGE, cross_origin=True)), key=passkey, challenge=CHALLENGE
        )


def test_client_data_with_a_duplicated_member_is_refused() -> None:
    device, passkey = _enroll(ES256)
    assertion = _assertion(device.get(CHALLENGE))
    doubled = assertion.client_data_json[:-1] + b',"origin":"https://evil.example"}'
    with pytest.raises(ClientDataInvalid, match="duplicate"):
        verify_assertion(
            replace(assertion, client_data_json=doubled), key=passkey, challenge=CHALLENGE
        )


def test_assertion_by_another_credential_is_refused() -> None:
    _, passkey = _enroll(ES256)
    other = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    with pytest.raises(CredentialMismatch):
        verify_assertion(_assertion(other.get(CHALLENGE)), key=passkey, challenge=CHALLENGE)


def test_assertion_signed_by_another_key_under_the_same_credential_id_is_refused() -> None:
    device, passkey = _enroll(ES256)
    impostor = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN, credential_id=device.credential_id)
    with pytest.raises(AssertionSignatureInvalid):
        verify_assertion(_assertion(impostor.get(CHALLENGE)), key=passkey, challenge=CHALLENGE)


@pytest.mark.parametrize("length", [0, 32, 36])
def test_truncated_authenticator_data_is_refused(length: int) -> None:
    device, passkey = _enroll(ES256)
    assertion = _assertion(device.get(CHALLENGE))
    cut = replace(assertion, authenticator_data=assertion.authenticator_data[:length])
    with pytest.raises(
        AuthenticatorDataInvalid, match=f"expected at least 37 bytes, found {length} bytes"
    ):
        verify_assertion(cut, key=passkey, challenge=CHALLENGE)


def test_authenticator_data_with_trailing_bytes_but_no_extension_flag_is_refused() -> None:
    device, passkey = _enroll(ES256)
    assertion = _assertion(device.get(CHALLENGE))
    longer = replace(assertion, authenticator_data=assertion.authenticator_data + b"\xa0")
    with pytest.raises(AuthenticatorDataInvalid, match="ED flag"):
        verify_assertion(longer, key=passkey, challenge=CHALLENGE)


def test_sign_count_going_back_is_refused() -> None:
    device, passkey = _enroll(ES256)
    counters = SignCounters()
    seen = []
    for n, forced in enumerate([None, None, 1]):  # counts 1, 2, then a clone answers with 1
        challenge = hashlib.sha256(b"decision %d" % n).digest()
        verified = verify_assertion(
            _assertion(device.get(challenge, sign_count=forced)), key=passkey, challenge=challenge
        )
        seen.append(verified.sign_count)
        if n < 2:
            counters.observe(
                "k", sign_count=verified.sign_count, challenge=challenge, decision_hash=f"{n:064x}"
            )
    assert seen == [1, 2, 1]
    with pytest.raises(SignCountNotIncreasing, match="expected more than 2, found 1") as refused:
        counters.observe("k", sign_count=1, challenge=challenge, decision_hash=f"{2:064x}")
    assert refused.value.key == "k"
    assert counters.last("k") == 2


def test_counter_dropping_to_zero_after_counting_is_refused() -> None:
    counters = SignCounters()
    counters.observe("k", sign_count=5, challenge=b"a", decision_hash="a" * 64)
    with pytest.raises(SignCountNotIncreasing):
        counters.observe("k", sign_count=0, challenge=b"b", decision_hash="b" * 64)


def test_es256_signature_malleability_is_accepted_but_cannot_replay() -> None:
    """NOTE: (r, s) and (r, n - s) both verify; replay detection must not rely on signature bytes."""
    device, passkey = _enroll(ES256)
    assertion = _assertion(device.get(CHALLENGE, high_s=False))
    mirrored = replace(assertion, signature=mirror_es256(assertion.signature))
    assert mirrored.signature != assertion.signature
    counters = SignCounters()
    for each in (assertion, mirrored):  # policy: both forms verify, neither is normalised
        assert verify_assertion(each, key=passkey, challenge=CHALLENGE).sign_count == 1
    counters.observe("k", sign_count=1, challenge=CHALLENGE, decision_hash="d" * 64)
    # The mirrored copy of the same assertion, offered again for the same decision, is a replay.
    with pytest.raises(AssertionReplayed):
        counters.observe("k", sign_count=1, challenge=CHALLENGE, decision_hash="d" * 64)


def test_es256_signature_in_loose_der_is_refused() -> None:
    device, passkey = _enroll(ES256)
    assertion = _assertion(device.get(CHALLENGE))
    # Long-form length byte (0x81 n) where DER requires the short form: same (r, s), other bytes.
    body = assertion.signature[2:]
    loose = replace(assertion, signature=b"\x30\x81" + bytes([len(body)]) + body)
    with pytest.raises(AssertionSignatureInvalid):
        verify_assertion(loose, key=passkey, challenge=CHALLENGE)


def _spki(private: Any) -> bytes:
    return bytes(
        private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@pytest.mark.parametrize("alg", [-257, -35, -36, -19, 0, True])
def test_unsupported_algorithm_is_refused(alg: int) -> None:
    device, passkey = _enroll(ES256)
    with pytest.raises(UnsupportedAlgorithm, match="expected -7 \\(ES256\\) or -8 \\(EdDSA\\)"):
        verify_assertion(
            _assertion(device.get(CHALLENGE)), key=replace(passkey, alg=alg), challenge=CHALLENGE
        )


@pytest.mark.parametrize(
    ("alg", "private", "found"),
    [
        (ES256, ec.generate_private_key(ec.SECP384R1()), "secp384r1"),
        (ES256, Ed25519PrivateKey.generate(), "Ed25519PublicKey"),
        (EDDSA, ec.generate_private_key(ec.SECP256R1()), "secp256r1"),
        (ES256, rsa.generate_private_key(public_exponent=65537, key_size=2048), "RSAPublicKey"),
    ],
    ids=["P-384-as-ES256", "Ed25519-as-ES256", "P-256-as-EdDSA", "RSA-as-ES256"],
)
def test_key_of_another_curve_or_type_is_refused(alg: int, private: Any, found: str) -> None:
    device, passkey = _enroll(alg)
    with pytest.raises(PublicKeyInvalid) as refused:
        verify_assertion(
            _assertion(device.get(CHALLENGE)),
            key=replace(passkey, public_key=_spki(private), alg=alg),
            challenge=CHALLENGE,
        )
    assert refused.value.found == found


def test_unreadable_public_key_is_refused() -> None:
    device, passkey = _enroll(ES256)
    with pytest.raises(PublicKeyInvalid, match="SubjectPublicKeyInfo DER"):
        verify_assertion(
            _assertion(device.get(CHALLENGE)),
            key=replace(passkey, public_key=b"\x30\x03\x01\x01\x00"),
            challenge=CHALLENGE,
        )


@pytest.mark.parametrize("text", ["AQI=", "AQ+", "AQ/", "AR", "A", "AQI\n"])
def test_non_canonical_base64url_is_refused(text: str) -> None:
    with pytest.raises(EncodingInvalid):
        b64url_decode(text)


def test_every_assertion_failure_is_a_workflow_error_with_a_distinct_code() -> None:
    import expense_audit.webauthn as module

    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, module.AssertionInvalid)
    ]
    assert all(issubclass(cls, WorkflowError) for cls in classes)
    assert len({cls.code for cls in classes}) == len(classes) >= 15


def test_verifier_passkey_modules_load_without_cbor_or_webauthn_libraries() -> None:
    """The verifier distribution may depend on cryptography, rfc8785 and transitions only."""
    code = (
        "import sys\n"
        "for name in ('cbor2', 'webauthn', 'fido2', 'sqlalchemy', 'flask'):\n"
        "    sys.modules[name] = None  # importing any of them now raises ImportError\n"
        "import expense_audit.decision, expense_audit.webauthn\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "ok", done.stderr
