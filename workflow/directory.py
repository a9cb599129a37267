"""Accounts, roles and passwords; every role grant and account lock is an institution-signed event.

Keys are in workflow/enrollment.py (the Keyring); a directory carries the keyring it uses."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from expense_audit.errors import DataInvalid, NotPermitted
from expense_audit.limits import MAX_LOGIN
from expense_audit.vocabulary import CHAIN_ROLES, LANGUAGES, ROLES

from .audit import append_institution_event
from .clock import Clock, utcnow
from .db import begin_write
from .enrollment import SETUP, Keyring
from .errors import ConcurrentChange
from .keys import INSTITUTION_ACTOR, InstitutionKey, require_loaded
from .models import SigningKey, User
from .passwords import check_password_policy

_LOGIN = re.compile(rf"^[a-z0-9][a-z0-9._-]{{1,{MAX_LOGIN - 1}}}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

_USER = select(User).where(User.login == bindparam("login"))  # built once: read at every request


class Directory:
    """Manages accounts; the institution key signs role grants and key registrations."""

    def __init__(
        self,
        session: Session,
        *,
        institution: InstitutionKey | None,
        keyring: Keyring,
        clock: Clock = utcnow,
    ) -> None:
        self.session = session
        self.institution = institution
        self.keyring = keyring
        self.clock = clock

    # --- queries ------------------------------------------------------------------------------

    def get_user(self, login: str) -> User | None:
        return self.session.scalars(_USER, {"login": login}).first()

    def users_with_role(self, role: str) -> list[User]:
        users = self.session.scalars(select(User).where(User.active.is_(True))).all()
        return [u for u in users if u.has_role(role)]

    def active_key(self, login: str) -> SigningKey | None:
        """The person's key that is not revoked (see Keyring)."""
        return self.keyring.active_key(login)

    def check_password(self, user: User, password: str) -> bool:
        return bool(user.password_hash) and check_password_hash(user.password_hash, password)

    # --- changes (institution-signed) --------------------------------------------------------

    def create_user(
        self,
        *,
        login: str,
        name: str,
        email: str,
        roles: Iterable[str],
        password: str,
        signing_secret: str | None,
        language: str = "vi",
        by: str = SETUP,
    ) -> User:
        """Create an account and grant its roles; ``by`` is the admin, or "setup" for the CLI.

        An admin-created account changes its admin-chosen password at first sign-in. Only the
        set-up (CLI, demo) issues a server-held key with ``signing_secret``; anyone else gets
        their key by enrollment. The password is hashed before the write lock (read_first()).
        """
        login = login.strip().lower()
        check_password_policy(password, user_inputs=(login, name, email))
        hashed = generate_password_hash(password)
        begin_write(self.session)
        if not _LOGIN.match(login) or login == INSTITUTION_ACTOR:
            raise DataInvalid(
                "Tên đăng nhập chỉ gồm chữ thường, số, dấu chấm, gạch.",
                en="A login has only lower-case letters, digits, dots and dashes.",
                field="login",
            )
        if self.get_user(login) is not None:
            raise DataInvalid(
                f"Tên đăng nhập «{login}» đã có.",
                en=f"The login “{login}” is taken.",
                field="login",
            )
        if not _EMAIL.match(email):
            raise DataInvalid(
                "Địa chỉ e-mail không hợp lệ.", en="The e-mail address is not valid.", field="email"
            )
        if language not in LANGUAGES:
            raise DataInvalid(
                "Ngôn ngữ không hỗ trợ.", en="This language is not supported.", field="language"
            )
        user = User(
            login=login,
            name=name.strip() or login,
            email=email.strip(),
            roles="",
            language=language,
            password_hash=hashed,
            active=True,
            created_at=self.clock(),
            must_change_password=by != SETUP,
        )
        self.session.add(user)
        self.session.flush()
        self.set_roles(user, roles, by=by)
        if signing_secret is not None:
            if by != SETUP:
                raise NotPermitted(
                    "Khóa ký chỉ được đăng ký bởi chính người dùng.",
                    en="Signing keys are registered by their owners only.",
                    field="signing_secret",
                )
            self.keyring.enroll_server_key(user, signing_secret, code=None, setup=True)
        return user

    def set_roles(self, user: User, roles: Iterable[str], *, by: str) -> None:
        """Grant exactly these roles (an institution-signed `user.roles` event naming ``by``).

        Nobody grants roles to themselves, and an admin account holds no role in the chain.
        """
        wanted = sorted(set(roles))
        for role in wanted:
            if role not in ROLES:
                raise DataInvalid(
                    f"Vai trò không hợp lệ: {role}.", en=f"Unknown role: {role}.", field="roles"
                )
        if by == user.login:
            raise NotPermitted(
                "Không ai tự cấp vai trò cho chính mình.",
                en="Nobody grants roles to themselves.",
                field="roles",
            )
        if "admin" in wanted and set(wanted) & set(CHAIN_ROLES):
            raise NotPermitted(
                "Tài khoản quản trị không được giữ vai trò trong chuỗi duyệt.",
                en="An admin account cannot hold a role in the approval chain.",
                field="roles",
            )
        append_institution_event(
            self.session,
            signer=require_loaded(self.institution),
            ts=self.clock(),
            action="user.roles",
            data={"login": user.login, "roles": wanted, "by": by},
        )
        user.roles = ",".join(wanted)

    def set_password(self, user: User, password: str, *, checked_hash: str | None = None) -> None:
        """Replace the password (hashed); every session of the account ends (a new epoch).

        The hash runs before the write lock (read_first()); ``checked_hash``: the hash the
        person's current password was checked against, refused if it changed meanwhile.
        """
        check_password_policy(password, user_inputs=(user.login, user.name, user.email))
        hashed = generate_password_hash(password)
        begin_write(self.session)  # ``user`` is read again under the write lock
        if checked_hash is not None and user.password_hash != checked_hash:
            raise ConcurrentChange(
                "Mật khẩu vừa được đổi ở nơi khác. Không có gì được ghi.",
                en="The password was changed elsewhere meanwhile. Nothing was recorded.",
                login=user.login,
            )
        user.password_hash = hashed
        user.session_epoch += 1
        user.must_change_password = False

    def reset_password(self, user: User, password: str, *, by: User) -> None:
        """An admin sets a new password that the person must change at their next sign-in.

        NOTE: a password opens the account, never a key: signing still needs the person's own
        passkey (or their server-held secret), which a reset does not touch.
        """
        if not by.has_role("admin") or by.login == user.login:
            raise NotPermitted(
                "Chỉ quản trị được đặt lại mật khẩu của người khác.",
                en="Only an admin may reset someone else's password.",
                field="by",
            )
        self.set_password(user, password)
        user.must_change_password = True

    def set_active(self, user: User, active: bool, *, by: User) -> None:
        """Lock or unlock an account (an institution-signed `user.active` event naming the admin)."""
        if not by.has_role("admin"):
            raise NotPermitted(
                "Chỉ quản trị được khóa tài khoản.",
                en="Only an admin may lock accounts.",
                field="by",
            )
        if user.login == by.login:
            raise NotPermitted(
                "Không tự khóa tài khoản của mình.",
                en="Nobody locks or unlocks their own account.",
                field="by",
            )
        if user.active == active:
            return
        append_institution_event(
            self.session,
            signer=require_loaded(self.institution),
            ts=self.clock(),
            action="user.active",
            data={"login": user.login, "active": active, "by": by.login},
        )
        user.active = active
