"""Sign-in: throttled per account and per address with state in the database, so the limits
hold across gunicorn workers and app nodes; every try is kept for the admin to see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from werkzeug.security import check_password_hash, generate_password_hash

from expense_audit.errors import Refusal

from .clock import Clock, utcnow
from .db import begin_write
from .models import LoginAttempt, User

KEEP_ATTEMPTS = timedelta(days=30)
# NOTE: checked against for unknown and disabled logins, so that a wrong login costs the same
# password hash as a wrong password and the response time does not say which accounts exist.
_DUMMY_HASH = generate_password_hash("not-a-password-of-anyone")


class LoginThrottled(Refusal):
    """Too many failed sign-ins for this account or from this address; try again later."""

    code = "login_throttled"


@dataclass(frozen=True)
class Limits:
    """Failed sign-ins allowed inside the window, per account and per client address; and
    tries of any outcome per address and minute (a brake on floods, kept in the database so it
    holds across workers and app nodes like the rest)."""

    per_account: int = 10
    per_address: int = 50
    window: timedelta = timedelta(minutes=15)
    tries_per_minute: int = 60


class SignIn:
    """Checks a login and password, refusing early when the limits are reached."""

    def __init__(self, session: Session, *, limits: Limits = Limits(), clock: Clock = utcnow):
        self.session = session
        self.limits = limits
        self.clock = clock

    def authenticate(self, login: str, password: str, *, address: str) -> User | None:
        """The active user with this login and password, else None; every try is recorded.

        1. Refuse (LoginThrottled) when the account or the address has used up its failures.
        2. Hash the password against the user's hash, or a dummy one when there is no such
           active user, so both cost the same time.
        3. Record the try (in a read_first() session: under the write lock, after the limits
           are checked again); the caller commits, whether or not it succeeded.
        """
        login = login.strip().lower()[:64]
        now = self.clock()
        self._check_limits(login, address, now)
        user = self.session.scalars(select(User).where(User.login == login)).first()
        stored = user.password_hash if user is not None and user.active else ""
        valid = check_password_hash(stored or _DUMMY_HASH, password) and bool(stored)
        # The hash above ran without the write lock; tries recorded meanwhile count as well.
        if begin_write(self.session):
            self._check_limits(login, address, now)
        self.session.add(LoginAttempt(at=now, login=login, address=address[:45], succeeded=valid))
        if not valid:
            self.session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - KEEP_ATTEMPTS))
        self.session.flush()
        return user if valid else None

    def _failures(self, condition: ColumnElement[bool], *, since: datetime) -> int:
        query = (
            select(func.count())
            .select_from(LoginAttempt)
            .where(LoginAttempt.succeeded.is_(False), LoginAttempt.at > since, condition)
        )
        return int(self.session.scalar(query) or 0)

    def _check_limits(self, login: str, address: str, now: datetime) -> None:
        since = now - self.limits.window
        # A success on the account starts its count again (the owner got in); the address
        # count does not reset, or one known account would let an address try others forever.
        last_success = self.session.scalar(
            select(func.max(LoginAttempt.at)).where(
                LoginAttempt.login == login, LoginAttempt.succeeded.is_(True)
            )
        )
        account_since = max(since, last_success) if last_success else since
        account = self._failures(LoginAttempt.login == login, since=account_since)
        by_address = self._failures(LoginAttempt.address == address, since=since)
        tries = self.session.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(LoginAttempt.address == address, LoginAttempt.at > now - timedelta(minutes=1))
        )
        if int(tries or 0) >= self.limits.tries_per_minute:
            raise LoginThrottled(
                "Quá nhiều lần đăng nhập. Hãy thử lại sau 1 phút.",
                en="Too many sign-ins. Try again in 1 minute.",
                minutes=1,
            )
        if account >= self.limits.per_account or by_address >= self.limits.per_address:
            minutes = int(self.limits.window.total_seconds() // 60)
            raise LoginThrottled(
                f"Quá nhiều lần đăng nhập sai. Hãy thử lại sau {minutes} phút.",
                en=f"Too many failed sign-ins. Try again in {minutes} minutes.",
                minutes=minutes,
            )

    def recent_failures(self, *, limit: int = 50) -> list[LoginAttempt]:
        """The latest failed sign-ins, newest first (for the admin)."""
        return list(
            self.session.scalars(
                select(LoginAttempt)
                .where(LoginAttempt.succeeded.is_(False))
                .order_by(LoginAttempt.at.desc(), LoginAttempt.id.desc())
                .limit(limit)
            )
        )
