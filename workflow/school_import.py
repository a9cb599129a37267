"""Move a school from its own (SQLite) instance into a multi-school deployment, log intact.

1. The source must be at the same migration as this code: the copy is table for table.
2. The school's origin is the one its log head carries (the checkpoints' key name): a moved
   school keeps signing checkpoints a witness or auditor already recognises.
3. The institution key folder is copied to keys/<code>/ and must load and match the public key
   the source's folder names; nothing is written if it does not.
4. The source's log verifies with that key and its rows equal their replay (`audit verify`),
   and extends the checkpoint given with --trust (the old witness's last cosigned one): the
   district's witness trusts the log it first sees, so it must be the school's true one.
5. Every table is copied in one transaction into the new schema, in foreign-key order and in
   primary-key order; audit_events rows (body and signature bytes, hashes, times) unchanged.
6. The identity sequences are moved past the copied ids, then the school enters the registry.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Table, func, select, text
from sqlalchemy.orm import Session

from expense_audit.errors import WorkflowError

from .db import create_schema, make_engine
from .keys import InstitutionKey
from .livecheck import verify_live
from .migrate import current_revision, head_revision
from .models import Base, LogHead
from .tenancy import District, TenancyError

_BATCH = 1000


@dataclass(frozen=True)
class ImportedSchool:
    """What `school import` reports."""

    code: str
    origin: str
    fingerprint: str
    events: int
    rows: dict[str, int]


def import_school(
    district: District,
    code: str,
    *,
    name: str,
    source_url: str,
    keys_from: Path,
    attachments_from: Path | None = None,
    attachments_to: Path | None = None,
    trusted_checkpoint: str | None = None,
) -> ImportedSchool:
    """Copy the single-school database at ``source_url`` into the new school ``code``.

    ``trusted_checkpoint``: the last checkpoint a witness cosigned before the move (or one an
    auditor kept); the source's log must extend it.
    """
    if attachments_from is not None:
        _refuse_links(attachments_from)
    _refuse_links(keys_from)
    source = make_engine(source_url, read_only=True)
    try:
        # 1. the same schema revision on both sides
        found, wanted = current_revision(source), head_revision()
        if found != wanted:
            raise TenancyError(
                f"the source database is at migration {found}, this code at {wanted}: "
                "upgrade it first (flask init-db with its DATABASE_URL)"
            )
        # NOTE: one read transaction of the source for the checks and the copy: what was
        # verified is what is copied, even if the file changes meanwhile.
        with source.connect() as reader, reader.begin():
            head = reader.execute(select(LogHead.origin, LogHead.seq)).first()
            if head is None:
                raise TenancyError("the source database has no log (no genesis event)")
            origin = str(head.origin)
            # 2. a registry row for the school, checked before anything is written
            record = district.new_record(code, name=name, origin=origin)
            # 3. the log verifies with the key handed over, and every row equals its replay
            verified = InstitutionKey.from_directory(
                keys_from, passphrase=district.settings.institution_passphrase
            )
            _verify_source(reader, verified, district, trusted_checkpoint)
            # 4. the institution key, loaded from its new place: the one the log verified with
            key = _copy_keys(
                keys_from, Path(record.keys_dir), district.settings.institution_passphrase
            )
            if key.fingerprint != verified.fingerprint:
                shutil.rmtree(record.keys_dir)
                raise TenancyError(
                    "the keys folder changed during the import: nothing was imported"
                )
            # 5. every table, in one transaction
            create_schema(district.engine, schema=record.schema_name)
            counts: dict[str, int] = {}
            with district.engine.begin() as writer:
                quoted = writer.dialect.identifier_preparer.quote_identifier(record.schema_name)
                writer.exec_driver_sql(f"SET LOCAL search_path TO {quoted}")
                for table in Base.metadata.sorted_tables:
                    counts[table.name] = _copy_table(table, reader, writer)
                    # 6. identities past the copied ids
                    _advance_identity(table, writer)
        district.save_record(record)
        if attachments_from is not None and attachments_to is not None:
            shutil.copytree(attachments_from, attachments_to, dirs_exist_ok=True)
        return ImportedSchool(code, origin, key.fingerprint, counts["audit_events"], counts)
    finally:
        source.dispose()


def _verify_source(
    reader: Connection, key: InstitutionKey, district: District, trusted: str | None
) -> None:
    """Refuse a source whose log does not verify with ``key`` or whose rows differ from it.

    NOTE: the witness trusts a school's log on first use: without this a hostile file (events
    rewritten, signed by another key, request rows changed) would be cosigned from then on. The
    check's own writes (a fresh head checkpoint) are in a savepoint rolled back at the end: the
    source is left as it was.
    """
    with Session(bind=reader, join_transaction_mode="create_savepoint") as session:
        try:
            report = verify_live(
                session, institution=key, now=district.clock(), trusted_checkpoint=trusted
            )
        except WorkflowError as exc:  # e.g. its checkpoints are signed by another key
            raise TenancyError(
                f"the source's log does not verify with the key handed over ({exc.message}): "
                "nothing was imported"
            ) from None
        finally:
            session.rollback()
    if not report.valid:
        first = report.problems[0]
        raise TenancyError(
            f"the source's log does not verify with the key handed over "
            f"({len(report.problems)} problem(s); seq {first.seq}: {first.kind} {first.detail:.200}): "
            "nothing was imported"
        )


def _refuse_links(folder: Path) -> None:
    """Refuse a handed-over folder holding a symbolic link: copied, it would bring in the bytes of
    whatever it points to (another school's key or attachments), served as this school's own."""
    for path in folder.rglob("*"):
        if path.is_symlink():
            raise TenancyError(f"{path} is a symbolic link: copy the real files, not links")


def _copy_keys(source: Path, target: Path, passphrase: str | None) -> InstitutionKey:
    """Copy the key folder's files (private key mode kept) and load the key from its new place."""
    original = InstitutionKey.from_directory(source, passphrase=passphrase)
    if target.exists() and any(target.iterdir()):
        raise TenancyError(f"{target} is not empty: refusing to mix two schools' keys")
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.is_file():
            shutil.copy2(path, target / path.name)
    moved = InstitutionKey.from_directory(target, passphrase=passphrase)
    if moved.fingerprint != original.fingerprint:  # pragma: no cover - a copy that changed bytes
        raise TenancyError("the institution key changed in the copy")
    return moved


def _copy_table(table: Table, reader: Connection, writer: Connection) -> int:
    """Insert every row of ``table`` from the source, in primary-key order; return how many."""
    order = list(table.primary_key.columns) or list(table.columns)
    result = reader.execute(select(table).order_by(*order))
    copied = 0
    while rows := result.mappings().fetchmany(_BATCH):
        writer.execute(table.insert(), [dict(row) for row in rows])
        copied += len(rows)
    return copied


def _advance_identity(table: Table, writer: Connection) -> None:
    column = table.autoincrement_column
    if column is None:
        return
    writer.execute(
        text("SELECT setval(pg_get_serial_sequence(:table, :column), :value, :called)"),
        {
            "table": table.name,
            "column": column.name,
            "value": writer.execute(select(func.coalesce(func.max(column), 1))).scalar_one(),
            "called": writer.execute(select(func.count()).select_from(table)).scalar_one() > 0,
        },
    )
