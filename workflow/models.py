"""SQLAlchemy 2.0 typed models. `requests` is a projection of `audit_events`, nothing more."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def role_list(roles: str) -> list[str]:
    """The roles of an account as its ``roles`` column keeps them (comma-separated)."""
    return [r for r in roles.split(",") if r]


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    roles: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(5), default="vi")
    digest: Mapped[bool] = mapped_column(Boolean, default=False)  # one daily mail instead of many
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # Sessions carry the epoch they were opened in; signing out or a new password moves it on,
    # which ends every session of the account on the server (cookies are only signed, not stored).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # An admin-chosen password (new account, reset) must be replaced at the next sign-in.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    @property
    def role_list(self) -> list[str]:
        return role_list(self.roles)

    def has_role(self, role: str) -> bool:
        return role in self.role_list


class SigningKey(Base):
    __tablename__ = "signing_keys"

    """A person's key: a passkey on their device (public key only) or a server-held fallback."""

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    login: Mapped[str] = mapped_column(String(64), ForeignKey("users.login"), index=True)
    # passkey: base64url SubjectPublicKeyInfo DER; server-held: hex of the raw Ed25519 key
    public_key: Mapped[str] = mapped_column(Text)
    encrypted_private: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    kdf: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    registered_seq: Mapped[int] = mapped_column(BigInteger)
    revoked_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(16), default="server-held")  # or "passkey"
    method: Mapped[str] = mapped_column(String(16), default="legacy")  # enrollment, rotation ...
    enrolled_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    alg: Mapped[int | None] = mapped_column(Integer, nullable=True)  # COSE: -7 ES256, -8 EdDSA
    credential_id: Mapped[str | None] = mapped_column(String(1400), nullable=True, index=True)
    rp_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    origins: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    confirmed_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    # sha256 of the bulk approval's challenge the last assertion signed (None: not a batch)
    last_batch: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)


class EnrollmentCode(Base):
    """A one-time code an admin issues so a person can register a key (shown once, hashed)."""

    __tablename__ = "enrollment_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(64), index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(16))  # enrollment or recovery
    issued_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class SigningFailure(Base):
    """A wrong signing secret or a refused passkey assertion, shown to the owner and the admin."""

    __tablename__ = "signing_failures"
    __table_args__ = (Index("ix_signing_failures_login_at", "login", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    login: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))


class AuditEvent(Base):
    """One signed event; rows are never updated or deleted (database triggers refuse it)."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    prev: Mapped[str] = mapped_column(String(64))
    request: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64), index=True)
    key_id: Mapped[str] = mapped_column(String(16))
    ts: Mapped[str] = mapped_column(String(20))
    body: Mapped[bytes] = mapped_column(LargeBinary)  # the exact canonical bytes that were signed
    sig: Mapped[bytes] = mapped_column(LargeBinary)


class LogHead(Base):
    """The single row appends lock on, so the chain can never fork."""

    __tablename__ = "log_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class CheckpointRow(Base):
    __tablename__ = "checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class CheckpointCosignature(Base):
    """A witness's cosignature on one of this log's checkpoints (a signature line of its note)."""

    __tablename__ = "checkpoint_cosignatures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, index=True)
    witness: Mapped[str] = mapped_column(String(255))
    key_id: Mapped[str] = mapped_column(String(8))
    timestamp: Mapped[int] = mapped_column(BigInteger)
    line: Mapped[str] = mapped_column(Text)
    # the exact note the witness cosigned: a row re-signed later (same size) needs a new one
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class WitnessLog(Base):
    """Witness side: per log origin, the school's key and the last checkpoint cosigned."""

    __tablename__ = "witness_logs"

    origin: Mapped[str] = mapped_column(String(255), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))  # the institution key, hex
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    root: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(DateTime)
    cosigned_at: Mapped[datetime | None] = mapped_column(DateTime)


class DefinitionFile(Base):
    """Every definition file an event ever named, kept so old events stay verifiable."""

    __tablename__ = "definition_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(String(200))
    content: Mapped[bytes] = mapped_column(LargeBinary)


