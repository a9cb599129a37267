"""Who can sign: enrollment codes, passkeys signing decisions, recovery, lockout, admin separation."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from expense_audit.decision import decision_challenge, webauthn_signature_from_json
from expense_audit.errors import DataInvalid, NotPermitted
from expense_audit.webauthn import EDDSA, ES256
from workflow.enrollment import MAX_FAILED_SIGNATURES
from workflow.errors import ConcurrentChange, KeyLocked, NoSigningKey, WrongSecret
from workflow.models import OutboxMail, SigningFailure, SigningKey, User
from workflow.passkeys import spki_from_registration
from workflow.signatures import SignatureRefused

from .factories import SECRET, School
from .softauthn import SoftAuthenticator

RP_ID, ORIGIN = "th-demo.edu.vn", "https://th-demo.edu.vn"


def _user(session: Any, login: str) -> User:
    user = session.scalars(select(User).where(User.login == login)).one()
    assert isinstance(user, User)
    return user


def _issue_code(school: School, login: str, purpose: str = "enrollment") -> str:
    with school.runtime.transaction() as session:
        directory = school.runtime.directory(session)
        return directory.keyring.issue_code(
            _user(session, login), by=_user(session, "admin"), purpose=purpose
        )


def _register(school: School, login: str, device: SoftAuthenticator, code: str) -> str:
    """Register ``device`` for ``login`` with ``code`` and confirm it; returns the key id."""
    challenge = os.urandom(32)
    answer = device.create(challenge, user_id=login.encode())
    registered = spki_from_registration(
        answer, expected_challenge=challenge, rp_id=RP_ID, origins=[ORIGIN]
    )
    with school.runtime.transaction() as session:
        keyring = school.runtime.directory(session).keyring
        user = _user(session, login)
        key = keyring.enroll_passkey(user, registered, code=code).key
        decision = keyring.key_decision(user, key, "key.confirm", {"key_id": key.key_id})
        signature = webauthn_signature_from_json(device.get(decision_challenge(decision)))
        keyring.confirm(user, key, decision=decision, signature=signature)
        return key.key_id


def _sign_step(
    school: School, number: str, trigger: str, login: str, device: SoftAuthenticator, **kwargs: Any
) -> Any:
    """Prepare a step, sign it on the (soft) phone, commit it: the passkey path of the web pages."""
    with school.runtime.transaction() as session:
        service = school.runtime.service(session)
        prepared = service.prepare(number, trigger, _user(session, login), **kwargs)
    signature = webauthn_signature_from_json(device.get(decision_challenge(prepared.decision)))
    with school.runtime.transaction() as session:
        service = school.runtime.service(session)
        return service.commit(prepared.decision, signature, _user(session, login))


@pytest.fixture
def hanh_phone(school: School) -> SoftAuthenticator:
    """Hạnh's phone: her server-held set-up key recovered into a passkey with an admin's code."""
    device = SoftAuthenticator(alg=ES256, rp_id=RP_ID, origin=ORIGIN)
    _register(school, "hanh", device, _issue_code(school, "hanh", "recovery"))
    return device


def test_a_passkey_signs_a_step_and_the_server_held_secret_no_longer_does(
    school: School, hanh_phone: SoftAuthenticator
) -> None:
    number = school.draft()
    event = _sign_step(school, number, "submit", "hanh", hanh_phone)
    assert school.request(number).state == "submitted"  # type: ignore[union-attr]
    assert event.sig == b"" and b'"kind":"webauthn"' in event.body
    other = school.draft()
    with pytest.raises(NoSigningKey, match="passkey"):
        school.act(other, "submit", "hanh", secret=SECRET)


@pytest.mark.parametrize("alg", [ES256, EDDSA], ids=["es256", "ed25519"])
def test_enrollment_code_registers_a_passkey_once(school: School, alg: int) -> None:
    with school.runtime.transaction() as session:
        directory = school.runtime.directory(session)
        user = directory.create_user(
            login="thu",
            name="Lê Thị Thu",
            email="thu@th-demo.edu.vn",
            roles=["proposer"],
            password="hoa-phuong-do-1987",
            signing_secret=None,
            by="admin",
        )
        assert user.must_change_password
    code = _issue_code(school, "thu")
    device = SoftAuthenticator(alg=alg, rp_id=RP_ID, origin=ORIGIN)
    key_id = _register(school, "thu", device, code)
    with school.runtime.transaction() as session:
        key = session.get(SigningKey, key_id)
        assert key is not None and key.kind == "passkey" and key.enrolled_by == "admin"
        assert key.method == "enrollment" and key.confirmed_seq is not None
        assert key.encrypted_private is None  # the server holds no private half
        mails = session.scalars(
            select(OutboxMail).where(OutboxMail.kind == "key", OutboxMail.recipient == "thu")
        ).all()
        assert len(mails) == 1 and key_id in mails[0].subject
    # The code was used: it cannot register a second device.
    with pytest.raises(DataInvalid, match="Mã đăng ký"):
        _register(school, "thu", SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN), code)


def test_enrollment_code_expires(school: School, clock: Any) -> None:
    code = _issue_code(school, "nga", "recovery")
    clock.now += timedelta(hours=73)
    with pytest.raises(DataInvalid, match="hết hạn"):
        _register(school, "nga", SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN), code)


def test_admin_cannot_issue_a_code_or_grant_a_role_to_himself(school: School) -> None:
    with school.runtime.transaction() as session:
        directory = school.runtime.directory(session)
        admin = _user(session, "admin")
        with pytest.raises(NotPermitted, match="chính mình"):
            directory.keyring.issue_code(admin, by=admin)
        with pytest.raises(NotPermitted, match="chính mình"):
            directory.set_roles(admin, ["admin", "approver"], by="admin")
        with pytest.raises(NotPermitted, match="quản trị"):
            directory.set_roles(_user(session, "long"), ["reviewer", "admin"], by="admin")


def test_an_unconfirmed_passkey_signs_nothing(school: School) -> None:
    code = _issue_code(school, "nga", "recovery")
    device = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    challenge = os.urandom(32)
    registered = spki_from_registration(
        device.create(challenge, user_id=b"nga"),
        expected_challenge=challenge,
        rp_id=RP_ID,
        origins=[ORIGIN],
    )
    with school.runtime.transaction() as session:
        school.runtime.directory(session).keyring.enroll_passkey(
            _user(session, "nga"), registered, code=code
        )
    number = school.draft(owner="nga")
    with pytest.raises(NoSigningKey, match="chưa được xác nhận"):
        _sign_step(school, number, "submit", "nga", device)


def test_assertion_for_another_decision_is_refused_and_nothing_written(
    school: School, hanh_phone: SoftAuthenticator
) -> None:
    number, other = school.draft(), school.draft(title="Khác")
    with school.runtime.transaction() as session:
        service = school.runtime.service(session)
        wanted = service.prepare(number, "submit", _user(session, "hanh")).decision
        decoy = service.prepare(other, "submit", _user(session, "hanh")).decision
    signature = webauthn_signature_from_json(hanh_phone.get(decision_challenge(decoy)))
    before = school.snapshot(number)
    with school.runtime.transaction() as session, pytest.raises(SignatureRefused):
        school.runtime.service(session).commit(wanted, signature, _user(session, "hanh"))
    assert school.snapshot(number) == before


def test_decision_altered_after_signing_is_refused(
    school: School, hanh_phone: SoftAuthenticator
) -> None:
    number = school.draft()
    with school.runtime.transaction() as session:
        decision = (
            school.runtime.service(session)
            .prepare(number, "submit", _user(session, "hanh"))
            .decision
        )
    signature = webauthn_signature_from_json(hanh_phone.get(decision_challenge(decision)))
    forged = {**decision, "data": {**decision["data"]}}
    forged["data"]["content"] = {**forged["data"]["content"], "amount_vnd": 1}
    with school.runtime.transaction() as session, pytest.raises(DataInvalid, match="khác"):
        school.runtime.service(session).commit(forged, signature, _user(session, "hanh"))


def test_someone_who_acted_first_wins_while_the_other_was_at_the_prompt(school: School) -> None:
    number = school.to_state("submitted")
    with school.runtime.transaction() as session:
        prepared = school.runtime.service(session).prepare(
            number, "return", _user(session, "long"), comment="Thiếu báo giá."
        )
    school.act(number, "withdraw", "hanh")  # Hạnh withdraws it from her phone meanwhile
    # Long's prompt was open while Hạnh decided: nothing was held, and Long is told who won.
    with school.runtime.transaction() as session, pytest.raises(ConcurrentChange, match="Hạnh"):
        school.runtime.service(session).commit(prepared.decision, {}, _user(session, "long"))


def test_counter_going_back_is_refused(school: School, hanh_phone: SoftAuthenticator) -> None:
    number = school.draft()
    _sign_step(school, number, "withdraw", "hanh", hanh_phone)
    other = school.draft()
    with school.runtime.transaction() as session:
        decision = (
            school.runtime.service(session)
            .prepare(other, "submit", _user(session, "hanh"))
            .decision
        )
    cloned = webauthn_signature_from_json(
        hanh_phone.get(decision_challenge(decision), sign_count=1)
    )
    with school.runtime.transaction() as session, pytest.raises(SignatureRefused, match="sao chép"):
        school.runtime.service(session).commit(decision, cloned, _user(session, "hanh"))


def test_five_wrong_secrets_lock_the_server_held_key_and_are_shown(school: School) -> None:
    number = school.draft(owner="nga")
    for _ in range(MAX_FAILED_SIGNATURES):
        with pytest.raises(WrongSecret):
            school.act(number, "submit", "nga", secret="sai-ma-ky-roi")
    with pytest.raises(KeyLocked):
        school.act(number, "submit", "nga", secret=SECRET)  # even the right one now
    with school.runtime.transaction() as session:
        failures = session.scalars(
            select(SigningFailure).where(SigningFailure.login == "nga")
        ).all()
        assert len(failures) == MAX_FAILED_SIGNATURES
        keyring = school.runtime.directory(session).keyring
        assert [f.reason for f in keyring.failures("nga")] == ["wrong-secret"] * 5
    assert school.request(number) is None  # the refused submit wrote nothing


def test_password_reset_by_the_admin_never_touches_keys(school: School) -> None:
    with school.runtime.transaction() as session:
        directory = school.runtime.directory(session)
        toan = _user(session, "toan")
        key_before = directory.active_key("toan")
        directory.reset_password(toan, "cay-bang-lang-tim", by=_user(session, "admin"))
        assert toan.must_change_password
        assert directory.active_key("toan") is key_before
    # The admin who knows the new password still cannot sign as Toàn: the key needs his secret.
    number = school.to_state("forwarded")
    with pytest.raises(WrongSecret):
        school.act(number, "approve", "toan", secret="cay-bang-lang-tim")
