"""Deliver due outbox mails over SMTP: claimed with a lease, retried with backoff, never lost."""

from __future__ import annotations

import logging
import smtplib
import ssl
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, parseaddr
from typing import IO

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .models import OutboxMail

LEASE = timedelta(minutes=10)  # a claimed mail not confirmed by then is retried (same Message-ID)
MAX_BACKOFF = timedelta(hours=6)

Transaction = Callable[[], AbstractContextManager[Session]]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmtpSettings:
    host: str | None = None  # None: print mails to the console (development)
    port: int = 25
    security: str = "none"  # none | starttls | ssl
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "Duyet chi CNTT <no-reply@localhost>"
    timeout: float = 20.0
    cafile: str | None = None  # trust this CA (a school's own mail server certificate)
    max_attempts: int = 8

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpSettings:
        """EXPENSES_SMTP_HOST, _PORT, _SECURITY, _USER, _PASSWORD, _FROM, _TIMEOUT, _CAFILE, _MAX_ATTEMPTS."""
        security = env.get("EXPENSES_SMTP_SECURITY", "none").lower()
        if security not in ("none", "starttls", "ssl"):
            raise ValueError("EXPENSES_SMTP_SECURITY must be none, starttls or ssl")
        default_port = {"none": 25, "starttls": 587, "ssl": 465}[security]
        return cls(
            host=env.get("EXPENSES_SMTP_HOST") or None,
            port=int(env.get("EXPENSES_SMTP_PORT", default_port)),
            security=security,
            user=env.get("EXPENSES_SMTP_USER") or None,
            password=env.get("EXPENSES_SMTP_PASSWORD") or None,
            sender=env.get("EXPENSES_SMTP_FROM", cls.sender),
            timeout=float(env.get("EXPENSES_SMTP_TIMEOUT", 20)),
            cafile=env.get("EXPENSES_SMTP_CAFILE") or None,
            max_attempts=int(env.get("EXPENSES_SMTP_MAX_ATTEMPTS", 8)),
        )


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def backoff(attempts: int) -> timedelta:
    """1, 2, 4, 8 ... minutes after each failure, at most six hours."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def build_message(mail: OutboxMail, *, sender: str) -> Message:
    """The MIME message of an outbox row: plain text and HTML, stable Message-ID."""
    # NOTE: built with the legacy (compat32) classes on purpose: Python 3.11's default policy
    # folds long Vietnamese subjects so that a space falls between encoded-words, where mail
    # readers drop it ("quản lýtài sản"). email.header.Header keeps spaces inside the words.
    message = MIMEMultipart("alternative")
    name, address = parseaddr(sender)
    message["From"] = formataddr((str(Header(name, "utf-8")), address)) if name else address
    message["To"] = mail.email
    message["Subject"] = Header(mail.subject, "utf-8")  # type: ignore[assignment]  # compat32 takes Header
    message["Message-ID"] = mail.message_id
    message["Date"] = format_datetime(mail.created_at.replace(tzinfo=UTC))
    message["Content-Language"] = mail.language
    message["Auto-Submitted"] = "auto-generated"
    if mail.request:
        message["X-Expense-Request"] = mail.request
    message.attach(MIMEText(mail.body_text, "plain", "utf-8"))
    message.attach(MIMEText(mail.body_html, "html", "utf-8"))
    return message


def _claim(transaction: Transaction, now: datetime, limit: int) -> list[int]:
    """Mark due mails as being sent (a lease), so two workers never send the same mail at once."""
    with transaction() as session:
        query = (
            select(OutboxMail)
            .where(
                or_(
                    (OutboxMail.status == "pending") & (OutboxMail.next_attempt_at <= now),
                    (OutboxMail.status == "sending") & (OutboxMail.claimed_until <= now),
                )
            )
            .order_by(OutboxMail.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        mails = session.scalars(query).all()
        for mail in mails:
            mail.status, mail.claimed_until = "sending", now + LEASE
        return [m.id for m in mails]


class _Connection:
    """One SMTP connection for a batch, opened lazily."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.smtp: smtplib.SMTP | None = None

    def send(self, message: Message) -> None:
        if self.smtp is None:
            self.smtp = self._open()
        self.smtp.send_message(message)

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        if s.host is None:
            raise ValueError("EXPENSES_SMTP_HOST is not set: mail is printed instead of sent")
        context = ssl.create_default_context(cafile=s.cafile)
        smtp: smtplib.SMTP
        if s.security == "ssl":
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            if s.security == "starttls":
                smtp.starttls(context=context)
            if s.user:
                smtp.login(s.user, s.password or "")
        except BaseException:
            smtp.close()  # do not leak the socket of a half-opened session
            raise
        return smtp

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except smtplib.SMTPException:
                pass
            except OSError:
                pass
            self.smtp = None


def deliver_due(
    transaction: Transaction,
    *,
    settings: SmtpSettings,
    now: datetime,
    limit: int = 200,
    console: IO[str] | None = None,
) -> DeliveryReport:
    """Send what is due. Each mail is confirmed in its own transaction right after it is sent."""
    report = DeliveryReport()
    ids = _claim(transaction, now, limit)
    connection = _Connection(settings)
    try:
        for mail_id in ids:
            with transaction() as session:
                mail = session.get(OutboxMail, mail_id)
                if mail is None or mail.status != "sending":
                    continue
                message = build_message(mail, sender=settings.sender)
                try:
                    if settings.host is None:
                        _print_mail(mail, console or sys.stdout)
                    else:
                        connection.send(message)
                except (smtplib.SMTPException, OSError) as exc:
                    connection.close()
                    mail.attempts += 1
                    mail.last_error = f"{type(exc).__name__}: {exc}"[:500]
                    mail.claimed_until = None
                    if mail.attempts >= settings.max_attempts:
                        mail.status = "failed"
                        report.failed += 1
                    else:
                        mail.status = "pending"
                        mail.next_attempt_at = now + backoff(mail.attempts)
                        report.retrying += 1
                    report.errors.append(f"{mail.message_id}: {mail.last_error}")
                    _log_delivery(mail, logging.WARNING)
                    continue
                mail.status, mail.sent_at, mail.claimed_until = "sent", now, None
                mail.attempts += 1
                report.sent += 1
                _log_delivery(mail, logging.INFO)
    finally:
        connection.close()
    return report


def _log_delivery(mail: OutboxMail, level: int) -> None:
    """One line per delivery attempt: which mail, to whom, the outcome and the error."""
    log.log(
        level,
        "mail %s %s after %d attempt(s)",
        mail.message_id,
        mail.status,
        mail.attempts,
        extra={
            "mail_id": mail.id,
            "message_id": mail.message_id,
            "kind": mail.kind,
            "recipient": mail.recipient,
            "mail_status": mail.status,
            "attempts": mail.attempts,
            "error": mail.last_error if mail.status != "sent" else None,
        },
    )


def _print_mail(mail: OutboxMail, out: IO[str]) -> None:
    """Development delivery: the mail, readable, on the console."""
    print(f"--- mail {mail.message_id}\nTo: {mail.email}\nSubject: {mail.subject}\n", file=out)
    print(mail.body_text, file=out, flush=True)


def failed_mails(session: Session) -> Iterator[OutboxMail]:
    """Mails given up on, for the admin to see."""
    yield from session.scalars(
        select(OutboxMail).where(OutboxMail.status == "failed").order_by(OutboxMail.id)
    )
