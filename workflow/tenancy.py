"""Many schools in one PostgreSQL database: a schema per school, a registry in schema ``district``.

Each school's tables live in its own schema (``school_<code>``): its log, head, numbering,
catalogue, users, sessions and outbox are the single-school ones, so its bundle, checkpoints and
verifier run are exactly what one school on its own instance has. One engine (one pool) serves
every school; a school's sessions set their search path to its schema at each transaction, and
the public schema holds no table, so a session that somehow had no path finds nothing rather
than another school's rows.

District accounts (an inspector, a finance officer) are granted schools and see them read-only:
their sessions run in read-only transactions, refused any write by PostgreSQL itself.
"""

from __future__ import annotations

import re
import secrets
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import check_password_hash, generate_password_hash

from expense_audit.checkpoint import check_key_name
from expense_audit.errors import DataInvalid, WorkflowError
from expense_audit.vocabulary import ROLES

from .clock import Clock, utcnow
from .cosigning import LocalWitness
from .db import is_postgres, make_engine, schema_session_factory, transaction_of
from .district_models import (
    DISTRICT_ROLES,
    DISTRICT_SCHEMA,
    DistrictLoginAttempt,
    DistrictUser,
    Grant,
    SchoolRecord,
)
from .enrollment import SETUP
from .keys import InstitutionKey
from .migrate import upgrade
from .models import User
from .passwords import check_password_policy
from .runtime import Runtime, Settings
from .signin import Limits, LoginThrottled
from .witness import Witness, WitnessKey, WitnessKeyMissing

DISTRICT_MIGRATIONS = Path(__file__).resolve().parent / "district_migrations"
# The district's witness key lives beside the schools' keys: <EXPENSES_KEYS>/district-witness/.
WITNESS_FOLDER = "district-witness"
SCHOOL_CODE = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
# Timing parity for unknown district logins (same cost as checking a real hash).
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))
_LIMITS = Limits()


class TenancyError(WorkflowError):
    """A multi-school set-up step refused: the message says what to fix."""

    code = "tenancy_error"


def school_schema(code: str) -> str:
    """The PostgreSQL schema of the school ``code`` (checked: lower-case letters, digits, _)."""
    if not SCHOOL_CODE.match(code):
        raise TenancyError(
            f"school code {code!r} must be 2-31 lower-case letters, digits or '_', "
            "beginning with a letter"
        )
    return f"school_{code}"


@dataclass(frozen=True)
class AddedSchool:
    """What `school add` prints: the key's fingerprint and the admin's one-time password."""

    code: str
    fingerprint: str
    admin_login: str
    admin_password: str


@dataclass(frozen=True)
class GrantedSchool:
    """A school a district account may see: read-only sessions in its schema, and its runtime."""

    code: str
    name: str
    origin: str
    read_sessions: sessionmaker[Session]
    runtime: Runtime