class Counter(Base):
    __tablename__ = "counters"

    school_year: Mapped[str] = mapped_column(String(9), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class Draft(Base):
    """The proposer's editable working copy; its content is bound into the log at submit."""

    __tablename__ = "drafts"
    __table_args__ = (UniqueConstraint("owner", "client_id", name="uq_drafts_owner_client_id"),)

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    school_year: Mapped[str] = mapped_column(String(9), index=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    line: Mapped[str | None] = mapped_column(String(32), nullable=True)
    source: Mapped[str | None] = mapped_column(String(32), nullable=True)
    budget_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price_vnd: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    amount_vnd: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The accountant's paperwork (issue 13); tax codes and accounts of a person are personal data.
    payee: Mapped[str | None] = mapped_column(String(200), nullable=True)
    payee_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    tax_code: Mapped[str | None] = mapped_column(String(14), nullable=True)
    bank_account: Mapped[str | None] = mapped_column(String(30), nullable=True)
    bank: Mapped[str | None] = mapped_column(String(120), nullable=True)
    invoice_number: Mapped[str | None] = mapped_column(String(20), nullable=True)
    invoice_series: Mapped[str | None] = mapped_column(String(12), nullable=True)
    invoice_date: Mapped[str | None] = mapped_column(String(10), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    # The id a phone gave the draft while offline: a retried sync finds the draft it made.
    client_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class Request(Base):
    """Projection of a request's events (workflow.projection.PROJECTION_FIELDS)."""

    __tablename__ = "requests"
    __table_args__ = (
        Index("ix_requests_line_state", "line", "state"),
        Index("ix_requests_state_updated", "state", "updated_at", "number"),
    )

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    school_year: Mapped[str] = mapped_column(String(9), index=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    title: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    line: Mapped[str | None] = mapped_column(String(32), index=True)
    source: Mapped[str | None] = mapped_column(String(32))
    budget_year: Mapped[int | None] = mapped_column(Integer)
    quantity: Mapped[int | None] = mapped_column(Integer)
    unit_price_vnd: Mapped[int | None] = mapped_column(BigInteger)
    amount_vnd: Mapped[int | None] = mapped_column(BigInteger)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The accountant's paperwork (issue 13); tax codes and accounts of a person are personal data.
    payee: Mapped[str | None] = mapped_column(String(200), nullable=True)
    payee_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    tax_code: Mapped[str | None] = mapped_column(String(14), nullable=True)
    bank_account: Mapped[str | None] = mapped_column(String(30), nullable=True)
    bank: Mapped[str | None] = mapped_column(String(120), nullable=True)
    invoice_number: Mapped[str | None] = mapped_column(String(20), nullable=True)
    invoice_series: Mapped[str | None] = mapped_column(String(12), nullable=True)
    invoice_date: Mapped[str | None] = mapped_column(String(10), nullable=True)
    forwarded_by: Mapped[str | None] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_hash: Mapped[str | None] = mapped_column(String(64))
    paid_by: Mapped[str | None] = mapped_column(String(64))
    voucher: Mapped[str | None] = mapped_column(String(40))
    paid_on: Mapped[str | None] = mapped_column(String(10))
    amount_paid_vnd: Mapped[int | None] = mapped_column(BigInteger)
    last_comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[str | None] = mapped_column(String(20))
    updated_at: Mapped[str | None] = mapped_column(String(20))
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    definition: Mapped[str | None] = mapped_column(String(64))


class BudgetTotal(Base):
    """What a budget line holds per plan and budget year (approved: asked, paid: paid)."""

    __tablename__ = "budget_totals"

    school_year: Mapped[str] = mapped_column(String(9), primary_key=True)
    line: Mapped[str] = mapped_column(String(32), primary_key=True)
    budget_year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    amount_vnd: Mapped[int] = mapped_column(BigInteger, default=0)


class OutboxMail(Base):
    """A mail queued in the same transaction as the event that caused it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="event")
    event_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    request: Mapped[str | None] = mapped_column(String(32), nullable=True)
    recipient: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(5))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    # pending -> sending (claimed until claimed_until) -> sent | pending (retry) | failed;
    # held (waiting for the daily digest) -> digested.
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ReminderSent(Base):
    """When a reminder about a request waiting in a state was last sent."""

    __tablename__ = "reminders"

    request: Mapped[str] = mapped_column(String(32), primary_key=True)
    state_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(DateTime)
    # reminders sent while the request waits in this state; after the definition's `escalate_after`
    # the next role up is told, once (escalated_at)
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class MandateRow(Base):
    """A mandate granted in the log (expense_audit.mandates); the log's grant event is the truth."""

    __tablename__ = "mandates"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # grant
    hash: Mapped[str] = mapped_column(String(64))
    delegator: Mapped[str] = mapped_column(String(64), ForeignKey("users.login"))
    delegate: Mapped[str] = mapped_column(String(64), ForeignKey("users.login"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))
    valid_from: Mapped[str] = mapped_column(String(10))  # ISO dates, local (UTC+7) calendar
    valid_to: Mapped[str] = mapped_column(String(10))
    lines: Mapped[list[str]] = mapped_column(JSON)
    max_amount_vnd: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class LoginAttempt(Base):
    """One sign-in try, kept in the database so limits hold across workers and app nodes."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_login_at", "login", "at"),
        Index("ix_login_attempts_address_at", "address", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    login: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(45))
    succeeded: Mapped[bool] = mapped_column(Boolean)


class CaCertificate(Base):
    """A person's CA certificate (chữ ký số), bound to them by an institution `cert.register`."""

    __tablename__ = "ca_certificates"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    login: Mapped[str] = mapped_column(String(64), ForeignKey("users.login"), index=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    subject: Mapped[str] = mapped_column(Text)
    serial: Mapped[str] = mapped_column(String(80))
    issuer: Mapped[str] = mapped_column(Text)
    not_before: Mapped[str] = mapped_column(String(20))
    not_after: Mapped[str] = mapped_column(String(20))
    registered_by: Mapped[str] = mapped_column(String(64))
    registered_seq: Mapped[int] = mapped_column(BigInteger)
    # An institution `cert.revoke` (the token was lost, the person left, the CA revoked it).
    revoked_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True, default=None)
    revoked_at: Mapped[str | None] = mapped_column(String(20), nullable=True, default=None)
    revoked_by: Mapped[str | None] = mapped_column(String(64), nullable=True, default=None)
    revoke_reason: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)


class CertificateChallenge(Base):
    """An admin's start of a certificate registration: the nonce the person signs (used once)."""

    __tablename__ = "certificate_challenges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(64), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    der: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    issued_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class SignedForm(Base):
    """A payment request form signed in PAdES with a registered certificate (stored by sha256)."""

    __tablename__ = "signed_forms"

    pdf_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[str] = mapped_column(String(32), ForeignKey("requests.number"), index=True)
    login: Mapped[str] = mapped_column(String(64), ForeignKey("users.login"))
    cert_sha256: Mapped[str] = mapped_column(String(64), ForeignKey("ca_certificates.sha256"))
    form_sha256: Mapped[str] = mapped_column(String(64))
    signing_time: Mapped[str] = mapped_column(String(20))
    # The CA revoked the certificate after the signing time (a CRL embedded in the file says so).
    ca_revoked_at: Mapped[str | None] = mapped_column(String(20), nullable=True, default=None)
    seq: Mapped[int] = mapped_column(BigInteger)


class VerificationRow(Base):
    """One run of the live verification (`audit verify`, the audit page): when, how much, result.

    Kept so the audit page, the district dashboard and the metrics can say when each log was last
    verified and whether it passed; the verification itself is repeatable from the log.
    """

    __tablename__ = "verifications"
    __table_args__ = (Index("ix_verifications_origin_at", "origin", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime)
    size: Mapped[int] = mapped_column(BigInteger)  # events verified
    valid: Mapped[bool] = mapped_column(Boolean)
    problems: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(16))  # cli | web
