"""A person's CA certificate registered like a key, and forms signed with it.

1. An admin starts the registration for a person with the person's certificate (from their
   token: the CA's file or the token's export); the server keeps a one-time nonce for 72 hours.
2. The person signs the possession message (expense_audit.certificates.possession_message) with
   the certificate's private key, on their token (`expense-sign register`).
3. The server checks that signature and appends an institution-signed `cert.register` event that
   names the admin, carries the certificate (DER, base64), its facts and the proof, so the offline
   verifier checks all of it again.

A form signed in PAdES with a registered certificate enters the log as `form.sign` (institution
event: the PDF's sha256, the form's sha256, the certificate's sha256, the signing time).

An admin revokes a registered certificate with `cert.revoke` (institution event naming the admin,
effective at its time): a form signed at or after that time is refused, one signed before stays
valid and its page says the certificate was revoked afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from expense_audit.certificates import (
    b64,
    check_possession,
    facts_of,
    possession_message,
)
from expense_audit.errors import DataInvalid, NotPermitted

from . import queries
from .audit import append_institution_event, format_ts, lock_head
from .clock import Clock, utcnow
from .db import begin_write
from .enrollment import _require_admin
from .keys import InstitutionKey, require_loaded
from .models import CaCertificate, CertificateChallenge, Request, SignedForm, User
from .pades import CheckedForm, SignedFormRefused, check_signed_form

CHALLENGE_LIFETIME = timedelta(hours=72)
# Whose form is signed with a CA certificate: the principal's approval, the accountant's payment.
SIGNED_FORM_STEPS = ("approve", "pay")
SIGNED_FORM_STATES = ("approved", "paid")


@dataclass(frozen=True)
class Challenge:
    """What the person's token must sign to finish a registration."""

    nonce: str
    message: bytes


