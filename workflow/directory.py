"""Users, roles and signing keys; every role grant and key change is an institution-signed event."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from expense_audit.errors import DataInvalid, NotPermitted
from expense_audit.limits import MAX_LOGIN
from expense_audit.vocabulary import LANGUAGES, ROLES

from .audit import append_event
from .clock import Clock, utcnow
from .errors import InstitutionKeyMissing, NoSigningKey
from .keys import (
    DEFAULT_SCRYPT_N,
    INSTITUTION_ACTOR,
    InstitutionKey,
    UnlockedKey,
    seal_new_key,
    unlock,
)
from .models import SigningKey, User
from .passwords import check_password_policy

_LOGIN = re.compile(rf"^[a-z0-9][a-z0-9._-]{{1,{MAX_LOGIN - 1}}}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Directory:
    """Manages accounts; the institution key signs role grants and key registrations."""

    def __init__(
        self,
        session: Session,
        *,
        institution: InstitutionKey | None,
        clock: Clock = utcnow,
        scrypt_n: int = DEFAULT_SCRYPT_N,
    ) -> None:
        self.session = session
        self.institution = institution
        self.clock = clock
        self.scrypt_n = scrypt_n

    # --- queries ------------------------------------------------------------------------------

    def get_user(self, login: str) -> User | None:
        return self.session.scalars(select(User).where(User.login == login)).first()

    def users_with_role(self, role: str) -> list[User]:
        users = self.session.scalars(select(User).where(User.active.is_(True))).all()
        return [u for u in users if u.has_role(role)]

    def active_key(self, login: str) -> SigningKey | None:
        return self.session.scalars(
            select(SigningKey)
            .where(SigningKey.login == login, SigningKey.revoked_seq.is_(None))
            .order_by(SigningKey.registered_seq.desc())
        ).first()

    def check_password(self, user: User, password: str) -> bool:
        return bool(user.password_hash) and check_password_hash(user.password_hash, password)

    def unlock_key(self, user: User, secret: str) -> UnlockedKey:
        """Unlock the user's active key for one signing step."""
        key = self.active_key(user.login)
        if key is None:
            raise NoSigningKey(
                "Bạn chưa có khóa ký. Hãy chọn mã ký trước.",
                en="You have no signing key yet: choose your signing secret first.",
                login=user.login,
            )
        return unlock(key.key_id, key.encrypted_private, key.kdf, secret)

    # --- changes (institution-signed) --------------------------------------------------------

    def _institution(self) -> InstitutionKey:
        if self.institution is None:
            raise InstitutionKeyMissing("The institution key is not loaded.")
        return self.institution

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
    ) -> User:
        """Create an account, grant its roles and (with a secret) issue its signing key."""
        login = login.strip().lower()
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
        check_password_policy(password, user_inputs=(login, name, email))
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
            password_hash=generate_password_hash(password),
            active=True,
            created_at=self.clock(),
        )
        self.session.add(user)
        self.session.flush()
        self.set_roles(user, roles)
        if signing_secret is not None:
            self.issue_key(user, signing_secret)
        return user

    def set_roles(self, user: User, roles: Iterable[str]) -> None:
        """Grant exactly these roles (an institution-signed `user.roles` event)."""
        wanted = sorted(set(roles))
        for role in wanted:
            if role not in ROLES:
                raise DataInvalid(
                    f"Vai trò không hợp lệ: {role}.", en=f"Unknown role: {role}.", field="roles"
                )
        append_event(
            self.session,
            signer=self._institution(),
            ts=self.clock(),
            action="user.roles",
            actor=INSTITUTION_ACTOR,
            role=INSTITUTION_ACTOR,
            data={"login": user.login, "roles": wanted},
        )
        user.roles = ",".join(wanted)

    def issue_key(self, user: User, secret: str) -> SigningKey:
        """Issue a new signing key (revoking any active one): the rotation path too."""
        sealed = seal_new_key(secret, scrypt_n=self.scrypt_n)
        old = self.active_key(user.login)
        if old is not None:
            self.revoke_key(old, reason="rotated")
        event = append_event(
            self.session,
            signer=self._institution(),
            ts=self.clock(),
            action="key.register",
            actor=INSTITUTION_ACTOR,
            role=INSTITUTION_ACTOR,
            data={
                "key_id": sealed.key_id,
                "public_key": sealed.public_raw.hex(),
                "owner": user.login,
            },
        )
        key = SigningKey(
            key_id=sealed.key_id,
            login=user.login,
            public_key=sealed.public_raw.hex(),
            encrypted_private=sealed.encrypted_private,
            kdf=sealed.kdf,
            registered_seq=event.seq,
            revoked_seq=None,
            created_at=self.clock(),
        )
        self.session.add(key)
        self.session.flush()
        return key

    def revoke_key(self, key: SigningKey, *, reason: str) -> None:
        """Revoke a key from now on; events it signed before stay valid."""
        event = append_event(
            self.session,
            signer=self._institution(),
            ts=self.clock(),
            action="key.revoke",
            actor=INSTITUTION_ACTOR,
            role=INSTITUTION_ACTOR,
            data={"key_id": key.key_id, "owner": key.login, "reason": reason},
        )
        key.revoked_seq = event.seq
        self.session.flush()

    def set_password(self, user: User, password: str) -> None:
        """Replace the password (hashed); every session of the account ends (a new epoch)."""
        check_password_policy(password, user_inputs=(user.login, user.name, user.email))
        user.password_hash = generate_password_hash(password)
        user.session_epoch += 1

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
        append_event(
            self.session,
            signer=self._institution(),
            ts=self.clock(),
            action="user.active",
            actor=INSTITUTION_ACTOR,
            role=INSTITUTION_ACTOR,
            data={"login": user.login, "active": active, "by": by.login},
        )
        user.active = active
