"""Step 3 of the package docstring: every field of an event body, type-checked before any use."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import DataInvalid
from ..guards import check_attachments
from ..mandates import ACTIONS as MANDATE_ACTIONS
from ..projection import CONTENT_FIELDS, INVOICE_FIELDS, PAPERWORK_FIELDS

EVENT_FIELDS = frozenset(
    {
        "v",
        "origin",
        "seq",
        "prev",
        "ts",
        "request",
        "action",
        "from",
        "to",
        "actor",
        "role",
        "key",
        "definition",
        "data",
        "comment",
    }
)
INSTITUTION = "institution"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{16}")
# RFC 3339 in UTC, exactly as the writer stores it (no fraction, no offset other than Z).
_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MAX_SAFE = 2**53 - 1


class FieldInvalid(ValueError):
    """A field is missing or of the wrong type; the message names it."""


def parse_ts(value: object) -> datetime:
    """A timestamp 'YYYY-MM-DDTHH:MM:SSZ' (RFC 3339, UTC) as an aware datetime."""
    if not isinstance(value, str) or not _TS.fullmatch(value):
        raise FieldInvalid(f"ts {value!r} is not an RFC 3339 UTC time like 2026-11-22T09:15:03Z")
    try:
        return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)
    except ValueError:
        raise FieldInvalid(f"ts {value!r} is not a real date and time") from None


Check = Callable[[object], bool]


def _str(value: object) -> bool:
    return isinstance(value, str)


def _opt_str(value: object) -> bool:
    return value is None or isinstance(value, str)


def _int(value: object) -> bool:
    return type(value) is int and -_MAX_SAFE <= value <= _MAX_SAFE


def _opt_int(value: object) -> bool:
    return value is None or _int(value)


def _hex64(value: object) -> bool:
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def _opt_hex64(value: object) -> bool:
    return value is None or _hex64(value)


def _key_id(value: object) -> bool:
    return isinstance(value, str) and _KEY_ID.fullmatch(value) is not None


def _bool(value: object) -> bool:
    return isinstance(value, bool)


def _date(value: object) -> bool:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return False
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def _str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _attachments(value: object) -> bool:
    # NOTE: the engine's own rule (guards.check_attachments), so both accept the same records.
    if not isinstance(value, list):
        return False
    try:
        check_attachments(value)
    except DataInvalid:
        return False
    return True


_BODY: dict[str, Check] = {
    "origin": _str,
    "prev": _hex64,
    "request": _opt_str,
    "action": _str,
    "from": _opt_str,
    "to": _opt_str,
    "actor": _str,
    "role": _str,
    "key": _key_id,
    "definition": _opt_hex64,
    "comment": _opt_str,
}
PASSKEY = "passkey"
SERVER_HELD = "server-held"
ENROLL_METHODS = ("enrollment", "rotation", "recovery")


def _seq_ref(value: object) -> bool:
    return value is None or (type(value) is int and 1 <= value <= _MAX_SAFE)


# Institution events: exactly these data fields.
_INSTITUTION_DATA: dict[str, dict[str, Check]] = {
    "log.init": {"institution_key": _hex64, "fingerprint": _hex64},
    "user.roles": {"login": _str, "roles": _str_list, "by": _str},
    "user.active": {"login": _str, "active": _bool, "by": _str},
    "key.register": {"key_id": _key_id, "public_key": _hex64, "owner": _str},
    "key.enroll": {
        "key_id": _key_id,
        "owner": _str,
        "kind": lambda v: v in (PASSKEY, SERVER_HELD),
        "method": lambda v: v in ENROLL_METHODS,
        "by": _str,
        "public_key": _str,
        "alg": lambda v: (type(v) is int and v in (-7, -8)) or v == "ed25519",
        "credential_id": _opt_str,
        "rp_id": _opt_str,
        "origins": _str_list,
        "rotated_by": _seq_ref,
    },
    "key.revoke": {"key_id": _key_id, "owner": _str, "reason": _str, "by": _str},
    # A person's CA certificate (issue 14) and the PAdES-signed forms it signed.
    "cert.register": {
        **dict.fromkeys(("owner", "by", "subject", "serial", "issuer", "der"), _str),
        **dict.fromkeys(("not_before", "not_after", "nonce", "proof"), _str),
        "sha256": _hex64,
    },
    "cert.revoke": {**dict.fromkeys(("owner", "by", "reason"), _str), "certificate": _hex64},
    "form.sign": {
        **dict.fromkeys(("request", "signer", "signing_time"), _str),
        **dict.fromkeys(("certificate", "form_sha256", "pdf_sha256"), _hex64),
        "ca_revoked_at": _str,
    },
}
# NOTE: older logs wrote user.roles and key.revoke without "by"; it is reported as "unknown".
# form.sign has "ca_revoked_at" only when the file's CRLs show the CA revoked the certificate
# after the signing time.
_OPTIONAL_DATA = {"user.roles": "by", "key.revoke": "by", "form.sign": "ca_revoked_at"}
# Person decisions about keys (v2), their data, and the fields that must be null in them.
KEY_DECISIONS: dict[str, dict[str, Check]] = {
    "key.confirm": {"key_id": _key_id},
    "key.rotate": {"new_key": _key_id},
}
OWNER_ROLE = "owner"
_NULL_IN_KEY_DECISIONS = ("request", "from", "to", "definition", "budget", "comment")
_CONTENT: dict[str, Check] = {
    "title": _opt_str,
    "description": _opt_str,
    "line": _opt_str,
    "source": _opt_str,
    "budget_year": _opt_int,
    "quantity": _opt_int,
    "unit_price_vnd": _opt_int,
    "amount_vnd": _opt_int,
    "attachments": _attachments,
    # The paperwork (issue 13): shapes only here; check_content judges the values on replay.
    **dict.fromkeys(PAPERWORK_FIELDS, _opt_str),
}
# NOTE: events written before the paperwork fields existed lack them: absent reads as None.
_CONTENT_OPTIONAL = frozenset(PAPERWORK_FIELDS)
if set(_CONTENT) != set(CONTENT_FIELDS):  # pragma: no cover - keeps the two lists together
    raise ImportError("verify.fields checks other content fields than projection.CONTENT_FIELDS")
_MANDATE_REF: dict[str, Check] = {"seq": lambda v: v is not None and _seq_ref(v), "hash": _hex64}
_PAYMENT: dict[str, Check] = {
    "voucher": _str,
    "paid_on": _date,
    "amount_paid_vnd": _int,
    **dict.fromkeys(INVOICE_FIELDS, _opt_str),
}
_PAYMENT_OPTIONAL = frozenset(INVOICE_FIELDS)


def _exactly(
    where: str,
    value: object,
    checks: Mapping[str, Check],
    optional: frozenset[str] = frozenset(),
) -> None:
    if not isinstance(value, dict):
        raise FieldInvalid(f"{where} is {type(value).__name__}, expected an object")
    missing = sorted(set(checks) - set(value) - optional)
    extra = sorted(set(value) - set(checks))
    if missing or extra:
        raise FieldInvalid(f"{where} fields: missing {missing}, unexpected {extra}")
    for name, check in checks.items():
        if name in value and not check(value[name]):
            raise FieldInvalid(f"{where}.{name} has an invalid value {value[name]!r:.80}")


def check_body(body: object) -> datetime:
    """Raise FieldInvalid unless every field has its type; return the event's time."""
    if not isinstance(body, dict):
        raise FieldInvalid(f"body is {type(body).__name__}, expected an object")
    if set(body) != EVENT_FIELDS:
        missing, extra = sorted(EVENT_FIELDS - set(body)), sorted(set(body) - EVENT_FIELDS)
        raise FieldInvalid(f"body fields: missing {missing}, unexpected {extra}")
    if body["v"] != 1 or type(body["v"]) is not int:
        raise FieldInvalid(f"unsupported event version {body['v']!r:.40}")
    seq = body["seq"]
    if not _int(seq) or seq < 1:
        raise FieldInvalid(f"seq {seq!r:.40} is not a positive integer")
    for name, check in _BODY.items():
        if not check(body[name]):
            raise FieldInvalid(f"{name} has an invalid value {body[name]!r:.80}")
    moment = parse_ts(body["ts"])
    data, action = body["data"], body["action"]
    if body["actor"] == INSTITUTION:
        checks = _INSTITUTION_DATA.get(action)
        if checks is None:
            raise FieldInvalid(f"unknown institution action {action!r:.40}")
        optional = _OPTIONAL_DATA.get(action)
        if optional is not None and isinstance(data, dict) and optional not in data:
            checks = {name: check for name, check in checks.items() if name != optional}
        _exactly("data", data, checks)
        return moment
    if action in KEY_DECISIONS or action in MANDATE_ACTIONS:
        raise FieldInvalid(f"{action} is a v2 decision, found in a v1 body")
    _step_data(data, budget_inside=True)
    return moment


