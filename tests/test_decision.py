"""Event format v2: decisions, signature objects, log bodies, and signatures over decisions."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from expense_audit.decision import (
    BATCH_PREFIX,
    CHALLENGE_PREFIX,
    DecisionInvalid,
    DecisionNotInBatch,
    NotCanonical,
    ServerSignatureInvalid,
    SignatureKindMismatch,
    batch_challenge,
    check_decision,
    check_signature,
    decision_challenge,
    decision_hash,
    log_body_bytes,
    log_body_hash,
    log_leaf,
    make_decision,
    make_log_body,
    parse_decision,
    parse_log_body,
    server_signature,
    verify_decision_signature,
    webauthn_signature_from_json,
)
from expense_audit.errors import WorkflowError
from expense_audit.merkle import leaf_hash
from expense_audit.webauthn import (
    EDDSA,
    ES256,
    AssertionReplayed,
    ChallengeMismatch,
    Passkey,
    SignCounters,
    SignCountNotIncreasing,
    b64url_decode,
    b64url_encode,
    passkey_key_id,
)

from .softauthn import SoftAuthenticator, mirror_es256

RP_ID = "th-demo.edu.vn"
ORIGIN = "https://th-demo.edu.vn"
LOG = "th-demo.edu.vn/expenses"
ALGS = pytest.mark.parametrize("alg", [ES256, EDDSA], ids=["ES256", "Ed25519"])


def _decision(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "origin": LOG,
        "request": "CNTT-2025-0001",
        "request_prev": "ab" * 32,
        "action": "approve",
        "from_state": "reviewed",
        "to_state": "approved",
        "actor": "hieutruong",
        "role": "approver",
        "key": "0123456789abcdef",
        "definition": "cd" * 32,
        "budget": "ef" * 32,
        "data": {"content": {"amount": 12_500_000, "lines": [{"item": "Máy chiếu", "qty": 1}]}},
        "comment": "Đồng ý.",
        "issued": "2025-01-13T00:41:00Z",
    }
    fields.update(changes)
    return make_decision(**fields)


def _device(alg: int) -> tuple[SoftAuthenticator, Passkey]:
    device = SoftAuthenticator(alg=alg, rp_id=RP_ID, origin=ORIGIN)
    return device, Passkey(device.credential_id, device.spki, alg, RP_ID, (ORIGIN,))


# --- Decisions and their hashes. -----------------------------------------------------------------


def test_decision_hash_and_challenges_follow_the_contract() -> None:
    decision = _decision()
    jcs = rfc8785.dumps(decision)
    assert list(json.loads(jcs)) == sorted(decision)
    assert decision_hash(decision) == hashlib.sha256(jcs).hexdigest()
    assert decision_challenge(decision) == hashlib.sha256(b"expense-audit/v2\n" + jcs).digest()
    assert CHALLENGE_PREFIX == b"expense-audit/v2\n"
    hashes = [decision_hash(decision), decision_hash(_decision(request="CNTT-2025-0002"))]
    assert batch_challenge(hashes) == hashlib.sha256(BATCH_PREFIX + rfc8785.dumps(hashes)).digest()
    assert BATCH_PREFIX == b"expense-audit/v2/batch\n"
    assert batch_challenge(hashes) != batch_challenge(hashes[::-1])


def test_decision_round_trips_through_its_canonical_bytes() -> None:
    decision = _decision()
    assert parse_decision(rfc8785.dumps(decision)) == decision


def test_decision_data_is_copied_so_later_changes_cannot_alter_what_was_hashed() -> None:
    data = {"content": {"amount": 1}}
    decision = _decision(data=data)
    before = decision_hash(decision)
    data["content"]["amount"] = 2
    assert decision_hash(decision) == before


def test_decision_about_no_request_may_omit_request_prev() -> None:
    decision = _decision(
        request=None,
        request_prev=None,
        action="key.confirm",
        from_state=None,
        to_state=None,
        definition=None,
        budget=None,
        data={},
        comment=None,
    )
    assert decision["request"] is None


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("v", 1, "2"),
        ("v", 2.0, "2"),
        ("v", True, "2"),
        ("origin", "", "non-empty string"),
        ("origin", None, "non-empty string"),
        ("request", 7, "or null"),
        ("request_prev", "AB" * 32, "64 lowercase hex"),
        ("request_prev", "ab" * 31, "64 lowercase hex"),
        ("action", None, "non-empty string"),
        ("from", ["draft"], "or null"),
        ("actor", "", "non-empty string"),
        ("role", 3, "non-empty string"),
        ("key", "0123456789ABCDEF", "16 lowercase hex"),
        ("key", "ab" * 32, "16 lowercase hex"),
        ("definition", "sha256:" + "ab" * 32, "64 lowercase hex"),
        ("budget", 0, "64 lowercase hex"),
        ("data", [], "JSON object"),
        ("data", {"amount": 1.5}, "without floats"),
        ("data", {"lines": [{"qty": 1e3}]}, "without floats"),
        ("data", {"amount": 2**53}, "within 2\\^53"),
        ("data", {1: "x"}, "string keys"),
        ("data", {"note": "\ud800"}, "UTF-8"),
        ("comment", "", "non-empty string"),
        ("comment", "x" * 4001, "at most 4000"),
        ("issued", "2025-01-13 00:41:00", "UTC time"),
        ("issued", "2025-02-30T00:41:00Z", "UTC time"),
        ("issued", 1736728860, "UTC time"),
    ],
)
def test_mistyped_decision_member_is_refused(field: str, value: Any, expected: str) -> None:
    decision = _decision()
    decision[field] = value
    with pytest.raises(DecisionInvalid, match=expected) as refused:
        check_decision(decision)
    assert refused.value.field.split(".")[0].split("[")[0] == field
    assert refused.value.code == "decision_invalid"
    assert isinstance(refused.value, WorkflowError)


def test_request_prev_without_a_request_is_refused() -> None:
    with pytest.raises(DecisionInvalid, match="null when the decision is about no request"):
        _decision(request=None)


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_decision_with_missing_or_extra_member_is_refused(change: str) -> None:
    decision = _decision()
    if change == "missing":
        del decision["comment"]
    else:
        decision["seq"] = 5  # a log position smuggled into what the person signs
    with pytest.raises(DecisionInvalid, match="exactly the members"):
        check_decision(decision)


@pytest.mark.parametrize(
    "raw",
    [
        lambda d: json.dumps(d).encode(),  # spaces, insertion order
        lambda d: json.dumps(d, sort_keys=True, separators=(",", ":")).encode(),  # \\u escapes
        lambda d: rfc8785.dumps(d) + b"\n",
        lambda d: b"\xef\xbb\xbf" + rfc8785.dumps(d),
        lambda d: b"{not json",
    ],
    ids=["pretty", "ascii-escaped", "trailing-newline", "bom", "not-json"],
)
def test_non_canonical_decision_bytes_are_refused(raw: Any) -> None:
    with pytest.raises(NotCanonical):
        parse_decision(raw(_decision()))


# --- Log bodies. ---------------------------------------------------------------------------------


def _body(decision: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    decision = decision or _decision()
    private = Ed25519PrivateKey.generate()
    fields: dict[str, Any] = {
        "seq": 42,
        "prev": "0" * 64,
        "ts": "2025-01-13T00:41:05Z",
        "decision": decision,
        "signature": server_signature(decision, private),
    }
    fields.update(changes)
    return make_log_body(**fields)


def test_log_body_hash_is_sha256_of_its_jcs_and_the_leaf_input() -> None:
    body = _body()
    assert set(body) == {"v", "origin", "seq", "prev", "ts", "decision", "signature"}
    assert body["v"] == 2 and body["origin"] == LOG
    assert log_body_hash(body) == hashlib.sha256(rfc8785.dumps(body)).hexdigest()
    assert log_leaf(log_body_hash(body)) == leaf_hash(bytes.fromhex(log_body_hash(body)))
    assert parse_log_body(log_body_bytes(body)) == body


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"seq": 0}, "seq"),
        ({"seq": True}, "seq"),
        ({"seq": "42"}, "seq"),
        ({"prev": "0" * 63}, "prev"),
        ({"ts": "2025-01-13T00:41:05+07:00"}, "ts"),
    ],
)
def test_mistyped_log_body_member_is_refused(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(DecisionInvalid) as refused:
        _body(**changes)
    assert refused.value.field == field


def test_decision_moved_into_another_log_is_refused() -> None:
    body = _body()
    body["origin"] = "other-school.edu.vn/expenses"
    with pytest.raises(DecisionInvalid, match="the log's origin"):
        parse_log_body(rfc8785.dumps(body))


def test_log_body_with_extra_member_is_refused() -> None:
    body = _body()
    body["sig"] = "00"
    with pytest.raises(DecisionInvalid, match="unexpected \\['sig'\\]"):
        parse_log_body(rfc8785.dumps(body))


# --- Signature objects. --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signature", "field"),
    [
        ({"kind": "rsa", "signature": "AA"}, "kind"),
        ("AAAA", "kind"),
        ({"kind": "server-held", "signature": "AA"}, "signature"),
        ({"kind": "server-held", "signature": b64url_encode(bytes(64)) + "=="}, "signature"),
        ({"kind": "server-held", "signature": b64url_encode(bytes(64)), "key": "x"}, "*"),
        (
            {
                "kind": "webauthn",
                "credential": "AA",
                "authenticator_data": "AA",
                "client_data_json": "AA",
                "signature": "",
                "batch": None,
            },
            "signature",
        ),
        (
            {
                "kind": "webauthn",
                "credential": "AA",
                "authenticator_data": "AA",
                "client_data_json": "AA",
                "signature": "AA",
            },
            "*",
        ),
        (
            {
                "kind": "webauthn",
                "credential": "AA",
                "authenticator_data": "AA",
                "client_data_json": "AA",
                "signature": "AA",
                "batch": [],
            },
            "batch",
        ),
        (
            {
                "kind": "webauthn",
                "credential": "AA",
                "authenticator_data": "AA",
                "client_data_json": "AA",
                "signature": "AA",
                "batch": ["ab" * 32, "ab" * 32],
            },
            "batch",
        ),
    ],
    ids=[
        "unknown-kind",
        "not-an-object",
        "short-ed25519",
        "padded-base64",
        "extra-member",
        "empty-signature",
        "missing-batch",
        "empty-batch",
        "repeated-hash-in-batch",
    ],
)
def test_malformed_signature_object_is_refused(signature: Any, field: str) -> None:
    with pytest.raises(DecisionInvalid) as refused:
        check_signature(signature)
    assert refused.value.field == field


# --- Signatures over decisions. ------------------------------------------------------------------


def test_server_held_signature_verifies_and_breaks_when_the_decision_changes() -> None:
    private = Ed25519PrivateKey.generate()
    decision = _decision()
    signature = server_signature(decision, private)
    assert verify_decision_signature(decision, signature, key=private.public_key()) is None
    with pytest.raises(ServerSignatureInvalid):
        verify_decision_signature(
            _decision(comment="Đồng ý 13 triệu."), signature, key=private.public_key()
        )


@ALGS
def test_passkey_signature_over_a_decision_verifies(alg: int) -> None:
    device, passkey = _device(alg)
    decision = _decision(key=passkey_key_id(passkey.public_key))
    signature = webauthn_signature_from_json(device.get(decision_challenge(decision)))
    counters = SignCounters()
    verified = verify_decision_signature(decision, signature, key=passkey, counters=counters)
    assert verified is not None and verified.sign_count == 1
    assert counters.last(decision["key"]) == 1


@ALGS
def test_assertion_replayed_on_another_decision_is_refused(alg: int) -> None:
    device, passkey = _device(alg)
    signed = _decision()
    signature = webauthn_signature_from_json(device.get(decision_challenge(signed)))
    other = _decision(request="CNTT-2025-0002")  # what a server would like to have had signed
    with pytest.raises(ChallengeMismatch):
        verify_decision_signature(other, signature, key=passkey)


def test_passkey_signature_offered_for_a_server_held_key_is_refused() -> None:
    device, _ = _device(ES256)
    decision = _decision()
    signature = webauthn_signature_from_json(device.get(decision_challenge(decision)))
    with pytest.raises(SignatureKindMismatch):
        verify_decision_signature(
            decision, signature, key=Ed25519PrivateKey.generate().public_key()
        )


def test_server_held_signature_offered_for_a_passkey_is_refused() -> None:
    _, passkey = _device(ES256)
    decision = _decision()
    signature = server_signature(decision, Ed25519PrivateKey.generate())
    with pytest.raises(SignatureKindMismatch):
        verify_decision_signature(decision, signature, key=passkey)


def _batch(alg: int, size: int = 3) -> tuple[Passkey, list[dict[str, Any]], dict[str, Any]]:
    device, passkey = _device(alg)
    decisions = [_decision(request=f"CNTT-2025-{n:04d}") for n in range(1, size + 1)]
    hashes = [decision_hash(d) for d in decisions]
    answer = device.get(batch_challenge(hashes))
    return passkey, decisions, webauthn_signature_from_json(answer, batch=hashes)


@ALGS
def test_batch_signature_verifies_on_each_event_with_one_prompt(alg: int) -> None:
    passkey, decisions, signature = _batch(alg)
    counters = SignCounters()
    for decision in decisions:
        verified = verify_decision_signature(decision, signature, key=passkey, counters=counters)
        assert verified is not None and verified.sign_count == 1


def test_batch_decision_not_in_the_list_is_refused() -> None:
    passkey, _, signature = _batch(ES256)
    outsider = _decision(request="CNTT-2025-0099")
    with pytest.raises(DecisionNotInBatch) as refused:
        verify_decision_signature(outsider, signature, key=passkey)
    assert refused.value.decision == decision_hash(outsider)


def test_batch_list_altered_after_signing_is_refused() -> None:
    passkey, decisions, signature = _batch(ES256)
    outsider = _decision(request="CNTT-2025-0099")
    signature["batch"] = [*signature["batch"], decision_hash(outsider)]
    with pytest.raises(ChallengeMismatch):
        verify_decision_signature(outsider, signature, key=passkey)


def test_batch_event_repeated_is_an_assertion_replay() -> None:
    passkey, decisions, signature = _batch(ES256)
    counters = SignCounters()
    verify_decision_signature(decisions[0], signature, key=passkey, counters=counters)
    verify_decision_signature(decisions[1], signature, key=passkey, counters=counters)
    with pytest.raises(AssertionReplayed):
        verify_decision_signature(decisions[1], signature, key=passkey, counters=counters)


def test_es256_malleated_copy_of_a_signed_event_is_caught_as_a_replay() -> None:
    device, passkey = _device(ES256)
    decision = _decision()
    signature = webauthn_signature_from_json(device.get(decision_challenge(decision)))
    raw = signature["signature"]
    twin = {**signature, "signature": b64url_encode(mirror_es256(b64url_decode(raw)))}
    assert twin["signature"] != raw
    counters = SignCounters()
    verify_decision_signature(decision, signature, key=passkey, counters=counters)
    with pytest.raises(AssertionReplayed):
        verify_decision_signature(decision, twin, key=passkey, counters=counters)


def test_sign_counters_survive_a_resumed_verification() -> None:
    device, passkey = _device(ES256)
    counters = SignCounters()
    first = _decision()
    verify_decision_signature(
        first,
        webauthn_signature_from_json(device.get(decision_challenge(first))),
        key=passkey,
        counters=counters,
    )
    resumed = SignCounters.from_state(json.loads(json.dumps(counters.export_state())))
    second = _decision(request="CNTT-2025-0002")
    with pytest.raises(SignCountNotIncreasing, match="expected more than 1, found 1"):
        verify_decision_signature(
            second,
            webauthn_signature_from_json(device.get(decision_challenge(second), sign_count=1)),
            key=passkey,
            counters=resumed,
        )


def test_browser_json_whose_id_and_raw_id_differ_is_refused() -> None:
    device, _ = _device(ES256)
    answer = device.get(b"x" * 32)
    answer["id"] = b64url_encode(b"another credential")
    with pytest.raises(DecisionInvalid, match="equal to rawId"):
        webauthn_signature_from_json(answer)
