"""Wiring: settings from the environment, the engine, definitions and keys, services per session."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from expense_audit.certificates import der_from_upload
from expense_audit.checkpoint import Checkpoint, check_key_name
from expense_audit.cosignature import CosignerKey, with_cosignatures
from expense_audit.definitions import DefinitionSet
from expense_audit.errors import WorkflowError

from .audit import checkpoint_if_due, init_log, make_checkpoint
from .bookkeeping import BookkeepingMap, load_map_file
from .certificates import CertificateRegistry
from .clock import Clock, utcnow
from .cosigning import HttpWitness, WitnessClient, submit_checkpoint
from .db import (
    DEFAULT_WRITE_TIMEOUT,
    create_schema,
    make_engine,
    schema_session_factory,
    session_factory,
    transaction_of,
)
from .directory import Directory
from .enrollment import Keyring
from .errors import InstitutionKeyMissing
from .keys import DEFAULT_SCRYPT_N, InstitutionKey, load_pepper
from .mailer import DeliveryReport, SmtpSettings, deliver_due
from .models import LogHead
from .notify import queue_checkpoint_mails, queue_digests, queue_key_mail, queue_reminders
from .service import ApprovalService

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite:///{PROJECT_ROOT / 'instance' / 'expenses.sqlite'}"
    definitions_dir: Path = PROJECT_ROOT / "definitions"
    # the accountant's mapping to accounts for the bookkeeping export (read at each export)
    bookkeeping_path: Path = PROJECT_ROOT / "accounting" / "bookkeeping.toml"
    keys_dir: Path = PROJECT_ROOT / "keys"
    origin: str = "th-demo.edu.vn/expenses"
    base_url: str = "http://127.0.0.1:5000"
    scrypt_n: int = DEFAULT_SCRYPT_N
    institution_passphrase: str | None = field(default=None, repr=False)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    witnesses: tuple[str, ...] = ()
    # The district's witness (tlog-witness): its URL prefix, and its verifier key to check answers.
    witness_url: str | None = None
    witness_key: str | None = None
    # A folder of the CA certificates (PEM or DER) that signed forms must chain to (issue 14):
    # the national root and the licensed CAs' certificates; unset, no signed form is accepted.
    ca_roots: Path | None = None
    # Seconds a SQLite writer waits for its turn before it is told the system is busy.
    write_timeout: float = DEFAULT_WRITE_TIMEOUT

    def __post_init__(self) -> None:
        # NOTE: the origin is the checkpoints' key name: refuse at start-up what the signed-note
        # spec forbids (empty, spaces, '+'), rather than sign notes no witness can read.
        check_key_name(self.origin)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read EXPENSES_* / DATABASE_URL variables; anything unset keeps its default."""
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            database_url=env.get("DATABASE_URL", defaults.database_url),
            definitions_dir=Path(env.get("EXPENSES_DEFINITIONS", defaults.definitions_dir)),
            bookkeeping_path=Path(env.get("EXPENSES_BOOKKEEPING", defaults.bookkeeping_path)),
            keys_dir=Path(env.get("EXPENSES_KEYS", defaults.keys_dir)),
            origin=env.get("EXPENSES_ORIGIN", defaults.origin),
            base_url=env.get("EXPENSES_BASE_URL", defaults.base_url),
            scrypt_n=int(env.get("EXPENSES_SCRYPT_N", defaults.scrypt_n)),
            institution_passphrase=env.get("INSTITUTION_KEY_PASSPHRASE") or None,
            smtp=SmtpSettings.from_env(env),
            witnesses=tuple(
                a.strip() for a in env.get("EXPENSES_WITNESSES", "").split(",") if a.strip()
            ),
            ca_roots=Path(env["EXPENSES_CA_ROOTS"]) if env.get("EXPENSES_CA_ROOTS") else None,
            witness_url=env.get("EXPENSES_WITNESS_URL") or None,
            witness_key=env.get("EXPENSES_WITNESS_KEY") or None,
            write_timeout=float(env.get("EXPENSES_WRITE_TIMEOUT", defaults.write_timeout)),
        )


