"""Per-request access to the database session, the services and the signed-in account."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from flask import abort, current_app, g, request
from flask_login import current_user
from flask_login import login_required as _login_required
from sqlalchemy.orm import Session

from workflow import policy
from workflow.db import read_first
from workflow.directory import Directory
from workflow.errors import RequestNotFound
from workflow.models import User
from workflow.runtime import Runtime
from workflow.service import ApprovalService, Current

F = TypeVar("F", bound=Callable[..., Any])
_READS_FIRST = "expenses_reads_first"


@dataclass
class Account:
    """The signed-in user as flask-login sees it (a detached copy of the row)."""

    id: int
    login: str
    name: str
    email: str
    roles: tuple[str, ...]
    language: str
    active: bool
    must_change_password: bool = False

    @classmethod
    def of(cls, user: User) -> Account:
        return cls(
            user.id,
            user.login,
            user.name,
            user.email,
            tuple(user.role_list),
            user.language,
            user.active,
            bool(user.must_change_password),
        )

    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        return str(self.id)

    def has_role(self, role: str) -> bool:
        return role in self.roles


def runtime() -> Runtime:
    return cast(Runtime, current_app.extensions["runtime"])


def reads_first(view: F) -> F:
    """Mark a POST view whose slow checks (passkey assertion, key unlock, password hash) run
    before the write lock: its session begins as a read (workflow.db.read_first) and the
    service takes the lock only for the append (workflow.db.begin_write)."""
    setattr(view, _READS_FIRST, True)
    return view


def db() -> Session:
    """The request's database session (closed in teardown); page loads only read."""
    if "db" not in g:
        reading = request.method in ("GET", "HEAD")
        g.db = (runtime().read_sessions if reading else runtime().sessions)()
        view = current_app.view_functions.get(request.endpoint or "")
        if not reading and getattr(view, _READS_FIRST, False):
            read_first(g.db)
    return cast(Session, g.db)


def service() -> ApprovalService:
    return runtime().service(db())


def directory() -> Directory:
    return runtime().directory(db())


def me() -> User:
    """The signed-in user's row in this request's session."""
    user = directory().get_user(current_user.login)
    if user is None or not user.active:
        abort(403)
    return user


def login_required(view: F) -> F:
    """flask-login's login_required, typed (flask-login ships no type information)."""
    return cast(F, _login_required(view))


def acting_roles() -> frozenset[str]:
    """Roles the signed-in person acts in today under a mandate (KT./TUQ.), once per request."""
    if "acting_roles" not in g:
        login = current_user.login if current_user.is_authenticated else None
        g.acting_roles = frozenset(service().mandates.acting_roles(login) if login else ())
    return cast(frozenset[str], g.acting_roles)


def roles_now() -> frozenset[str]:
    """The signed-in person's own roles and the ones a live mandate gives them today."""
    own = current_user.roles if current_user.is_authenticated else ()
    return frozenset(own) | acting_roles()


def roles_required(*roles: str, acting: bool = False) -> Callable[[F], F]:
    """403 unless the signed-in user holds one of the roles (or, with ``acting``, acts in one
    under a live mandate: the deputy's approval queue while the principal is away)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            held = roles_now() if acting else frozenset(current_user.roles)
            if not held & set(roles):
                abort(403)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def visible_request(number: str) -> Current:
    """The request, or 404 when it does not exist or is not the user's to see."""
    try:
        current = service().current(number)
    except RequestNotFound:
        abort(404)
    if not policy.can_view(current_user.login, roles_now(), current):
        abort(404)
    return current