def _step_data(data: object, *, budget_inside: bool) -> None:
    """data of a request step: content, the payment record if any, (v1 only) the budget hash."""
    if not isinstance(data, dict):
        raise FieldInvalid(f"data is {type(data).__name__}, expected an object")
    # NOTE: only a v2 step may act under a mandate (data.mandate names the grant event).
    allowed = (
        {"content", "budget", "payment"} if budget_inside else {"content", "payment", "mandate"}
    )
    unexpected = set(data) - allowed
    if unexpected or "content" not in data:
        raise FieldInvalid(f"data fields: need content, unexpected {sorted(unexpected)}")
    _exactly("data.content", data["content"], _CONTENT, _CONTENT_OPTIONAL)
    if "budget" in data and not _hex64(data["budget"]):
        raise FieldInvalid(f"data.budget has an invalid value {data['budget']!r:.80}")
    if "payment" in data:
        _exactly("data.payment", data["payment"], _PAYMENT, _PAYMENT_OPTIONAL)
    if "mandate" in data:
        _exactly("data.mandate", data["mandate"], _MANDATE_REF)


def v2_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """A v2 body (already checked by decision.check_log_body) as the flat event the rest reads.

    The decision's members sit beside the body's (v, origin, seq, prev, ts); "signature" and
    "budget" keep their names. Raises FieldInvalid when the decision's data does not fit its
    action (request step, key.confirm or key.rotate).
    """
    decision = body["decision"]
    view: dict[str, Any] = {
        name: decision[name] for name in decision if name not in ("v", "origin")
    }
    view.update(
        v=2,
        origin=body["origin"],
        seq=body["seq"],
        prev=body["prev"],
        ts=body["ts"],
        signature=body["signature"],
    )
    action = view["action"]
    if view["actor"] == INSTITUTION:
        raise FieldInvalid("institution events stay v1; a v2 decision names institution")
    if action in MANDATE_ACTIONS:
        # NOTE: a mandate is about no request; its data is checked by the replay, which reports
        # a broken one as mandate-invalid (expense_audit.mandates.parse_grant).
        for name in _NULL_IN_KEY_DECISIONS[:-1]:
            if view[name] is not None:
                raise FieldInvalid(f"{action}: {name} must be null, found {view[name]!r:.80}")
        if view["request_prev"] is not None:
            raise FieldInvalid(f"{action}: request_prev must be null")
        return view
    checks = KEY_DECISIONS.get(action)
    if checks is None:
        _step_data(view["data"], budget_inside=False)
        return view
    _exactly("data", view["data"], checks)
    for name in _NULL_IN_KEY_DECISIONS:
        if view[name] is not None:
            raise FieldInvalid(f"{action}: {name} must be null, found {view[name]!r:.80}")
    if view["role"] != OWNER_ROLE:
        raise FieldInvalid(f"{action}: role must be {OWNER_ROLE!r}, found {view['role']!r:.40}")
    return view