class Runtime:
    """One school: its database (or its schema of a shared one), definitions, institution key.

    ``engine`` and ``schema``: a multi-school deployment (workflow.tenancy) passes its shared
    engine and the school's PostgreSQL schema; every session of this runtime then works in that
    schema alone, and dispose() leaves the shared engine to its owner.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        witness: WitnessClient | None = None,
        engine: Engine | None = None,
        schema: str | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.schema = schema
        # NOTE: an object given here (the district's witness in this process) wins over the URL.
        self.witness: WitnessClient | None = witness or (
            HttpWitness(settings.witness_url) if settings.witness_url else None
        )
        self.witness_key = CosignerKey.parse(settings.witness_key) if settings.witness_key else None
        if engine is None and settings.database_url.startswith("sqlite:///"):
            Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        self._owns_engine = engine is None
        self.engine: Engine = (
            engine
            if engine is not None
            else make_engine(settings.database_url, write_timeout=settings.write_timeout)
        )
        self.sessions: sessionmaker[Session] = (
            session_factory(self.engine)
            if schema is None
            else schema_session_factory(self.engine, schema)
        )
        self._read_sessions: sessionmaker[Session] | None = None
        self.definitions = DefinitionSet.from_directory(settings.definitions_dir)
        self._institution: InstitutionKey | None = None
        self._pepper: bytes | None = None

    def dispose(self) -> None:
        """Close every pooled connection (both engines), unless the engine is shared."""
        if not self._owns_engine:
            return
        self.engine.dispose()
        if self._read_sessions is not None and self._read_sessions is not self.sessions:
            bind = self._read_sessions.kw.get("bind")
            if bind is not None:
                bind.dispose()

    @property
    def read_sessions(self) -> sessionmaker[Session]:
        """Sessions for reading only (on SQLite they do not take the write lock)."""
        if self._read_sessions is None:
            if self.engine.dialect.name == "sqlite":
                self._read_sessions = session_factory(
                    make_engine(
                        self.settings.database_url,
                        read_only=True,
                        write_timeout=self.settings.write_timeout,
                    )
                )
            else:
                self._read_sessions = self.sessions
        return self._read_sessions

    @property
    def institution(self) -> InstitutionKey:
        """The institution key, loaded on first use."""
        if self._institution is None:
            self._institution = InstitutionKey.from_directory(
                self.settings.keys_dir, passphrase=self.settings.institution_passphrase
            )
        return self._institution

    def init_db(self, *, at: datetime | None = None) -> bool:
        """Create the schema and the log's genesis event (dated ``at``, by default now);
        returns False if the log was already initialised."""
        create_schema(self.engine, schema=self.schema)
        with self.transaction() as session:
            if session.get(LogHead, 1) is not None:
                return False
            init_log(
                session,
                origin=self.settings.origin,
                institution=self.institution,
                ts=at or self.clock(),
            )
        return True

    def transaction(self) -> AbstractContextManager[Session]:
        """A session whose work commits at the end, or rolls back on any exception."""
        return transaction_of(self.sessions)

    def _institution_or_none(self) -> InstitutionKey | None:
        if self._institution is not None:
            return self._institution
        try:
            return self.institution
        except InstitutionKeyMissing:  # reading works without it; signing fails closed
            return None

    @property
    def pepper(self) -> bytes | None:
        """The signing pepper beside the institution key (created with it on first use)."""
        if self._pepper is None and (self.settings.keys_dir / "institution.key").exists():
            self._pepper = load_pepper(self.settings.keys_dir, create=True)
        return self._pepper

    def keyring(
        self, session: Session, *, clock: Clock | None = None, scrypt_n: int | None = None
    ) -> Keyring:
        """Everyone's keys, in this session (``scrypt_n``: the cost of new server-held keys)."""
        return Keyring(
            session,
            institution=self._institution_or_none(),
            origin=self.settings.origin,
            clock=clock or self.clock,
            scrypt_n=scrypt_n or self.settings.scrypt_n,
            pepper=self.pepper,
            mailer=partial(queue_key_mail, base_url=self.settings.base_url, now=self.clock),
        )

    def trust_roots(self) -> list[bytes]:
        """The configured CA certificates (DER), read from ``settings.ca_roots`` each time."""
        folder = self.settings.ca_roots
        if folder is None or not folder.is_dir():
            return []
        return [
            der_from_upload(path.read_bytes())
            for path in sorted(folder.iterdir())
            if path.suffix.lower() in (".pem", ".crt", ".cer", ".der")
        ]

    def certificates(self, session: Session) -> CertificateRegistry:
        """People's CA certificates and the forms signed with them, in this session."""
        return CertificateRegistry(
            session,
            institution=self._institution_or_none(),
            origin=self.settings.origin,
            clock=self.clock,
        )

    def directory(
        self, session: Session, *, clock: Clock | None = None, scrypt_n: int | None = None
    ) -> Directory:
        """Accounts and roles (and their keyring), in this session."""
        return Directory(
            session,
            institution=self._institution_or_none(),
            keyring=self.keyring(session, clock=clock, scrypt_n=scrypt_n),
            clock=clock or self.clock,
        )

    def service(self, session: Session, *, clock: Clock | None = None) -> ApprovalService:
        return ApprovalService(
            session,
            definitions=self.definitions,
            directory=self.directory(session, clock=clock),
            clock=clock or self.clock,
            base_url=self.settings.base_url,
        )

    def now(self) -> datetime:
        return self.clock()

    def bookkeeping(self) -> BookkeepingMap:
        """The accountant's bookkeeping mapping, read and checked against the plans now."""
        return load_map_file(self.settings.bookkeeping_path, self.definitions)

    def cosign(self, session: Session, checkpoint: Checkpoint) -> Checkpoint:
        """Have the configured witness cosign ``checkpoint``; returns it with the cosignatures.

        NOTE: a witness that is down or refuses does not stop the school's work: the checkpoint
        stays signed, the refusal is logged, and the next checkpoint is submitted again.
        """
        if self.witness is None:
            return checkpoint
        try:
            lines = submit_checkpoint(
                session,
                checkpoint,
                witness=self.witness,
                now=self.now(),
                witness_key=self.witness_key,
            )
        except WorkflowError as exc:
            log.warning("witness: checkpoint %s not cosigned: %s", checkpoint.size, exc.message)
            return checkpoint
        return replace(checkpoint, note=with_cosignatures(checkpoint.note, lines))

    def checkpoint(self, session: Session) -> Checkpoint:
        """Sign a checkpoint now, have it cosigned, and queue it for the configured witnesses."""
        checkpoint = make_checkpoint(session, institution=self.institution, now=self.now())
        checkpoint = self.cosign(session, checkpoint)
        queue_checkpoint_mails(
            session,
            checkpoint=checkpoint,
            fingerprint=self.institution.fingerprint,
            witnesses=self.settings.witnesses,
            now=self.now(),
        )
        return checkpoint

    def scheduled_checkpoint(self, every: timedelta) -> Checkpoint | None:
        """Sign, cosign and queue a checkpoint if one is due (audit.checkpoint_if_due), else None."""
        with self.transaction() as session:
            checkpoint = checkpoint_if_due(
                session, institution=self.institution, now=self.now(), every=every
            )
            if checkpoint is not None:
                checkpoint = self.cosign(session, checkpoint)
                queue_checkpoint_mails(
                    session,
                    checkpoint=checkpoint,
                    fingerprint=self.institution.fingerprint,
                    witnesses=self.settings.witnesses,
                    now=self.now(),
                )
            return checkpoint

    def deliver_mail(self, **kwargs: Any) -> DeliveryReport:
        """Send the outbox mails that are due (see workflow.mailer)."""
        return deliver_due(self.transaction, settings=self.settings.smtp, now=self.now(), **kwargs)

    def remind(self) -> int:
        """Queue reminders for requests that wait too long; returns how many mails."""
        with self.transaction() as session:
            mails = queue_reminders(
                session,
                workflow=self.definitions.workflow(),
                others=self.definitions.workflows.values(),
                origin=self.settings.origin,
                base_url=self.settings.base_url,
                now=self.now(),
            )
            return len(mails)

    def digest(self) -> int:
        """Fold held mails into one daily digest per user; returns how many digests."""
        with self.transaction() as session:
            return len(
                queue_digests(
                    session,
                    origin=self.settings.origin,
                    base_url=self.settings.base_url,
                    now=self.now(),
                )
            )
