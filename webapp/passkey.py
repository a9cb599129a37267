"""The web side of passkeys: the relying party's settings, options for the browser, JSON replies.

The relying party is this site: its RP ID (a registrable domain, never an IP address) and the
origins pages are served from. Both default to EXPENSES_BASE_URL's host and scheme://host[:port];
EXPENSES_RP_ID and EXPENSES_WEBAUTHN_ORIGINS (comma-separated, or a JSON list) override them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, jsonify, request, session
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from expense_audit.errors import Refusal, WorkflowError
from expense_audit.webauthn import b64url_decode
from workflow.models import SigningKey, User
from workflow.passkeys import RegisteredPasskey
from workflow.signatures import b64url

from .context import db, directory, runtime
from .errors import message_for

SIGN_TIMEOUT_MS = 120_000  # the browser's prompt waits this long for the fingerprint
REGISTRATION_LIFETIME = 300  # seconds a registration challenge may be answered in
_REGISTRATION = "passkey_registration"
_ROTATION = "passkey_rotation"


_LOOPBACK = {"127.0.0.1", "::1", "[::1]"}


def _base() -> tuple[str, str, int | None]:
    """Scheme, host and port of EXPENSES_BASE_URL; a loopback address reads as localhost.

    NOTE: an IP address is no valid RP ID, so the default http://127.0.0.1:5000 of a local run
    would make passkeys impossible; localhost is the same machine and a secure context.
    """
    parts = urlsplit(runtime().settings.base_url)
    host = parts.hostname or "localhost"
    return parts.scheme, "localhost" if host in _LOOPBACK else host, parts.port


def rp_id() -> str:
    """The WebAuthn relying party id: EXPENSES_RP_ID, else the host of EXPENSES_BASE_URL."""
    configured = current_app.config.get("RP_ID")
    if configured:
        return str(configured)
    return _base()[1]


def origins() -> list[str]:
    """Origins a passkey answer may come from: EXPENSES_WEBAUTHN_ORIGINS, else the base URL's."""
    configured = current_app.config.get("WEBAUTHN_ORIGINS")
    if isinstance(configured, str):
        configured = [o.strip() for o in configured.split(",") if o.strip()]
    if configured:
        return [str(o).rstrip("/") for o in configured]
    scheme, host, port = _base()
    return [f"{scheme}://{host}" + (f":{port}" if port else "")]


def request_options(key: SigningKey, challenge: bytes) -> dict[str, Any]:
    """What navigator.credentials.get() needs (binary members as base64url)."""
    return {
        "challenge": b64url(challenge),
        "rpId": key.rp_id or rp_id(),
        "allowCredentials": [{"type": "public-key", "id": key.credential_id}],
        "userVerification": "required",
        "timeout": SIGN_TIMEOUT_MS,
    }


def new_registration_challenge() -> bytes:
    """A random challenge for navigator.credentials.create(), kept in the session briefly."""
    challenge = secrets.token_bytes(32)
    session[_REGISTRATION] = {
        "challenge": b64url(challenge),
        "until": time.time() + REGISTRATION_LIFETIME,
    }
    return challenge


def take_registration_challenge() -> bytes | None:
    """The session's registration challenge, once (None if absent or expired).

    NOTE: the session is a signed cookie, so "once" holds for this browser's cookie jar; a
    replayed old cookie still meets the expiry, the one-time enrollment code and the refusal
    to register the same credential twice.
    """
    stored = session.pop(_REGISTRATION, None)
    if not isinstance(stored, Mapping) or float(stored.get("until", 0)) < time.time():
        return None
    return b64url_decode(str(stored.get("challenge", "")), field="challenge")


def keep_rotation(login: str, new: RegisteredPasskey) -> None:
    """Hold a verified new credential while the person's current passkey signs it off.

    The session is a signed cookie: the person cannot alter what is kept, only replay it within
    the lifetime, and the `key.rotate` decision the old passkey must sign names the new key.
    """
    session[_ROTATION] = {
        "login": login,
        "until": time.time() + REGISTRATION_LIFETIME,
        "credential_id": b64url(new.credential_id),
        "public_key": b64url(new.public_key),
        "alg": new.alg,
        "sign_count": new.sign_count,
        "backed_up": new.backed_up,
        "aaguid": new.aaguid,
        "rp_id": new.rp_id,
        "origins": list(new.origins),
    }


def take_rotation(login: str) -> RegisteredPasskey | None:
    """The new credential kept by keep_rotation for ``login``, once (None if absent or expired)."""
    kept = session.pop(_ROTATION, None)
    if (
        not isinstance(kept, Mapping)
        or kept.get("login") != login
        or float(kept.get("until", 0)) < time.time()
    ):
        return None
    return RegisteredPasskey(
        credential_id=b64url_decode(str(kept["credential_id"]), field="credential_id"),
        public_key=b64url_decode(str(kept["public_key"]), field="public_key"),
        alg=int(kept["alg"]),
        sign_count=int(kept["sign_count"]),
        backed_up=bool(kept["backed_up"]),
        aaguid=str(kept["aaguid"]),
        rp_id=str(kept["rp_id"]),
        origins=tuple(str(o) for o in kept["origins"]),
    )


def json_body() -> dict[str, Any]:
    """The request's JSON object (an empty dict for anything else)."""
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def refusal(error: WorkflowError, status: int = 422) -> tuple[Response, int]:
    """A refusal as JSON, its message in the user's language.

    Refusals carry Vietnamese and English; other errors (a registration the library refused, a
    malformed assertion) speak English to developers, so the person is told in plain words.
    """
    if isinstance(error, Refusal):
        message = message_for(error)
    elif error.code == "passkey_registration_refused":
        message = _(
            "The phone's answer was refused: it came from another site, or without your "
            "fingerprint, face or screen lock. Nothing was recorded."
        )
    else:
        message = _("The browser's answer could not be read. Reload the page and try again.")
    return jsonify(ok=False, code=error.code, message=message, detail=error.message), status


def problem(message: str, status: int = 400) -> tuple[Response, int]:
    """A plain JSON error with an already translated message."""
    return jsonify(ok=False, code="bad_request", message=message), status


def unreadable() -> tuple[Response, int]:
    """The browser sent something this page never sends."""
    return problem(_("The browser's answer could not be read. Reload the page and try again."))


def record_failure(user: User, error: WorkflowError, reason: str = "passkey-refused") -> None:
    """Keep a failed signature where the owner and the admin see it, apart from the step
    (which is rolled back: nothing of it was written)."""
    db().rollback()
    key = directory().keyring.active_key(user.login)
    key_id = str(error.details.get("key_id") or (key.key_id if key else ""))
    directory().keyring.record_failure(user.login, key_id, reason)
    db().commit()
