"""The write lock only for the append, beyond the request steps: mandates, keys and passkeys.

Each slow check (a key unlock, a passkey assertion check) runs before the write lock, so another
person's step is recorded meanwhile; what changed during the check (the mandate revoked, the key
rotated) is seen again under the lock, and the late one is refused and writes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from expense_audit.webauthn import EDDSA, b64url_decode
from workflow import enrollment
from workflow import mandates as mandates_module
from workflow.models import MandateRow, SigningKey

from .conftest import SteppingClock
from .factories import SECRET, School
from .test_web_mandates import KT, at, grant_on_page, mandates
from .test_web_passkeys import _phone, _register, _with_passkey
from .test_write_lock import WAIT, _in_thread, unlock_held_for
from .web import AuthActions, text


def _everything(school: School) -> tuple[Any, ...]:
    """The log, the outbox and the mandates and keys: what a refusal must leave as it was."""
    with school.runtime.transaction() as session:
        rows = tuple(
            (row.seq, row.revoked_seq)
            for row in session.scalars(select(MandateRow).order_by(MandateRow.seq))
        )
        keys = tuple(
            (key.key_id, key.revoked_seq, key.sign_count, key.failed_attempts)
            for key in session.scalars(select(SigningKey).order_by(SigningKey.key_id))
        )
        count = session.scalar(select(func.count()).select_from(MandateRow))
    return (*school.snapshot(""), rows, keys, count)


def test_a_slow_unlock_for_a_mandate_holds_nobody_up(
    app: Flask, auth: AuthActions, school: School, clock: SteppingClock, monkeypatch: Any
) -> None:
    """While Toàn's key unlocks to sign a mandate, Ngà's submit is recorded; then the mandate."""
    at(clock, date(2025, 3, 9))
    quick = school.draft("nga")
    toan, nga = auth.session("toan"), auth.session("nga")
    toan.get("/mandates")
    nga.get(f"/requests/{quick}")
    with unlock_held_for("toan", monkeypatch) as held:
        thread, result = _in_thread(lambda: toan.post("/mandates", {**KT, "secret": SECRET}))
        assert held["entered"].wait(WAIT)
        response = nga.post(f"/requests/{quick}/act", {"trigger": "submit", "secret": SECRET})
        assert response.status_code == 302
        assert school.request(quick).state == "submitted"  # type: ignore[union-attr]
        held["go"].set()
        thread.join(WAIT * 2)
    assert held["released"], "Ngà's step waited for Toàn's unlock to end"
    assert result["value"].status_code == 302, text(result["value"])[:2000]
    [row] = mandates(school)
    assert (row.delegator, row.delegate) == ("toan", "long")


def test_a_revocation_of_a_mandate_revoked_meanwhile_writes_nothing(
    app: Flask, auth: AuthActions, school: School, clock: SteppingClock, monkeypatch: Any
) -> None:
    """Toàn revokes in two tabs; the first tab's key unlocks slowly, the second's revocation
    is recorded meanwhile: the first is refused under the lock, and log, outbox and mandates
    stay as the second left them."""
    at(clock, date(2025, 3, 9))
    first, second = auth.session("toan"), auth.session("toan")
    assert grant_on_page(first).status_code == 302
    [row] = mandates(school)
    first.get("/mandates")
    second.get("/mandates")
    with unlock_held_for("toan", monkeypatch) as held:
        thread, result = _in_thread(
            lambda: first.post(f"/mandates/{row.seq}/revoke", {"secret": SECRET})
        )
        assert held["entered"].wait(WAIT)
        monkeypatch.undo()  # the second tab's unlock is not held
        done = second.post(f"/mandates/{row.seq}/revoke", {"secret": SECRET})
        assert done.status_code == 302
        after_revocation = _everything(school)
        held["go"].set()
        thread.join(WAIT * 2)
    assert result["value"].status_code == 302
    assert "đã bị thu hồi" in text(first.get("/mandates"))
    assert _everything(school) == after_revocation
    [revoked] = mandates(school)
    assert revoked.revoked_seq is not None


@contextmanager
def signature_check_held(
    monkeypatch: pytest.MonkeyPatch, module: ModuleType
) -> Iterator[dict[str, Any]]:
    """The next signature check (a passkey assertion) that ``module`` makes stops half-way until
    the test lets it go: workflow.mandates for a mandate, workflow.enrollment for a key change."""
    state: dict[str, Any] = {"entered": threading.Event(), "go": threading.Event()}
    original = module.verify_signature

    def verify(key: SigningKey, decision: Any, signature: Any) -> Any:
        if not state["entered"].is_set():
            state["entered"].set()
            state["released"] = state["go"].wait(WAIT)
        return original(key, decision, signature)

    monkeypatch.setattr(module, "verify_signature", verify)
    yield state


def test_a_passkey_signed_grant_whose_key_was_revoked_during_the_check_writes_nothing(
    app: Flask, auth: AuthActions, school: School, clock: SteppingClock, monkeypatch: Any
) -> None:
    """Toàn's phone signs a mandate; while the assertion is being checked, the admin revokes
    his key (lost phone) and Ngà submits a request: both are recorded, and the grant is refused
    under the lock: no mandate, log and outbox as the revocation left them."""
    at(clock, date(2025, 3, 9))
    toan, phone = _with_passkey(auth, "toan")
    quick = school.draft("nga")
    nga, admin = auth.session("nga"), auth.session("admin")
    nga.get(f"/requests/{quick}")
    admin.get("/admin/users")
    toan.get("/mandates")
    prepared = toan.post_json("/mandates/decision", {**KT, "csrf_token": toan.token})
    assert prepared.status_code == 200, text(prepared)
    body = prepared.get_json()
    credential = phone.get(b64url_decode(body["publicKey"]["challenge"]))
    with signature_check_held(monkeypatch, mandates_module) as held:
        thread, result = _in_thread(
            lambda: toan.post_json(
                "/mandates/sign", {"decision": body["decision"], "credential": credential}
            )
        )
        assert held["entered"].wait(WAIT)
        submitted = nga.post(f"/requests/{quick}/act", {"trigger": "submit", "secret": SECRET})
        assert submitted.status_code == 302
        revoked = admin.post("/admin/users/toan/revoke-key", {"confirm": "y"})
        assert revoked.status_code == 302
        after_revocation = _everything(school)
        held["go"].set()
        thread.join(WAIT * 2)
    assert held["released"], "Ngà's step or the revocation waited for the assertion check"
    refused = result["value"]
    assert refused.status_code in (403, 422), text(refused)
    assert refused.get_json()["ok"] is False
    assert _everything(school) == after_revocation
    assert mandates(school) == []
    assert school.request(quick).state == "submitted"  # type: ignore[union-attr]


def test_a_hand_over_signed_by_a_passkey_revoked_during_the_check_writes_nothing(
    app: Flask, auth: AuthActions, school: School, monkeypatch: Any
) -> None:
    """Hạnh's old phone signs the hand-over to a new one; while the assertion is being checked
    Ngà submits a request and the admin revokes Hạnh's key (the phone was stolen): both are
    recorded, and the hand-over is refused under the lock: no new key, nothing written."""
    hanh, old_phone = _with_passkey(auth, "hanh")
    quick = school.draft("nga")
    nga, admin = auth.session("nga"), auth.session("admin")
    nga.get(f"/requests/{quick}")
    admin.get("/admin/users")
    handover = _register(hanh, _phone(EDDSA))["rotate"]
    signed = old_phone.get(b64url_decode(handover["publicKey"]["challenge"]))
    with signature_check_held(monkeypatch, enrollment) as held:
        thread, result = _in_thread(
            lambda: hanh.post_json(
                "/signing-key/passkey/rotate",
                {"decision": handover["decision"], "credential": signed},
            )
        )
        assert held["entered"].wait(WAIT)
        submitted = nga.post(f"/requests/{quick}/act", {"trigger": "submit", "secret": SECRET})
        assert submitted.status_code == 302
        assert admin.post("/admin/users/hanh/revoke-key", {}).status_code == 302
        after_revocation = _everything(school)
        held["go"].set()
        thread.join(WAIT * 2)
    assert held["released"], "Ngà's step or the revocation waited for the assertion check"
    refused = result["value"]
    assert refused.status_code == 422 and refused.get_json()["ok"] is False, text(refused)
    assert _everything(school) == after_revocation
    with school.runtime.transaction() as session:
        assert (
            session.scalar(
                select(func.count()).where(
                    SigningKey.login == "hanh", SigningKey.revoked_seq.is_(None)
                )
            )
            == 0
        )