class CertificateRegistry:
    """Certificates bound to people in the log; the institution key signs the bindings."""

    def __init__(
        self,
        session: Session,
        *,
        institution: InstitutionKey | None,
        origin: str,
        clock: Clock = utcnow,
    ) -> None:
        self.session = session
        self.institution = institution
        self.origin = origin
        self.clock = clock

    # --- reading ------------------------------------------------------------------------------

    def of(self, login: str) -> list[CaCertificate]:
        """The person's registered certificates, oldest first."""
        return list(
            self.session.scalars(
                select(CaCertificate)
                .where(CaCertificate.login == login)
                .order_by(CaCertificate.registered_seq)
            )
        )

    def get(self, sha256: str) -> CaCertificate | None:
        """The registered certificate with this DER hash, or None."""
        return self.session.get(CaCertificate, sha256)

    def pending(self, login: str) -> list[CertificateChallenge]:
        """Registrations an admin started for the person that are not finished nor expired."""
        return list(
            self.session.scalars(
                select(CertificateChallenge).where(
                    CertificateChallenge.login == login,
                    CertificateChallenge.used_at.is_(None),
                    CertificateChallenge.expires_at > self.clock(),
                )
            )
        )

    def signed_forms(self, number: str) -> list[SignedForm]:
        """The PAdES-signed forms of a request, in log order."""
        return list(
            self.session.scalars(
                select(SignedForm).where(SignedForm.number == number).order_by(SignedForm.seq)
            )
        )

    def waiting_forms(self, login: str) -> list[str]:
        """Numbers of requests whose form waits for the person's CA signature.

        The principal signs the form of a request they approved and the accountant that of a
        request they paid, each time after the request's latest step (a new step changes the form).
        """
        waiting = []
        for number in self.session.scalars(
            select(Request.number)
            .where(Request.state.in_(SIGNED_FORM_STATES))
            .order_by(Request.number)
        ):
            steps = queries.timeline(self.session, number)
            if not any(s.actor == login and s.action in SIGNED_FORM_STEPS for s in steps):
                continue
            latest = steps[-1].seq
            if not any(f.login == login and f.seq > latest for f in self.signed_forms(number)):
                waiting.append(number)
        return waiting

    # --- registering --------------------------------------------------------------------------

    def start(self, user: User, der: bytes, *, by: User) -> Challenge:
        """An admin starts registering ``der`` for ``user`` (never for themselves)."""
        _require_admin(by, user)
        facts = facts_of(der)
        if self.get(facts.sha256) is not None:
            raise DataInvalid(
                "Chứng thư số này đã được đăng ký.",
                en="This certificate is already registered.",
                field="certificate",
            )
        now = self.clock()
        if facts.not_after <= now.strftime("%Y-%m-%dT%H:%M:%SZ"):
            raise DataInvalid(
                "Chứng thư số đã hết hạn.", en="The certificate has expired.", field="certificate"
            )
        nonce = secrets.token_hex(16)
        self.session.add(
            CertificateChallenge(
                login=user.login,
                sha256=facts.sha256,
                der=der,
                nonce=nonce,
                issued_by=by.login,
                created_at=now,
                expires_at=now + CHALLENGE_LIFETIME,
                used_at=None,
            )
        )
        self.session.flush()
        return Challenge(nonce, self._message(user.login, facts.sha256, nonce, by.login))

    def _message(self, owner: str, sha256: str, nonce: str, by: str) -> bytes:
        return possession_message(
            origin=self.origin, owner=owner, sha256=sha256, nonce=nonce, by=by
        )

    def challenge(self, user: User, nonce: str) -> Challenge:
        """The message of a pending registration of the person (to sign on their token)."""
        pending = self._pending(user, nonce)
        return Challenge(nonce, self._message(user.login, pending.sha256, nonce, pending.issued_by))

    def _pending(self, user: User, nonce: str) -> CertificateChallenge:
        row = self.session.scalars(
            select(CertificateChallenge).where(CertificateChallenge.nonce == nonce)
        ).one_or_none()
        if (
            row is None
            or row.login != user.login
            or row.used_at is not None
            or row.expires_at <= self.clock()
        ):
            raise NotPermitted(
                "Không có đăng ký chứng thư số nào đang chờ bạn với mã này.",
                en="No certificate registration with this code waits for you.",
                field="nonce",
            )
        return row

    def complete(self, user: User, nonce: str, signature: bytes) -> CaCertificate:
        """The person proves possession: check the signature and enter `cert.register`.

        In a read_first() session the signature is checked before the write lock; under it the
        registration is read again (not used, expired or replaced meanwhile).
        """
        pending = self._pending(user, nonce)
        message = self._message(user.login, pending.sha256, nonce, pending.issued_by)
        if not check_possession(pending.der, message, signature):
            raise DataInvalid(
                "Chữ ký bằng chứng thư số không đúng: hãy ký bằng token của chính chứng thư này.",
                en="The signature does not verify with this certificate: sign with its own token.",
                field="signature",
            )
        if begin_write(self.session):
            lock_head(self.session)
            pending = self._pending(user, nonce)  # not used or expired meanwhile
        if self.get(pending.sha256) is not None:
            raise DataInvalid(
                "Chứng thư số này đã được đăng ký.",
                en="This certificate is already registered.",
                field="certificate",
            )
        facts = facts_of(pending.der)
        event = append_institution_event(
            self.session,
            signer=require_loaded(self.institution),
            ts=self.clock(),
            action="cert.register",
            data={
                "owner": user.login,
                "by": pending.issued_by,
                **facts.as_data(),
                "der": b64(pending.der),
                "nonce": nonce,
                "proof": b64(signature),
            },
        )
        pending.used_at = self.clock()
        cert = CaCertificate(
            sha256=facts.sha256,
            login=user.login,
            der=pending.der,
            subject=facts.subject,
            serial=facts.serial,
            issuer=facts.issuer,
            not_before=facts.not_before,
            not_after=facts.not_after,
            registered_by=pending.issued_by,
            registered_seq=event.seq,
        )
        self.session.add(cert)
        self.session.flush()
        return cert

    def revoke(self, sha256: str, *, by: User, reason: str) -> CaCertificate:
        """An admin revokes a registered certificate from now on (`cert.revoke`)."""
        cert = self.get(sha256)
        if cert is None or cert.revoked_seq is not None:
            raise DataInvalid(
                "Không có chứng thư số đang hiệu lực nào với mã này.",
                en="No registered, unrevoked certificate has this fingerprint.",
                field="certificate",
            )
        owner = self.session.scalars(select(User).where(User.login == cert.login)).one_or_none()
        if owner is None:
            raise DataInvalid("Không tìm thấy người dùng.", en="No such user.", field="login")
        _require_admin(by, owner)
        reason = reason.strip()
        if not reason:
            raise DataInvalid(
                "Hãy ghi lý do thu hồi.", en="Give the reason for the revocation.", field="reason"
            )
        now = self.clock()
        event = append_institution_event(
            self.session,
            signer=require_loaded(self.institution),
            ts=now,
            action="cert.revoke",
            data={
                "owner": cert.login,
                "certificate": cert.sha256,
                "by": by.login,
                "reason": reason,
            },
        )
        cert.revoked_seq = event.seq
        cert.revoked_at = format_ts(now)
        cert.revoked_by = by.login
        cert.revoke_reason = reason
        self.session.flush()
        return cert

    # --- signed forms -------------------------------------------------------------------------

    def record_signed_form(
        self,
        *,
        number: str,
        login: str,
        cert: CaCertificate,
        form_sha256: str,
        pdf_sha256: str,
        signing_time: str,
        ca_revoked_at: str | None = None,
    ) -> SignedForm:
        """Enter a verified PAdES-signed form in the log (`form.sign`) and index it.

        ``ca_revoked_at``: the CA revoked the certificate after the signing time (a CRL in the
        file says so); the form stays valid and the log and the page say it.
        """
        if self.session.get(SignedForm, pdf_sha256) is not None:
            raise DataInvalid(
                "Tệp đã ký này đã được tải lên.",
                en="This signed file was already uploaded.",
                field="pdf",
            )
        event = append_institution_event(
            self.session,
            signer=require_loaded(self.institution),
            ts=self.clock(),
            action="form.sign",
            data={
                "request": number,
                "signer": login,
                "certificate": cert.sha256,
                "form_sha256": form_sha256,
                "pdf_sha256": pdf_sha256,
                "signing_time": signing_time,
                **({"ca_revoked_at": ca_revoked_at} if ca_revoked_at else {}),
            },
        )
        row = SignedForm(
            pdf_sha256=pdf_sha256,
            number=number,
            login=login,
            cert_sha256=cert.sha256,
            form_sha256=form_sha256,
            signing_time=signing_time,
            ca_revoked_at=ca_revoked_at,
            seq=event.seq,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def accept_signed_form(
        self,
        user: User,
        number: str,
        pdf: bytes,
        *,
        form: bytes,
        trust_roots: Sequence[bytes],
    ) -> SignedForm:
        """Check an uploaded PAdES-signed form of ``number`` by ``user`` and enter it in the log.

        In a read_first() session the PDF is validated before the write lock; under it the
        request (its last step: the form signed is the form of now) and the certificate (still
        the person's, not revoked meanwhile) are read and checked again.
        """
        now = self.clock()
        steps = queries.timeline(self.session, number)
        last = _last_step(steps)
        form_time = _parse_ts(steps[-1].ts) if steps else None
        checked = check_signed_form(
            pdf, form=form, trust_roots=trust_roots, now=now, form_time=form_time
        )
        cert = self._signer(user, checked)
        if begin_write(self.session):
            lock_head(self.session)
            if _last_step(queries.timeline(self.session, number)) != last:
                raise SignedFormRefused(
                    "Đề xuất vừa có bước mới trong lúc kiểm tra tệp: hãy tải và ký lại biểu mẫu.",
                    en="The request took a new step while the file was checked: download the "
                    "form and sign it again.",
                    field="pdf",
                )
            cert = self._signer(user, checked)
        return self.record_signed_form(
            number=number,
            login=user.login,
            cert=cert,
            form_sha256=checked.form_sha256,
            pdf_sha256=checked.pdf_sha256,
            signing_time=checked.signing_time,
            ca_revoked_at=checked.ca_revoked_at,
        )

    def _signer(self, user: User, checked: CheckedForm) -> CaCertificate:
        """The registered certificate that signed: the person's own, not revoked (here or by
        its CA)."""
        cert = self.get(checked.cert_sha256)
        if cert is None:
            raise SignedFormRefused(
                "Chứng thư số đã ký chưa được đăng ký trong hệ thống: nhờ quản trị đăng ký.",
                en="The certificate that signed is not registered here: ask the admin to register it.",
                field="pdf",
            )
        if cert.login != user.login:
            raise SignedFormRefused(
                "Tệp được ký bằng chứng thư số của người khác.",
                en="The file is signed with someone else's certificate.",
                field="pdf",
            )
        # NOTE: the signing time is the signer's own claim (no timestamp authority): whoever
        # holds a lost token can state any time before its revocation. So once a certificate is
        # revoked, here or by its CA, no form it signed is accepted any more, whatever time it
        # states; the person signs again with their new certificate.
        if cert.revoked_at is not None:
            raise SignedFormRefused(
                f"Chứng thư số đã bị thu hồi trong hệ thống lúc {cert.revoked_at} (thời điểm ký "
                f"ghi trong tệp: {checked.signing_time}). Thời điểm ký do người ký tự ghi nên "
                "không chứng minh được chữ ký có trước khi thu hồi: hãy ký lại bằng chứng thư "
                "số mới.",
                en=f"The certificate was revoked here at {cert.revoked_at} (signing time stated "
                f"in the file: {checked.signing_time}). The signer states the signing time "
                "themselves, so it cannot prove the signature came before the revocation: sign "
                "again with the new certificate.",
                field="pdf",
            )
        if checked.ca_revoked_at is not None:
            raise SignedFormRefused(
                f"Tổ chức chứng thực đã thu hồi chứng thư số lúc {checked.ca_revoked_at} (thời "
                f"điểm ký ghi trong tệp: {checked.signing_time}). Thời điểm ký do người ký tự "
                "ghi nên không chứng minh được chữ ký có trước khi thu hồi: hãy ký lại bằng "
                "chứng thư số mới.",
                en=f"The CA revoked the certificate at {checked.ca_revoked_at} (signing time "
                f"stated in the file: {checked.signing_time}). The signer states the signing "
                "time themselves, so it cannot prove the signature came before the revocation: "
                "sign again with the new certificate.",
                field="pdf",
            )
        return cert


def _last_step(steps: Sequence[Any]) -> tuple[int, str] | None:
    """How far the request's timeline went: the form it renders changes with each step."""
    return (len(steps), str(steps[-1].ts)) if steps else None


def _parse_ts(text: str) -> datetime:
    """A log time ("2025-01-13T00:41:00Z") as an aware datetime."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
