"""Event format v2: the decision a person signs, its signature object and the log body around it.

A decision is ``{v, origin, request, request_prev, action, from, to, actor, role, key, definition,
budget, data, comment, issued}``. The person signs the decision, not a place in the log: a passkey
answers the challenge sha256("expense-audit/v2\\n" || JCS(decision)) (a batch: sha256(
"expense-audit/v2/batch\\n" || JCS(list of decision hashes))), a server-held Ed25519 key signs
"expense-audit/v2\\n" || JCS(decision). The log wraps it: body = ``{v: 2, origin, seq, prev, ts,
decision, signature}``, hash = sha256(JCS(body)), Merkle leaf input = that hash.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .canonical import canonical_json, parse_canonical
from .errors import WorkflowError
from .merkle import leaf_hash
from .webauthn import (
    Assertion,
    EncodingInvalid,
    Passkey,
    SignatureCheck,
    SignCounters,
    VerifiedAssertion,
    b64url_decode,
    b64url_encode,
    verify_assertion,
)

VERSION = 2
CHALLENGE_PREFIX = b"expense-audit/v2\n"
BATCH_PREFIX = b"expense-audit/v2/batch\n"
MAX_BATCH = 200  # decisions under one prompt; every event of a batch carries the whole list

DECISION_FIELDS = (
    "v",
    "origin",
    "request",
    "request_prev",
    "action",
    "from",
    "to",
    "actor",
    "role",
    "key",
    "definition",
    "budget",
    "data",
    "comment",
    "issued",
)
BODY_FIELDS = ("v", "origin", "seq", "prev", "ts", "decision", "signature")
WEBAUTHN = "webauthn"
SERVER_HELD = "server-held"
WEBAUTHN_FIELDS = (
    "kind",
    "credential",
    "authenticator_data",
    "client_data_json",
    "signature",
    "batch",
)
SERVER_HELD_FIELDS = ("kind", "signature")

_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_TS_ASCII = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_MAX_SAFE_INT = 2**53 - 1
_MAX_TEXT = 4000


class DecisionInvalid(WorkflowError):
    """A decision, signature object or log body field has the wrong type or form."""

    code = "decision_invalid"

    def __init__(self, where: str, *, field: str, expected: str, found: Any) -> None:
        shown = repr(found)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        super().__init__(
            f"{where}.{field}: expected {expected}, found {shown}",
            where=where,
            field=field,
            expected=expected,
            found=found,
        )


class NotCanonical(WorkflowError):
    """Bytes that should be RFC 8785 JSON are not exactly that."""

    code = "not_canonical"


class DecisionNotInBatch(WorkflowError):
    """A batch signature's list of decision hashes does not hold this event's decision."""

    code = "decision_not_in_batch"


class SignatureKindMismatch(WorkflowError):
    """A passkey signature checked against a server-held key, or the reverse."""

    code = "signature_kind_mismatch"


class ServerSignatureInvalid(WorkflowError):
    """A server-held Ed25519 signature does not verify over the decision."""

    code = "server_signature_invalid"


# --- Field checks. -------------------------------------------------------------------------------


def _fields(where: str, value: Any, names: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DecisionInvalid(
            where, field="*", expected="a JSON object", found=type(value).__name__
        )
    if set(value) != set(names):
        missing, extra = sorted(set(names) - set(value)), sorted(set(value) - set(names))
        raise DecisionInvalid(
            where,
            field="*",
            expected=f"exactly the members {list(names)}",
            found=f"missing {missing}, unexpected {extra}",
        )
    return value


def _is_text(value: Any) -> bool:
    """A string that UTF-8 can carry (no lone surrogates, which JCS cannot serialize)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(where: str, name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not _is_text(value) or not value or len(value) > _MAX_TEXT:
        expected = f"a non-empty string of at most {_MAX_TEXT} characters"
        raise DecisionInvalid(
            where, field=name, expected=expected + (" or null" if optional else ""), found=value
        )


def _hex64(where: str, name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        expected = "64 lowercase hex digits" + (" or null" if optional else "")
        raise DecisionInvalid(where, field=name, expected=expected, found=value)


def _count(where: str, name: str, value: Any, *, minimum: int) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not minimum <= value <= _MAX_SAFE_INT
    ):
        raise DecisionInvalid(
            where, field=name, expected=f"an integer from {minimum} to 2^53-1", found=value
        )


def _timestamp(where: str, name: str, value: Any) -> None:
    ok = isinstance(value, str) and _TS.fullmatch(value)
    if ok:
        try:
            # NOTE: fromisoformat for the ASCII form (strptime costs ~50 µs); strptime otherwise.
            if _TS_ASCII.fullmatch(value):
                datetime.fromisoformat(value[:-1])
            else:
                datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            ok = False
    if not ok:
        raise DecisionInvalid(
            where, field=name, expected="a UTC time like 2026-11-22T09:15:03Z", found=value
        )


def _json_data(where: str, path: str, value: Any) -> None:
    """Plain JSON without floats: objects with string keys, lists, strings, safe integers."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if not _is_text(value):
            raise DecisionInvalid(where, field=path, expected="a UTF-8 string", found=value)
        return
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise DecisionInvalid(where, field=path, expected="an integer within 2^53", found=value)
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _json_data(where, f"{path}[{index}]", item)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not _is_text(key):
                raise DecisionInvalid(where, field=path, expected="string keys", found=key)
            _json_data(where, f"{path}.{key}", item)
        return
    # NOTE: floats are refused: amounts are integers of đồng, and a float's JCS form is a
    # number-formatting algorithm that other verifiers would have to reproduce exactly.
    raise DecisionInvalid(
        where, field=path, expected="JSON without floats", found=type(value).__name__
    )


# --- Decisions. ----------------------------------------------------------------------------------


def check_decision(value: Any) -> dict[str, Any]:
    """Check every member of a decision; return it as a plain dict (or raise DecisionInvalid)."""
    decision = _fields("decision", value, DECISION_FIELDS)
    where = "decision"
    if type(decision["v"]) is not int or decision["v"] != VERSION:
        raise DecisionInvalid(where, field="v", expected=str(VERSION), found=decision["v"])
    _text(where, "origin", decision["origin"])
    _text(where, "request", decision["request"], optional=True)
    _hex64(where, "request_prev", decision["request_prev"], optional=True)
    if decision["request"] is None and decision["request_prev"] is not None:
        raise DecisionInvalid(
            where,
            field="request_prev",
            expected="null when the decision is about no request",
            found=decision["request_prev"],
        )
    for name in ("action", "actor", "role"):
        _text(where, name, decision[name])
    _text(where, "from", decision["from"], optional=True)
    _text(where, "to", decision["to"], optional=True)
    if not isinstance(decision["key"], str) or not _KEY_ID.fullmatch(decision["key"]):
        raise DecisionInvalid(
            where,
            field="key",
            expected="a key id of 16 lowercase hex digits",
            found=decision["key"],
        )
    _hex64(where, "definition", decision["definition"], optional=True)
    _hex64(where, "budget", decision["budget"], optional=True)
    if not isinstance(decision["data"], Mapping):
        raise DecisionInvalid(where, field="data", expected="a JSON object", found=decision["data"])
    _json_data(where, "data", decision["data"])
    _text(where, "comment", decision["comment"], optional=True)
    _timestamp(where, "issued", decision["issued"])
    return dict(decision)


def make_decision(
    *,
    origin: str,
    request: str | None,
    request_prev: str | None,
    action: str,
    from_state: str | None,
    to_state: str | None,
    actor: str,
    role: str,
    key: str,
    definition: str | None,
    budget: str | None,
    data: Mapping[str, Any],
    comment: str | None,
    issued: str,
) -> dict[str, Any]:
    """Build a checked decision; ``data`` is deep-copied so later changes cannot reach it."""
    return check_decision(
        {
            "v": VERSION,
            "origin": origin,
            "request": request,
            "request_prev": request_prev,
            "action": action,
            "from": from_state,
            "to": to_state,
            "actor": actor,
            "role": role,
            "key": key,
            "definition": definition,
            "budget": budget,
            "data": copy.deepcopy(dict(data)),
            "comment": comment,
            "issued": issued,
        }
    )


def decision_bytes(decision: Mapping[str, Any]) -> bytes:
    """JCS of a decision (checked first)."""
    return canonical_json(check_decision(decision))


def decision_hash(decision: Mapping[str, Any]) -> str:
    """sha256(JCS(decision)) in hex: the decision's identity, and what a batch lists."""
    return hashlib.sha256(decision_bytes(decision)).hexdigest()


def signing_message(decision: Mapping[str, Any]) -> bytes:
    """What a server-held key signs: "expense-audit/v2\\n" || JCS(decision)."""
    return CHALLENGE_PREFIX + decision_bytes(decision)


def decision_challenge(decision: Mapping[str, Any]) -> bytes:
    """The 32-byte WebAuthn challenge for one decision: sha256 of its signing message."""
    return hashlib.sha256(signing_message(decision)).digest()


def check_batch(hashes: Any) -> list[str]:
    """A batch list: 1 to MAX_BATCH distinct decision hashes (order as signed)."""
    if not isinstance(hashes, list) or not 1 <= len(hashes) <= MAX_BATCH:
        raise DecisionInvalid(
            "signature",
            field="batch",
            expected=f"a list of 1 to {MAX_BATCH} decision hashes",
            found=hashes if not isinstance(hashes, list) else f"{len(hashes)} items",
        )
    for index, item in enumerate(hashes):
        _hex64("signature", f"batch[{index}]", item)
    if len(set(hashes)) != len(hashes):
        raise DecisionInvalid(
            "signature", field="batch", expected="distinct decision hashes", found="a repeated hash"
        )
    return list(hashes)


def batch_challenge(hashes: Sequence[str]) -> bytes:
    """The one WebAuthn challenge of a bulk approval: sha256(prefix || JCS(list of hashes))."""
    return hashlib.sha256(BATCH_PREFIX + canonical_json(check_batch(list(hashes)))).digest()


def _parse(raw: bytes, what: str) -> Any:
    try:
        value, canonical = parse_canonical(raw)
    except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
        raise NotCanonical(f"{what} bytes are not JSON: {exc}", what=what) from exc
    if not canonical:
        raise NotCanonical(f"{what} bytes are not RFC 8785 canonical JSON", what=what)
    return value


def parse_decision(raw: bytes) -> dict[str, Any]:
    """Read a decision from its bytes, refusing anything but its exact JCS form."""
    return check_decision(_parse(raw, "decision"))


# --- Signature objects. --------------------------------------------------------------------------


def webauthn_signature(
    *,
    credential_id: bytes,
    authenticator_data: bytes,
    client_data_json: bytes,
    signature: bytes,
    batch: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The signature object of a passkey assertion (binary parts as unpadded base64url)."""
    return check_signature(
        {
            "kind": WEBAUTHN,
            "credential": b64url_encode(credential_id),
            "authenticator_data": b64url_encode(authenticator_data),
            "client_data_json": b64url_encode(client_data_json),
            "signature": b64url_encode(signature),
            "batch": None if batch is None else list(batch),
        }
    )


def webauthn_signature_from_json(
    credential: Mapping[str, Any], *, batch: Sequence[str] | None = None
) -> dict[str, Any]:
    """The signature object from the browser's PublicKeyCredential JSON of an assertion."""
    response = credential.get("response")
    if credential.get("type") != "public-key" or not isinstance(response, Mapping):
        raise DecisionInvalid(
            "credential",
            field="type",
            expected="a public-key assertion",
            found=credential.get("type"),
        )
    signature = {
        "kind": WEBAUTHN,
        "credential": credential.get("rawId"),
        "authenticator_data": response.get("authenticatorData"),
        "client_data_json": response.get("clientDataJSON"),
        "signature": response.get("signature"),
        "batch": None if batch is None else list(batch),
    }
    if credential.get("id") != signature["credential"]:
        raise DecisionInvalid(
            "credential", field="id", expected="equal to rawId", found=credential.get("id")
        )
    return check_signature(signature)


def server_signature(decision: Mapping[str, Any], private: Ed25519PrivateKey) -> dict[str, Any]:
    """Sign a decision with a server-held Ed25519 key."""
    return {
        "kind": SERVER_HELD,
        "signature": b64url_encode(private.sign(signing_message(decision))),
    }


def check_signature(value: Any) -> dict[str, Any]:
    """Check a signature object's members and encodings; return it as a plain dict."""
    if isinstance(value, Mapping) and value.get("kind") == SERVER_HELD:
        signature = _fields("signature", value, SERVER_HELD_FIELDS)
        if len(_b64("signature", signature["signature"])) != 64:
            raise DecisionInvalid(
                "signature",
                field="signature",
                expected="64 bytes (Ed25519)",
                found=signature["signature"],
            )
        return dict(signature)
    if not isinstance(value, Mapping) or value.get("kind") != WEBAUTHN:
        kind = value.get("kind") if isinstance(value, Mapping) else type(value).__name__
        raise DecisionInvalid(
            "signature", field="kind", expected=f"{WEBAUTHN!r} or {SERVER_HELD!r}", found=kind
        )
    signature = _fields("signature", value, WEBAUTHN_FIELDS)
    for name in ("credential", "authenticator_data", "client_data_json", "signature"):
        if not _b64(name, signature[name]):
            raise DecisionInvalid("signature", field=name, expected="non-empty bytes", found="")
    if signature["batch"] is not None:
        check_batch(signature["batch"])
    return dict(signature)


def _b64(name: str, value: Any) -> bytes:
    try:
        return b64url_decode(value, field=name)
    except EncodingInvalid as exc:
        raise DecisionInvalid(
            "signature", field=name, expected="unpadded canonical base64url", found=value
        ) from exc


def assertion_of(signature: Mapping[str, Any]) -> Assertion:
    """The WebAuthn assertion held in a passkey signature object."""
    checked = check_signature(signature)
    if checked["kind"] != WEBAUTHN:
        raise SignatureKindMismatch(
            "not a passkey signature", expected=WEBAUTHN, found=checked["kind"]
        )
    return _assertion(checked)


def _assertion(checked: Mapping[str, Any]) -> Assertion:
    return Assertion(
        credential_id=_b64("credential", checked["credential"]),
        authenticator_data=_b64("authenticator_data", checked["authenticator_data"]),
        client_data_json=_b64("client_data_json", checked["client_data_json"]),
        signature=_b64("signature", checked["signature"]),
    )


def expected_challenge(decision: Mapping[str, Any], signature: Mapping[str, Any]) -> bytes:
    """The challenge a passkey signature must answer for this decision (single or batch)."""
    jcs = decision_bytes(decision)
    return _challenge(jcs, hashlib.sha256(jcs).hexdigest(), check_signature(signature))


def _challenge(jcs: bytes, own_hash: str, checked: Mapping[str, Any]) -> bytes:
    batch = checked.get("batch")
    if batch is None:
        return hashlib.sha256(CHALLENGE_PREFIX + jcs).digest()
    if own_hash not in batch:
        raise DecisionNotInBatch(
            f"decision {own_hash} is not among the {len(batch)} hashes the batch signature covers",
            decision=own_hash,
            batch=batch,
        )
    return hashlib.sha256(BATCH_PREFIX + canonical_json(batch)).digest()


def verify_decision_signature(
    decision: Mapping[str, Any],
    signature: Mapping[str, Any],
    *,
    key: Passkey | Ed25519PublicKey,
    counters: SignCounters | None = None,
    key_id: str | None = None,
    already_checked: bool = False,
    defer: Callable[[SignatureCheck], None] | None = None,
) -> VerifiedAssertion | None:
    """Check that ``signature`` signs ``decision`` with ``key``; passkey uses feed ``counters``.

    ``key_id`` names the key in ``counters`` (default: the decision's ``key``). Returns the
    verified assertion for a passkey, None for a server-held key. ``already_checked``: the
    caller has just run check_decision and check_signature on these very objects (the verifier
    does, through check_log_body), so they are not checked twice. ``defer``: a passkey's
    signature cryptography is handed to it instead of checked here (see verify_assertion).
    """
    # 1. Both objects are well formed (the decision is serialized once: JCS costs most here).
    if already_checked:
        checked, jcs = dict(signature), canonical_json(decision)
    else:
        checked, jcs = check_signature(signature), decision_bytes(decision)
    # 2. A server-held key: Ed25519 over "expense-audit/v2\n" || JCS(decision).
    if not isinstance(key, Passkey):
        if checked["kind"] != SERVER_HELD:
            raise SignatureKindMismatch(
                "a server-held key's step carries a passkey signature",
                expected=SERVER_HELD,
                found=checked["kind"],
            )
        try:
            key.verify(_b64("signature", checked["signature"]), CHALLENGE_PREFIX + jcs)
        except InvalidSignature as exc:
            raise ServerSignatureInvalid(
                "server-held signature does not verify over the decision", key=decision.get("key")
            ) from exc
        return None
    # 3. A passkey: the assertion answers this decision's challenge (or its batch's).
    if checked["kind"] != WEBAUTHN:
        raise SignatureKindMismatch(
            "a passkey's step carries a server-held signature",
            expected=WEBAUTHN,
            found=checked["kind"],
        )
    own_hash = hashlib.sha256(jcs).hexdigest()
    challenge = _challenge(jcs, own_hash, checked)
    verified = verify_assertion(_assertion(checked), key=key, challenge=challenge, defer=defer)
    # 4. Its counter went up, or it is the same prompt signing another decision of its batch.
    if counters is not None:
        counters.observe(
            key_id or str(decision["key"]),
            sign_count=verified.sign_count,
            challenge=challenge,
            decision_hash=own_hash,
        )
    return verified


# --- Log bodies. ---------------------------------------------------------------------------------


def make_log_body(
    *,
    seq: int,
    prev: str,
    ts: str,
    decision: Mapping[str, Any],
    signature: Mapping[str, Any],
) -> dict[str, Any]:
    """The v2 log body around a signed decision (its origin is the decision's)."""
    return check_log_body(
        {
            "v": VERSION,
            "origin": decision.get("origin"),
            "seq": seq,
            "prev": prev,
            "ts": ts,
            "decision": dict(decision),
            "signature": dict(signature),
        }
    )


def check_log_body(value: Any) -> dict[str, Any]:
    """Check a v2 log body and everything in it (decision and signature object)."""
    body = _fields("body", value, BODY_FIELDS)
    if type(body["v"]) is not int or body["v"] != VERSION:
        raise DecisionInvalid("body", field="v", expected=str(VERSION), found=body["v"])
    _text("body", "origin", body["origin"])
    _count("body", "seq", body["seq"], minimum=1)
    _hex64("body", "prev", body["prev"])
    _timestamp("body", "ts", body["ts"])
    decision = check_decision(body["decision"])
    if decision["origin"] != body["origin"]:
        raise DecisionInvalid(
            "body",
            field="decision.origin",
            expected=f"the log's origin {body['origin']!r}",
            found=decision["origin"],
        )
    return {**body, "decision": decision, "signature": check_signature(body["signature"])}


def log_body_bytes(body: Mapping[str, Any]) -> bytes:
    """JCS of a (checked) v2 log body."""
    return canonical_json(check_log_body(body))


def log_body_hash(body: Mapping[str, Any]) -> str:
    """sha256(JCS(body)) in hex: the event hash, and the Merkle leaf input (as bytes)."""
    return hashlib.sha256(log_body_bytes(body)).hexdigest()


def parse_log_body(raw: bytes) -> dict[str, Any]:
    """Read a v2 log body from its bytes, refusing anything but its exact JCS form."""
    return check_log_body(_parse(raw, "log body"))


def log_leaf(body_hash: str) -> bytes:
    """The Merkle leaf of a v2 event: leaf_hash over its 32-byte body hash."""
    return leaf_hash(bytes.fromhex(body_hash))