class District:
    """The deployment's schools and district accounts over one shared PostgreSQL engine."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        engine: Engine | None = None,
        read_engine: Engine | None = None,
        pool_size: int = 10,
        witness_passphrase: str | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.witness_passphrase = witness_passphrase
        self._witness: LocalWitness | None = None
        self._owns_engine = engine is None
        self.engine = engine or make_engine(
            settings.database_url, pool_size=pool_size, max_overflow=pool_size
        )
        if not is_postgres(self.engine):
            if self._owns_engine:
                self.engine.dispose()
            raise TenancyError("a multi-school deployment needs PostgreSQL (DATABASE_URL)")
        self.sessions = schema_session_factory(self.engine, DISTRICT_SCHEMA)
        # The district's read-only views may read from a streaming replica (EXPENSES_READ_DATABASE_URL).
        self.read_engine = read_engine or self.engine
        self._runtimes: dict[str, Runtime] = {}
        self._readers: dict[str, sessionmaker[Session]] = {}
        self._lock = threading.Lock()

    @property
    def keys_root(self) -> Path:
        """Schools' keys are kept under <EXPENSES_KEYS>/<code>/."""
        return self.settings.keys_dir

    def init(self) -> None:
        """Create (or bring up to date) the district schema; idempotent."""
        upgrade(self.engine, schema=DISTRICT_SCHEMA, location=DISTRICT_MIGRATIONS)

    # --- the district as the witness of every school's log ------------------------------------

    @property
    def witness_dir(self) -> Path:
        return self.keys_root / WITNESS_FOLDER

    def init_witness(self, name: str) -> WitnessKey:
        """Create the district's witness key and register every school's log with it."""
        key = WitnessKey.create(self.witness_dir, name=name, passphrase=self.witness_passphrase)
        self._witness = None
        witness = self.witness
        for record in self.schools():
            self._register_with_witness(record)
        with self._lock:  # the schools already running submit from now on
            for runtime in self._runtimes.values():
                runtime.witness, runtime.witness_key = witness, key.public
        return key

    @property
    def witness(self) -> LocalWitness | None:
        """The district's witness in this process, or None before `district witness-init`."""
        if self._witness is None:
            try:
                key = WitnessKey.from_directory(
                    self.witness_dir, passphrase=self.witness_passphrase
                )
            except WitnessKeyMissing:
                return None
            self._witness = LocalWitness(self.sessions, key=key, clock=self.clock)
        return self._witness

    def _register_with_witness(self, record: SchoolRecord) -> None:
        """Tell the witness the school's log and institution key (trusted on first use)."""
        witness = self.witness
        if witness is None:
            return
        key = InstitutionKey.from_directory(
            Path(record.keys_dir), passphrase=self.settings.institution_passphrase
        )
        with self.transaction() as session:
            Witness(session, key=witness.key, clock=self.clock).register_log(
                record.origin, key.public_raw
            )

    def dispose(self) -> None:
        """Close the shared pools (when this district opened them)."""
        if self._owns_engine:
            self.engine.dispose()
            if self.read_engine is not self.engine:
                self.read_engine.dispose()

    def transaction(self) -> AbstractContextManager[Session]:
        """A session of the district schema, committed at the end or rolled back."""
        return transaction_of(self.sessions)

    # --- schools ------------------------------------------------------------------------------

    def schools(self) -> list[SchoolRecord]:
        """Every school of the deployment, by code."""
        with self.transaction() as session:
            rows = list(session.scalars(select(SchoolRecord).order_by(SchoolRecord.code)))
            session.expunge_all()
            return rows

    def get_school(self, code: str) -> SchoolRecord | None:
        """The school ``code``, or None."""
        if not SCHOOL_CODE.match(code):
            return None
        with self.transaction() as session:
            row = session.get(SchoolRecord, code)
            if row is not None:
                session.expunge(row)
            return row

    def runtime(self, code: str) -> Runtime:
        """The school's runtime (created on first use, sharing the engine)."""
        with self._lock:
            found = self._runtimes.get(code)
        if found is not None:
            return found
        record = self.get_school(code)
        if record is None:
            raise TenancyError(f"no school {code!r} in this deployment")
        runtime = self._school_runtime(record)
        with self._lock:
            return self._runtimes.setdefault(code, runtime)

    def _school_runtime(self, record: SchoolRecord) -> Runtime:
        witness = self.witness
        settings = self.school_settings(record)
        if witness is not None:  # its answers are checked with its verifier key
            settings = replace(settings, witness_key=witness.key.vkey)
        return Runtime(
            settings,
            clock=self.clock,
            witness=witness,
            engine=self.engine,
            schema=record.schema_name,
        )

    def school_settings(self, record: SchoolRecord) -> Settings:
        """The deployment's settings, with the school's origin, key, definitions and address."""
        return replace(
            self.settings,
            origin=record.origin,
            keys_dir=Path(record.keys_dir),
            definitions_dir=Path(record.definitions_dir),
            base_url=f"{self.settings.base_url.rstrip('/')}/s/{record.code}",
        )

    def new_record(
        self, code: str, *, name: str, origin: str, definitions_dir: Path | None = None
    ) -> SchoolRecord:
        """Check a new school's code, name and origin; return its registry row (not yet saved)."""
        schema = school_schema(code)
        check_key_name(origin)
        if not name.strip():
            raise TenancyError("a school needs a name (--name)")
        with self.transaction() as session:
            if session.get(SchoolRecord, code) is not None:
                raise TenancyError(f"the school {code!r} exists already")
            if session.scalars(select(SchoolRecord).where(SchoolRecord.origin == origin)).first():
                raise TenancyError(f"another school has the origin {origin!r}")
            taken = session.execute(
                text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": schema}
            ).first()
            if taken:
                raise TenancyError(f"the schema {schema} exists already: pick another code")
        return SchoolRecord(
            code=code,
            name=name.strip(),
            origin=origin,
            schema_name=schema,
            keys_dir=str((self.keys_root / code).resolve()),
            definitions_dir=str((definitions_dir or self.settings.definitions_dir).resolve()),
            created_at=self.clock(),
        )

    def add_school(
        self,
        code: str,
        *,
        name: str,
        origin: str,
        admin_login: str,
        admin_email: str,
        definitions_dir: Path | None = None,
    ) -> AddedSchool:
        """Create a school: its schema (migrated), institution key, genesis event and admin.

        The admin gets a random one-time password, to be changed at first sign-in.
        """
        record = self.new_record(code, name=name, origin=origin, definitions_dir=definitions_dir)
        key = InstitutionKey.create(
            Path(record.keys_dir), passphrase=self.settings.institution_passphrase
        )
        runtime = self._school_runtime(record)
        runtime.init_db()
        password = secrets.token_urlsafe(12)
        with runtime.transaction() as session:
            admin = runtime.directory(session).create_user(
                login=admin_login,
                name=admin_login,
                email=admin_email,
                roles=["admin"],
                password=password,
                signing_secret=None,
                by=SETUP,
            )
            # NOTE: the printed password passes through a terminal: it works once.
            admin.must_change_password = True
        self.save_record(record)
        with self._lock:
            self._runtimes[code] = runtime
        return AddedSchool(code, key.fingerprint, admin.login, password)

    def save_record(self, record: SchoolRecord) -> None:
        """Enter a school whose schema and key are ready into the registry (and the witness's)."""
        with self.transaction() as session:
            session.add(record)
            session.flush()
            session.expunge(record)
        self._register_with_witness(record)

    def school_users(self, code: str) -> list[User]:
        """The accounts of one school (for `school list`)."""
        with self.runtime(code).transaction() as session:
            users = list(session.scalars(select(User).order_by(User.login)))
            session.expunge_all()
            return users

    # --- district accounts --------------------------------------------------------------------

    def create_user(self, *, login: str, name: str, role: str, password: str) -> DistrictUser:
        """Create a district account (inspector or finance officer)."""
        if role not in DISTRICT_ROLES:
            raise DataInvalid(
                f"Vai trò «{role}» không phải vai trò của phòng.",
                en=f"{role!r} is not a district role ({', '.join(DISTRICT_ROLES)}).",
                field="role",
            )
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,63}", login) or login in ROLES:
            raise DataInvalid(
                "Tên đăng nhập chỉ gồm chữ thường, số, dấu chấm, gạch.",
                en="A login has only lower-case letters, digits, dots and dashes.",
                field="login",
            )
        check_password_policy(password, user_inputs=(login, name))
        with self.transaction() as session:
            if session.scalars(select(DistrictUser).where(DistrictUser.login == login)).first():
                raise DataInvalid(
                    f"Tên đăng nhập «{login}» đã có.",
                    en=f"The login “{login}” is taken.",
                    field="login",
                )
            user = DistrictUser(
                login=login,
                name=name.strip() or login,
                role=role,
                password_hash=generate_password_hash(password),
                active=True,
                created_at=self.clock(),
            )
            session.add(user)
            session.flush()
            session.expunge(user)
            return user

    def grant(self, login: str, code: str) -> None:
        """Let the district account ``login`` see the school ``code`` (read-only)."""
        with self.transaction() as session:
            if (
                session.scalars(select(DistrictUser).where(DistrictUser.login == login)).first()
                is None
            ):
                raise TenancyError(f"no district account {login!r}")
            if session.get(SchoolRecord, code) is None:
                raise TenancyError(f"no school {code!r} in this deployment")
            if session.get(Grant, (login, code)) is None:
                session.add(Grant(login=login, school_code=code, granted_at=self.clock()))

    def get_user(self, login: str) -> DistrictUser | None:
        """The active district account ``login``, or None."""
        with self.transaction() as session:
            user = session.scalars(
                select(DistrictUser).where(
                    DistrictUser.login == login, DistrictUser.active.is_(True)
                )
            ).first()
            if user is not None:
                session.expunge(user)
            return user

    def end_sessions(self, login: str) -> None:
        """Sign the account out everywhere: its open sessions' epoch is no longer its own."""
        with self.transaction() as session:
            session.execute(
                update(DistrictUser)
                .where(DistrictUser.login == login)
                .values(session_epoch=DistrictUser.session_epoch + 1)
            )

    def authenticate(
        self, login: str, password: str, *, address: str, limits: Limits = _LIMITS
    ) -> DistrictUser | None:
        """The district account when the password is right, else None; every try is kept.

        1. Refuse (LoginThrottled) when the account or the address used up its failures, or
           the address its tries this minute (the schools' limits, workflow.signin).
        2. Check the password, or a dummy hash for an unknown login (the same cost).
        3. Record the try, whatever its outcome.
        """
        login = login.strip().lower()[:64]
        now = self.clock()
        with self.transaction() as session:
            attempts = select(func.count()).select_from(DistrictLoginAttempt)
            failed = attempts.where(
                DistrictLoginAttempt.succeeded.is_(False),
                DistrictLoginAttempt.at > now - limits.window,
            )
            account = session.scalar(failed.where(DistrictLoginAttempt.login == login)) or 0
            by_address = session.scalar(failed.where(DistrictLoginAttempt.address == address))
            tries = session.scalar(
                attempts.where(
                    DistrictLoginAttempt.address == address,
                    DistrictLoginAttempt.at > now - timedelta(minutes=1),
                )
            )
            if (
                account >= limits.per_account
                or (by_address or 0) >= limits.per_address
                or (tries or 0) >= limits.tries_per_minute
            ):
                minutes = int(limits.window.total_seconds() // 60)
                raise LoginThrottled(
                    f"Quá nhiều lần đăng nhập sai. Hãy thử lại sau {minutes} phút.",
                    en=f"Too many failed sign-ins. Try again in {minutes} minutes.",
                    minutes=minutes,
                )
            user = session.scalars(
                select(DistrictUser).where(
                    DistrictUser.login == login, DistrictUser.active.is_(True)
                )
            ).first()
            valid = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
            valid = valid and user is not None
            session.add(
                DistrictLoginAttempt(at=now, login=login, address=address[:45], succeeded=valid)
            )
            if user is not None:
                session.expunge(user)
        return user if valid else None

    def granted_schools(self, login: str) -> list[GrantedSchool]:
        """The schools the district account ``login`` may see, by code, with read-only sessions.

        The stable entry point of the district pages: an unknown or inactive account gets none.
        """
        with self.transaction() as session:
            rows = session.execute(
                select(SchoolRecord.code, SchoolRecord.name, SchoolRecord.origin)
                .join(Grant, Grant.school_code == SchoolRecord.code)
                .join(DistrictUser, DistrictUser.login == Grant.login)
                .where(Grant.login == login, DistrictUser.active.is_(True))
                .order_by(SchoolRecord.code)
            ).all()
        return [
            GrantedSchool(code, name, origin, self.read_sessions(code), self.runtime(code))
            for code, name, origin in rows
        ]

    def read_sessions(self, code: str) -> sessionmaker[Session]:
        """Read-only sessions in the school's schema (PostgreSQL refuses any write in them)."""
        with self._lock:
            found = self._readers.get(code)
        if found is not None:
            return found
        factory = schema_session_factory(self.read_engine, school_schema(code), read_only=True)
        with self._lock:
            return self._readers.setdefault(code, factory)
