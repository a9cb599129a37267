"""Who can sign: enrolling, confirming, rotating, recovering and revoking a person's key.

Keys enter the log only by enrollment (DESIGN.md, "Who can sign"):

1. An admin issues a one-time code to the person (never for themselves); it is shown once, kept
   only as a hash, expires, and is used once.
2. The person registers a passkey (or, as a fallback, a server-held key under a secret of at
   least 10 characters) with their password and that code: an institution-signed `key.enroll`
   event names the admin who issued the code and how the key came (enrollment or recovery).
3. The new key's first signature is a `key.confirm` decision (proof of possession); until then it
   signs nothing else.
4. A new key while the old one is valid is a rotation signed by the old key (`key.rotate`) or a
   recovery started by an admin's code; the old key is revoked from that moment, and what it
   signed before stays valid. Every new key and every recovery is mailed to its owner.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from expense_audit.decision import make_decision, server_signature
from expense_audit.errors import DataInvalid, NotPermitted
from expense_audit.vocabulary import CHAIN_ROLES

from .audit import append_decision, append_institution_event, format_ts, lock_head
from .clock import Clock, utcnow
from .db import begin_write
from .errors import KeyLocked, NoSigningKey, WrongSecret
from .keys import (
    DEFAULT_SCRYPT_N,
    MAX_FAILED_SIGNATURES,
    InstitutionKey,
    UnlockedKey,
    require_loaded,
    seal_new_key,
    unlock,
)
from .models import EnrollmentCode, SigningFailure, SigningKey, User
from .passkeys import RegisteredPasskey
from .signatures import PASSKEY, SERVER_HELD, b64url, keep_counter, verify_signature

CODE_LIFETIME = timedelta(hours=72)
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud or from paper
ENROLLMENT, RECOVERY, ROTATION, SETUP = "enrollment", "recovery", "rotation", "setup"

# Mails about keys go through this (workflow.notify.queue_key_mail); None: no mail (tests, CLI).
KeyMailer = Callable[[Session, User, str, SigningKey], object]


@dataclass(frozen=True)
class Enrolled:
    """A key just enrolled, and the event that entered it in the log."""

    key: SigningKey
    seq: int


def _code_hash(code: str) -> str:
    normal = "".join(ch for ch in code.upper() if ch.isalnum())
    return hashlib.sha256(normal.encode()).hexdigest()


# Built once: read at every signed step.
_ACTIVE_KEY = (
    select(SigningKey)
    .where(SigningKey.login == bindparam("login"), SigningKey.revoked_seq.is_(None))
    .order_by(SigningKey.registered_seq.desc())
)


class Keyring:
    """Every person's keys; the institution key signs enrollments and revocations."""

    def __init__(
        self,
        session: Session,
        *,
        institution: InstitutionKey | None,
        origin: str,
        clock: Clock = utcnow,
        scrypt_n: int = DEFAULT_SCRYPT_N,
        pepper: bytes | None = None,
        mailer: KeyMailer | None = None,
    ) -> None:
        self.session = session
        self.institution = institution
        self.origin = origin
        self.clock = clock
        self.scrypt_n = scrypt_n
        self.pepper = pepper
        self.mailer = mailer

    # --- reading ------------------------------------------------------------------------------

    def active_key(self, login: str) -> SigningKey | None:
        """The person's key that is not revoked (confirmed or not), or None."""
        return self.session.scalars(_ACTIVE_KEY, {"login": login}).first()

    def signing_key(self, user: User) -> SigningKey:
        """The key the person signs steps with: active and confirmed."""
        key = self.active_key(user.login)
        if key is None:
            raise NoSigningKey(
                "Bạn chưa có khóa ký. Hãy đăng ký khóa ký (passkey) với mã do quản trị cấp.",
                en="You have no signing key yet: register a passkey with the code the admin gave you.",
                login=user.login,
            )
        if key.confirmed_seq is None:
            raise NoSigningKey(
                "Khóa ký mới của bạn chưa được xác nhận: hãy xác nhận nó trước.",
                en="Your new signing key is not confirmed yet: confirm it first.",
                login=user.login,
                key_id=key.key_id,
            )
        return key

    def failures(self, login: str | None = None, *, limit: int = 50) -> list[SigningFailure]:
        """Recent failed signatures (wrong secrets, refused assertions), newest first."""
        query = select(SigningFailure).order_by(SigningFailure.at.desc()).limit(limit)
        if login is not None:
            query = query.where(SigningFailure.login == login)
        return list(self.session.scalars(query))

    # --- one-time codes -----------------------------------------------------------------------

    def issue_code(self, user: User, *, by: User, purpose: str = ENROLLMENT) -> str:
        """A one-time code for ``user`` to register a key (shown once; only its hash is kept)."""
        _require_admin(by, user)
        if purpose not in (ENROLLMENT, RECOVERY):
            raise DataInvalid("Mục đích không hợp lệ.", en="Unknown purpose.", field="purpose")
        now = self.clock()
        for old in self.session.scalars(
            select(EnrollmentCode).where(
                EnrollmentCode.login == user.login, EnrollmentCode.used_at.is_(None)
            )
        ):
            old.used_at = now  # a new code replaces any earlier one
        code = "-".join("".join(secrets.choice(CODE_ALPHABET) for _ in range(4)) for _ in range(4))
        self.session.add(
            EnrollmentCode(
                login=user.login,
                code_hash=_code_hash(code),
                purpose=purpose,
                issued_by=by.login,
                created_at=now,
                expires_at=now + CODE_LIFETIME,
            )
        )
        self.session.flush()
        return code

    def _redeem(self, user: User, code: str) -> EnrollmentCode:
        now = self.clock()
        wanted = _code_hash(code)
        for candidate in self.session.scalars(
            select(EnrollmentCode).where(
                EnrollmentCode.login == user.login, EnrollmentCode.used_at.is_(None)
            )
        ):
            if secrets.compare_digest(candidate.code_hash, wanted) and candidate.expires_at > now:
                candidate.used_at = now
                return candidate
        raise DataInvalid(
            "Mã đăng ký không đúng, đã dùng hoặc đã hết hạn. Hãy xin quản trị cấp mã mới.",
            en="The enrollment code is wrong, used or expired. Ask the admin for a new one.",
            field="code",
        )

    # --- enrolling ----------------------------------------------------------------------------

    def enroll_passkey(self, user: User, passkey: RegisteredPasskey, *, code: str) -> Enrolled:
        """Enter a passkey the person registered with their one-time code (unconfirmed yet)."""
        _write_now(self.session)  # the registration was checked before (webapp.auth)
        grant = self._redeem(user, code)
        return self._enroll(
            user,
            passkey.key_id,
            _passkey_record(passkey),
            method=grant.purpose,
            by=grant.issued_by,
        )

    def enroll_server_key(
        self, user: User, secret: str, *, code: str | None, setup: bool = False
    ) -> Enrolled:
        """A server-held key under ``secret`` (the fallback), confirmed at once.

        ``setup`` is the server operator's CLI and the demo (no code; the log says "setup").
        The key is sealed and unlocked (scrypt, slow by design) before the write lock.
        """
        sealed = seal_new_key(secret, scrypt_n=self.scrypt_n, pepper=self.pepper)
        signer = unlock(
            sealed.key_id, sealed.encrypted_private, sealed.kdf, secret, pepper=self.pepper
        )
        _write_now(self.session)
        if setup:
            method, by = ENROLLMENT, SETUP
        elif code is None:
            raise DataInvalid(
                "Cần mã đăng ký do quản trị cấp.",
                en="The enrollment code from the admin is needed.",
                field="code",
            )
        else:
            grant = self._redeem(user, code)
            method, by = grant.purpose, grant.issued_by
        enrolled = self._enroll(
            user,
            sealed.key_id,
            _server_record(sealed.public_raw),
            method=method,
            by=by,
            sealed=(sealed.encrypted_private, sealed.kdf),
        )
        self.confirm(user, enrolled.key, server_signer=signer)
        return enrolled

    def _enroll(
        self,
        user: User,
        new_key_id: str,
        record: Mapping[str, Any],
        *,
        method: str,
        by: str,
        rotated_by: int | None = None,
        sealed: tuple[bytes, dict[str, Any]] | None = None,
    ) -> Enrolled:
        old = self.active_key(user.login)
        if old is not None and method == ENROLLMENT:
            raise NotPermitted(
                "Bạn đã có khóa ký: hãy đổi khóa bằng khóa cũ, hoặc nhờ quản trị khôi phục.",
                en="You already have a signing key: rotate it with the old one, or ask the "
                "admin for a recovery.",
                field="code",
            )
        if self.session.get(SigningKey, new_key_id) is not None:
            raise DataInvalid(
                "Khóa này đã được đăng ký.", en="This key is already registered.", field="key"
            )
        event = append_institution_event(
            self.session,
            signer=require_loaded(self.institution),
            ts=self.clock(),
            action="key.enroll",
            data={
                "key_id": new_key_id,
                "owner": user.login,
                "method": method,
                "by": by,
                "rotated_by": rotated_by,
                **record,
            },
        )
        key = SigningKey(
            key_id=new_key_id,
            login=user.login,
            public_key=str(record["public_key"]),
            encrypted_private=sealed[0] if sealed else None,
            kdf=sealed[1] if sealed else None,
            registered_seq=event.seq,
            revoked_seq=None,
            created_at=self.clock(),
            kind=str(record["kind"]),
            method=method,
            enrolled_by=by,
            alg=record["alg"] if isinstance(record["alg"], int) else None,
            credential_id=record["credential_id"],
            rp_id=record["rp_id"],
            origins=list(record["origins"]),
            confirmed_seq=None,
            sign_count=0,
            failed_attempts=0,
        )
        self.session.add(key)
        self.session.flush()
        if old is not None:
            self.revoke(old, reason=method, by=by)
        if self.mailer is not None:
            self.mailer(self.session, user, method, key)
        return Enrolled(key, event.seq)

    def rotate_server_key(self, user: User, old_secret: str, new_secret: str) -> Enrolled:
        """A new server-held key while the old one is valid: the old key signs `key.rotate`."""
        old, old_signer = self.unlock(user, old_secret, reset_failures=False)
        sealed = seal_new_key(new_secret, scrypt_n=self.scrypt_n, pepper=self.pepper)
        return self._rotate(
            user,
            old,
            server_signature_of=lambda decision: server_signature(decision, old_signer.private),
            new_key_id=sealed.key_id,
            record=_server_record(sealed.public_raw),
            sealed=(sealed.encrypted_private, sealed.kdf),
            new_signer=unlock(
                sealed.key_id, sealed.encrypted_private, sealed.kdf, new_secret, pepper=self.pepper
            ),
        )

    def rotate_server_key_to_passkey(
        self, user: User, old_secret: str, passkey: RegisteredPasskey
    ) -> Enrolled:
        """Move from a server-held key to a passkey: the old key signs `key.rotate`."""
        old, old_signer = self.unlock(user, old_secret, reset_failures=False)
        return self._rotate(
            user,
            old,
            server_signature_of=lambda decision: server_signature(decision, old_signer.private),
            new_key_id=passkey.key_id,
            record=_passkey_record(passkey),
        )

    def rotate_to_passkey(
        self,
        user: User,
        passkey: RegisteredPasskey,
        *,
        decision: Mapping[str, Any],
        signature: Mapping[str, Any],
    ) -> Enrolled:
        """A new passkey while the old key is valid: ``signature`` is the old key's `key.rotate`."""
        old = self.signing_key(user)
        return self._rotate(
            user,
            old,
            server_signature_of=None,
            new_key_id=passkey.key_id,
            record=_passkey_record(passkey),
            signed=(decision, signature),
        )

    def _rotate(
        self,
        user: User,
        old: SigningKey,
        *,
        server_signature_of: Callable[[Mapping[str, Any]], dict[str, Any]] | None,
        new_key_id: str,
        record: Mapping[str, Any],
        sealed: tuple[bytes, dict[str, Any]] | None = None,
        new_signer: UnlockedKey | None = None,
        signed: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
    ) -> Enrolled:
        expected = self.key_decision(user, old, "key.rotate", {"new_key": new_key_id})
        if signed is not None:
            same_except_issued(signed[0], expected)
            expected, signature = dict(signed[0]), dict(signed[1])
        elif server_signature_of is not None:
            signature = server_signature_of(expected)
        else:  # pragma: no cover - one of the two is always given
            raise DataInvalid("Thiếu chữ ký.", en="The signature is missing.", field="signature")
        # The old key's signature is checked (and the new key sealed, by the callers) before
        # the write lock; under it the old key must still be the person's signing key (not
        # revoked or rotated meanwhile), and a passkey's counter must rise.
        verified = verify_signature(old, expected, signature)
        if _write_now(self.session):
            old = self.signing_key(user)
        keep_counter(old, verified, signature)
        rotation = append_decision(
            self.session, decision=expected, signature=signature, ts=self.clock()
        )
        enrolled = self._enroll(
            user,
            new_key_id,
            record,
            method=ROTATION,
            by=user.login,
            rotated_by=rotation.seq,
            sealed=sealed,
        )
        if new_signer is not None:
            self.confirm(user, enrolled.key, server_signer=new_signer)
        return enrolled

    # --- signing with a key -------------------------------------------------------------------

    def key_decision(
        self, user: User, key: SigningKey, action: str, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A decision about keys (`key.confirm`, `key.rotate`) for ``key`` to sign."""
        return make_decision(
            origin=self.origin,
            request=None,
            request_prev=None,
            action=action,
            from_state=None,
            to_state=None,
            actor=user.login,
            role="owner",
            key=key.key_id,
            definition=None,
            budget=None,
            data=dict(data),
            comment=None,
            issued=format_ts(self.clock()),
        )

    def confirm(
        self,
        user: User,
        key: SigningKey,
        *,
        signature: Mapping[str, Any] | None = None,
        decision: Mapping[str, Any] | None = None,
        server_signer: UnlockedKey | None = None,
    ) -> int:
        """Record the new key's first signature, a `key.confirm` decision; returns its seq.

        In a read_first() session the signature is checked before the write lock; under it
        the key is read and checked again (still the person's, not revoked, not confirmed
        meanwhile) and the passkey's counter must rise.
        """
        _check_own(user, key)
        if key.confirmed_seq is not None:
            return key.confirmed_seq
        expected = self.key_decision(user, key, "key.confirm", {"key_id": key.key_id})
        if decision is not None:
            same_except_issued(decision, expected)
            expected = dict(decision)
        if server_signer is not None:
            signature = server_signature(expected, server_signer.private)
        if signature is None:
            raise DataInvalid("Thiếu chữ ký.", en="The signature is missing.", field="signature")
        verified = verify_signature(key, expected, signature)
        if _write_now(self.session):
            _check_own(user, key)
            if key.confirmed_seq is not None:
                return key.confirmed_seq
        keep_counter(key, verified, signature)
        event = append_decision(
            self.session, decision=expected, signature=signature, ts=self.clock()
        )
        key.confirmed_seq = event.seq
        self.session.flush()
        return event.seq

    def unlock(
        self,
        user: User,
        secret: str,
        *,
        reset_failures: bool = True,
        key: SigningKey | None = None,
    ) -> tuple[SigningKey, UnlockedKey]:
        """Unlock the person's server-held key for one signature (nothing is locked meanwhile).

        Five wrong secrets in a row lock the key until an admin issues a recovery code; each
        wrong secret is recorded where the owner and the admin see it. ``reset_failures``
        False: the caller writes nothing yet (a read-first transaction) and starts the count
        again itself once the step is appended. ``key``: the person's signing key, if the
        caller has just read it.
        """
        key = key or self.signing_key(user)
        if key.kind != SERVER_HELD or key.encrypted_private is None or key.kdf is None:
            raise NoSigningKey(
                "Khóa ký của bạn là passkey: hãy ký bằng vân tay hoặc khuôn mặt trên điện thoại.",
                en="Your signing key is a passkey: sign with your fingerprint or face.",
                login=user.login,
                kind=key.kind,
            )
        if key.failed_attempts >= MAX_FAILED_SIGNATURES:
            raise KeyLocked(
                f"Khóa ký đã bị khóa sau {MAX_FAILED_SIGNATURES} lần nhập sai mã. "
                "Hãy nhờ quản trị cấp mã khôi phục.",
                en=f"Your signing key is locked after {MAX_FAILED_SIGNATURES} wrong secrets. "
                "Ask the admin for a recovery code.",
                login=user.login,
            )
        try:
            signer = unlock(key.key_id, key.encrypted_private, key.kdf, secret, pepper=self.pepper)
        except WrongSecret as refusal:
            refusal.details.update(login=user.login, key_id=key.key_id)
            raise
        if reset_failures and key.failed_attempts:
            key.failed_attempts = 0
        return key, signer

    def record_failure(self, login: str, key_id: str, reason: str) -> None:
        """Count a failed signature (the caller commits it on its own, apart from the step)."""
        self.session.add(SigningFailure(at=self.clock(), login=login, key_id=key_id, reason=reason))
        key = self.session.get(SigningKey, key_id)
        if key is not None and reason == "wrong-secret":
            key.failed_attempts += 1
        self.session.flush()

    # --- revoking -----------------------------------------------------------------------------

    def revoke(self, key: SigningKey, *, reason: str, by: str) -> None:
        """Revoke a key from now on; events it signed before stay valid."""
        event = append_institution_event(
            self.session,
            signer=require_loaded(self.institution),
            ts=self.clock(),
            action="key.revoke",
            data={"key_id": key.key_id, "owner": key.login, "reason": reason, "by": by},
        )
        key.revoked_seq = event.seq
        self.session.flush()

    def revoke_by_admin(self, user: User, *, by: User) -> None:
        """An admin revokes a person's key (lost phone): they need a recovery code next."""
        _require_admin(by, user)
        key = self.active_key(user.login)
        if key is not None:
            self.revoke(key, reason="revoked by admin", by=by.login)


def _write_now(session: Session) -> bool:
    """End a read_first() transaction, its slow checks done, and take the write lock (the log
    head) at once; objects read so far are read again under it. Whether it did."""
    if not begin_write(session):
        return False
    lock_head(session)
    return True


def _check_own(user: User, key: SigningKey) -> None:
    if key.login != user.login or key.revoked_seq is not None:
        raise NotPermitted("Khóa này không phải của bạn.", en="This key is not yours.", field="key")


def _require_admin(by: User, user: User) -> None:
    if not by.has_role("admin"):
        raise NotPermitted(
            "Chỉ quản trị được làm việc này.", en="Only an admin may do this.", field="by"
        )
    if by.login == user.login:
        raise NotPermitted(
            "Không ai tự cấp khóa ký hay vai trò cho chính mình.",
            en="Nobody issues keys or roles to themselves.",
            field="by",
        )
    if set(user.role_list) & set(CHAIN_ROLES) and user.has_role("admin"):
        raise NotPermitted(
            "Tài khoản quản trị không được giữ vai trò trong chuỗi duyệt.",
            en="An admin account cannot hold a role in the approval chain.",
            field="roles",
        )


def same_except_issued(signed: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """The signed decision is the one the server would prepare now (``issued`` aside)."""
    differing = sorted(
        k for k in set(signed) | set(expected) if k != "issued" and signed.get(k) != expected.get(k)
    )
    if differing:
        raise DataInvalid(
            "Nội dung được ký khác với bước này. Không có gì được ghi.",
            en="What was signed differs from this step. Nothing was recorded.",
            field="decision",
            differing=differing,
        )


def _passkey_record(passkey: RegisteredPasskey) -> dict[str, Any]:
    return {
        "kind": PASSKEY,
        "public_key": b64url(passkey.public_key),
        "alg": passkey.alg,
        "credential_id": b64url(passkey.credential_id),
        "rp_id": passkey.rp_id,
        "origins": list(passkey.origins),
    }


def _server_record(public_raw: bytes) -> dict[str, Any]:
    return {
        "kind": SERVER_HELD,
        "public_key": public_raw.hex(),
        "alg": "ed25519",
        "credential_id": None,
        "rp_id": None,
        "origins": [],
    }
