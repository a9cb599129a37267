"""CLI commands (`flask --app wsgi ...`): thin wrappers around workflow functions."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from expense_audit.checkpoint import verifier_key
from expense_audit.errors import WorkflowError
from expense_audit.verify import Report
from workflow import bookkeeping, disclosure, policy, queries
from workflow import demo as demo_data
from workflow.bundle import export_bundle, prove_consistency
from workflow.district_models import DISTRICT_ROLES
from workflow.keys import InstitutionKey
from workflow.ledger import LedgerFilter, rows_from_database, write_csv, write_xlsx
from workflow.livecheck import verify_live
from workflow.mailer import DeliveryReport, failed_mails
from workflow.runtime import Runtime, Settings
from workflow.tenancy import District

from .uploads import storage_dir
from .witness_service import witness_cli


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["runtime"]
    return runtime


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create the schema and the log's genesis event."""
    try:
        created = _runtime().init_db()
    except WorkflowError as exc:
        _fail(exc.message)
    click.echo("Database initialised." if created else "Database already initialised.")


@click.command("demo")
@with_appcontext
@click.option(
    "--requests", "count", default=0, show_default=True, help="Signed demo requests to create."
)
def demo(count: int) -> None:
    """Create the demo school's users (and optionally a history of requests); print the logins."""
    runtime = _runtime()
    try:
        if not (runtime.settings.keys_dir / "institution.key").exists():
            key = InstitutionKey.create(
                runtime.settings.keys_dir, passphrase=runtime.settings.institution_passphrase
            )
            click.echo(f"Institution key created, fingerprint {key.fingerprint}")
        # NOTE: a fresh demo log begins before the school year its history walks through.
        runtime.init_db(at=demo_data.DEMO_EPOCH)
        with runtime.transaction() as session:
            demo_data.create_people(runtime, session, clock=demo_data.enrolment_clock(runtime))
        with runtime.transaction() as session:
            found = queries.request_count(session)
        has_history = found > 0
        tally = demo_data.create_history(runtime, count) if count and not has_history else {}
    except WorkflowError as exc:
        _fail(exc.message)
    click.echo("Demo school: Trường Tiểu học Demo (2024-2025)")
    click.echo(
        f"Every demo account: password {demo_data.DEMO_PASSWORD!r}, signing secret {demo_data.DEMO_SECRET!r}"
    )
    for person in demo_data.PEOPLE:
        click.echo(
            f"  {person.login:<6} {person.name:<20} {', '.join(person.roles):<20} {person.title}"
        )
    if count and has_history:
        click.echo(f"The database already holds {found} requests: no demo requests were added.")
    if tally:
        click.echo("Requests by state: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))


@click.group("users", cls=AppGroup)
def users() -> None:
    """Manage user accounts."""


@users.command("create")
@click.option("--login", required=True)
@click.option("--name", required=True)
@click.option("--email", required=True)
@click.option(
    "--roles",
    required=True,
    help="Comma-separated: proposer,reviewer,approver,accountant,auditor,admin",
)
@click.option("--language", default="vi", type=click.Choice(["vi", "en"]))
@click.password_option("--password", help="Login password (asked if not given).")
@click.option(
    "--signing-secret", default=None, help="Signing secret; asked for when the roles sign."
)
def users_create(
    login: str,
    name: str,
    email: str,
    roles: str,
    language: str,
    password: str,
    signing_secret: str | None,
) -> None:
    """Create a user, grant roles and issue a signing key (institution-signed events)."""
    role_list = [r.strip() for r in roles.split(",") if r.strip()]
    signs = policy.needs_signing_key(_runtime().definitions.workflows.values(), role_list)
    if signs and signing_secret is None:
        signing_secret = click.prompt("Signing secret", hide_input=True, confirmation_prompt=True)
    runtime = _runtime()
    try:
        with runtime.transaction() as session:
            runtime.directory(session).create_user(
                login=login,
                name=name,
                email=email,
                roles=role_list,
                password=password,
                signing_secret=signing_secret if signs else None,
                language=language,
            )
    except WorkflowError as exc:
        _fail(exc.message)
    click.echo(f"User {login} created with roles {', '.join(role_list)}.")


@click.group("keys", cls=AppGroup)
def keys() -> None:
    """Institution key."""


@keys.command("init-institution")
def keys_init_institution() -> None:
    """Create the institution key under keys/ and print its fingerprint."""
    runtime = _runtime()
    try:
        key = InstitutionKey.create(
            runtime.settings.keys_dir, passphrase=runtime.settings.institution_passphrase
        )
    except WorkflowError as exc:
        _fail(exc.message)
    click.echo(f"Institution key written to {runtime.settings.keys_dir / 'institution.key'}")
    click.echo(f"Fingerprint: {key.fingerprint}")


@keys.command("fingerprint")
def keys_fingerprint() -> None:
    """Print the institution key fingerprint (the auditors' pin) and its signed-note verifier key."""
    try:
        runtime = _runtime()
        click.echo(runtime.institution.fingerprint)
        click.echo(
            "verifier key: " + verifier_key(runtime.settings.origin, runtime.institution.public_raw)
        )
    except WorkflowError as exc:
        _fail(exc.message)


@click.command("checkpoint")
@with_appcontext
@click.option(
    "--if-older-than",
    "minutes",
    type=click.IntRange(min=1),
    default=None,
    help="Scheduled use (cron on every node): sign only if the log grew and the latest "
    "checkpoint is this many minutes old; of several nodes at once, one signs.",
)
def checkpoint(minutes: int | None) -> None:
    """Sign a checkpoint over the whole log and print it."""
    runtime = _runtime()
    if minutes is not None:
        made = runtime.scheduled_checkpoint(timedelta(minutes=minutes))
        click.echo(made.note if made else "No checkpoint due.\n", nl=False)
        return
    with runtime.transaction() as session:
        note = runtime.checkpoint(session)
    click.echo(note.note, nl=False)


@click.group("audit", cls=AppGroup)
def audit() -> None:
    """Export and verify the audit log."""


@audit.command("export")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--since",
    "since",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A checkpoint the auditor kept: write only the events after it (a delta).",
)
@click.option(
    "--with-attachments", is_flag=True, help="Put every attached file in the bundle by sha256."
)
def audit_export(out: Path, since: Path | None, with_attachments: bool) -> None:
    """Write the audit bundle (zip) an auditor verifies with audit-verify."""
    runtime = _runtime()
    try:
        with runtime.transaction() as session:
            manifest = export_bundle(
                session,
                out,
                institution=runtime.institution,
                now=runtime.now(),
                since=since.read_text(encoding="utf-8") if since else None,
                attachments_dir=storage_dir() if with_attachments else None,
                cosign=runtime.cosign,
            )
            runtime.checkpoint(session)  # NOTE: after the export, so witnesses get its time line
    except (WorkflowError, OSError, UnicodeDecodeError) as exc:
        _fail(str(getattr(exc, "message", exc)))
    after = f" after event {manifest['since']}" if "since" in manifest else ""
    click.echo(
        f"Wrote {out}: {manifest['event_count']} events{after}, head {manifest['head_hash']}"
    )
    click.echo(f"Institution key fingerprint: {manifest['institution']['fingerprint']}")
    for sha in manifest["missing_attachments"]:
        click.echo(f"warning: attached file {sha} is not in the attachments folder", err=True)


@audit.command("prove")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the consistency proof (JSON).",
)
def audit_prove(old: Path, out: Path) -> None:
    """Write an RFC 9162 consistency proof from a kept checkpoint to the log as it is now."""
    runtime = _runtime()
    try:
        with runtime.transaction() as session:
            document = prove_consistency(
                session,
                old.read_text(encoding="utf-8"),
                institution=runtime.institution,
                now=runtime.now(),
            )
        out.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    except (WorkflowError, OSError, UnicodeDecodeError) as exc:
        _fail(str(getattr(exc, "message", exc)))
    click.echo(
        f"Wrote {out}: size {document['old_size']} to {document['new_size']}, "
        f"{len(document['proof'])} hashes"
    )


@audit.command("verify")
def audit_verify() -> None:
    """Verify the live database against its own log (and every request row against its replay)."""
    runtime = _runtime()
    with runtime.transaction() as session:
        report = verify_live(
            session, institution=runtime.institution, now=runtime.now(), source="cli"
        )
    _print_report(report)
    sys.exit(0 if report.valid else 1)


def _print_report(report: Report) -> None:
    click.echo(
        f"{report.event_count} events, {len(report.requests)} requests, institution {report.institution_fingerprint}"
    )
    if report.valid:
        click.echo("VALID: the log verifies and every request row equals the replay of its events.")
        return
    click.echo(f"INVALID: {len(report.problems)} problem(s)")
    for p in report.problems:
        where = f" [{p.request}]" if p.request else ""
        click.echo(f"  seq {p.seq if p.seq is not None else '-'}  {p.kind}{where}  {p.detail}")


@click.group("ledger", cls=AppGroup)
def ledger() -> None:
    """The approved-expense ledger."""


BOOKKEEPING_FORMATS = ("bookkeeping-csv", "bookkeeping-xlsx")


@ledger.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "xlsx", *BOOKKEEPING_FORMATS]), default="csv"
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--school-year")
@click.option("--budget-year", type=int)
@click.option("--line")
@click.option("--source")
@click.option("--state", type=click.Choice(["approved", "paid"]))
@click.option(
    "--paid-from", type=click.DateTime(["%Y-%m-%d"]), help="Bookkeeping: paid on or after."
)
@click.option(
    "--paid-to", type=click.DateTime(["%Y-%m-%d"]), help="Bookkeeping: paid on or before."
)
def ledger_export(
    fmt: str,
    output: Path,
    school_year: str | None,
    budget_year: int | None,
    line: str | None,
    source: str | None,
    state: str | None,
    paid_from: datetime | None,
    paid_to: datetime | None,
) -> None:
    """Export the ledger (CSV with BOM or XLSX), or the bookkeeping import sheet of paid requests.

    bookkeeping-csv and bookkeeping-xlsx: one row per paid request, columns and accounts from the
    accountant's mapping (accounting/bookkeeping.toml, or EXPENSES_BOOKKEEPING).
    """
    runtime = _runtime()
    selection = LedgerFilter(school_year, budget_year, line, source, state)
    if fmt in BOOKKEEPING_FORMATS:
        try:
            mapping = runtime.bookkeeping()
            with runtime.transaction() as session:
                requests = bookkeeping.paid_requests(
                    session,
                    selection,
                    paid_from=paid_from.date() if paid_from else None,
                    paid_to=paid_to.date() if paid_to else None,
                )
                rows = bookkeeping.entries(requests, mapping, runtime.definitions)
                if fmt == "bookkeeping-csv":
                    with output.open("w", encoding="utf-8", newline="") as handle:
                        bookkeeping.write_csv(rows, mapping, handle)
                else:
                    bookkeeping.write_xlsx(rows, mapping, str(output))
        except WorkflowError as exc:
            _fail(exc.message)
        click.echo(f"Wrote {output}")
        return
    with runtime.transaction() as session:
        rows = rows_from_database(session, selection, runtime.definitions)
        if fmt == "csv":
            with output.open("w", encoding="utf-8", newline="") as handle:
                write_csv(rows, handle)
        else:
            write_xlsx(rows, str(output))
    click.echo(f"Wrote {output}")


@ledger.command("check-mapping")
def ledger_check_mapping() -> None:
    """Check the accountant's bookkeeping mapping against every budget plan."""
    runtime = _runtime()
    try:
        mapping = runtime.bookkeeping()
    except WorkflowError as exc:
        _fail(exc.message)
    click.echo(f"{mapping.path}: {len(mapping.columns)} columns; every line and source books.")


@click.group("disclosure", cls=AppGroup)
def disclosure_group() -> None:
    """Public financial disclosure (công khai tài chính) of IT spending, signed with the log."""


@disclosure_group.command("make")
@click.option("--period", default=None, help="A year (2025, the default: this year) or a month.")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    help="Folder for the CSV and its .sig.",
)
def disclosure_make(period: str | None, output: Path) -> None:
    """Sign a checkpoint, and write the report up to it (CSV) with its signature file (.sig)."""
    runtime = _runtime()
    try:
        chosen = disclosure.Period.parse(period or str(runtime.now().year))
        with runtime.transaction() as session:
            data, signature = disclosure.make(
                session,
                definitions=runtime.definitions,
                institution=runtime.institution,
                period=chosen,
                now=runtime.now(),
            )
    except WorkflowError as exc:
        _fail(exc.message)
    output.mkdir(parents=True, exist_ok=True)
    target = output / f"cong-khai-tai-chinh-cntt-{chosen.label}.csv"
    target.write_bytes(data)
    target.with_name(target.name + ".sig").write_bytes(signature)
    target.with_suffix(".pdf").write_bytes(disclosure.render_pdf(data, signature))
    click.echo(f"Wrote {target}, {target.name}.sig and {target.with_suffix('.pdf').name}")


@disclosure_group.command("check")
@click.argument("report", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--signature",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The signature file (default: REPORT.sig).",
)
def disclosure_check(report: Path, signature: Path | None) -> None:
    """Check a downloaded report and its signature file against the log; exit 1 if it differs."""
    runtime = _runtime()
    sig_path = signature or report.with_name(report.name + ".sig")
    if not sig_path.is_file():
        _fail(f"no signature file {sig_path}")
    with runtime.transaction() as session:
        result = disclosure.check(
            session,
            report.read_bytes(),
            sig_path.read_bytes(),
            definitions=runtime.definitions,
            institution_fingerprint=runtime.institution.fingerprint,
        )
    if result.valid:
        click.echo(
            f"MATCHES THE LOG: period {result.period}, checkpoint of {result.size} events, "
            f"signed by {result.fingerprint}"
        )
        return
    for problem in result.problems:
        click.echo(f"  {problem}", err=True)
    click.echo("DOES NOT MATCH THE LOG")
    sys.exit(1)


@click.group("notify", cls=AppGroup)
def notify() -> None:
    """E-mail: deliver the outbox, reminders, digests."""


def _print_delivery(report: DeliveryReport) -> None:
    click.echo(f"sent {report.sent}, retrying {report.retrying}, failed {report.failed}")
    for error in report.errors:
        click.echo(f"  {error}", err=True)


@notify.command("send")
def notify_send() -> None:
    """Deliver every mail that is due (SMTP from EXPENSES_SMTP_*; printed when no host is set)."""
    _print_delivery(_runtime().deliver_mail())


@notify.command("remind")
def notify_remind() -> None:
    """Queue reminders for requests waiting longer than their state allows."""
    click.echo(f"{_runtime().remind()} reminder(s) queued")


@notify.command("digest")
def notify_digest() -> None:
    """Fold the day's held mails into one digest per user who asked for it."""
    click.echo(f"{_runtime().digest()} digest(s) queued")


@notify.command("failed")
def notify_failed() -> None:
    """List mails that could not be delivered."""
    runtime = _runtime()
    with runtime.transaction() as session:
        for mail in failed_mails(session):
            click.echo(
                f"{mail.id}\t{mail.email}\t{mail.attempts}\t{mail.subject}\t{mail.last_error}"
            )


@notify.command("worker")
@click.option("--interval", default=30.0, show_default=True, help="Seconds between rounds.")
@click.option("--rounds", default=0, help="Stop after this many rounds (0: run until stopped).")
@click.option(
    "--digest-hour", default=16, show_default=True, help="Local hour (UTC+7) for daily digests."
)
@click.option(
    "--checkpoint-every",
    default=60,
    show_default=True,
    help="Minutes between scheduled checkpoints (0: none); safe on every node at once.",
)
def notify_worker(interval: float, rounds: int, digest_hour: int, checkpoint_every: int) -> None:
    """Deliver, remind, digest and sign scheduled checkpoints in a loop (without cron)."""
    runtime = _runtime()
    done_digest_on = None
    count = 0
    while True:
        report = runtime.deliver_mail()
        if report.sent or report.retrying or report.failed:
            _print_delivery(report)
        runtime.remind()
        if checkpoint_every > 0:
            try:
                runtime.scheduled_checkpoint(timedelta(minutes=checkpoint_every))
            except WorkflowError as exc:  # no institution key yet: mail goes on, say why
                click.echo(f"checkpoint: {exc.message}", err=True)
        local = runtime.now() + timedelta(hours=7)
        if local.hour == digest_hour and done_digest_on != local.date():
            runtime.digest()
            done_digest_on = local.date()
        count += 1
        if rounds and count >= rounds:
            return
        time.sleep(interval)


def register(app: Flask) -> None:
    """Attach every command to the app's CLI."""
    for command in (
        init_db,
        demo,
        users,
        keys,
        checkpoint,
        audit,
        ledger,
        disclosure_group,
        notify,
        witness_cli,
    ):
        app.cli.add_command(command)
    register_tenancy(app)


# --- the multi-school deployment (workflow.tenancy) ------------------------------------------


def _district() -> District:
    """The deployment's District: the district app's, else one built from the environment."""
    found = current_app.extensions.get("district")
    if found is not None:
        return found  # type: ignore[no-any-return]
    try:
        district = District(
            Settings.from_env(), witness_passphrase=os.environ.get("WITNESS_KEY_PASSPHRASE")
        )
    except WorkflowError as exc:
        _fail(f"{exc.message} (and EXPENSES_MULTI_SCHOOL=1)")
        raise
    current_app.extensions["district"] = district
    return district


@click.group("school", cls=AppGroup)
def school() -> None:
    """Schools of a multi-school deployment (PostgreSQL, EXPENSES_MULTI_SCHOOL=1)."""


@school.command("add")
@click.argument("code")
@click.option("--name", required=True, help="The school's name, as people know it.")
@click.option("--origin", required=True, help="Its log's origin, e.g. th-a.edu.vn/expenses.")
@click.option("--admin", "admin_login", required=True, help="Login of the school's first admin.")
@click.option("--admin-email", default=None, help="The admin's e-mail (admin@<origin host>).")
@click.option(
    "--definitions",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The school's definitions folder (the deployment's by default).",
)
def school_add(
    code: str,
    name: str,
    origin: str,
    admin_login: str,
    admin_email: str | None,
    definitions: Path | None,
) -> None:
    """Create a school: its schema, institution key, log and admin account."""
    district = _district()
    try:
        district.init()
        added = district.add_school(
            code,
            name=name,
            origin=origin,
            admin_login=admin_login,
            admin_email=admin_email or f"{admin_login}@{origin.split('/', 1)[0]}",
            definitions_dir=definitions,
        )
    except WorkflowError as exc:
        _fail(exc.message)
        return
    click.echo(f"School {added.code} created under /s/{added.code}/")
    click.echo(f"Institution key fingerprint: {added.fingerprint}")
    click.echo(f"Admin {added.admin_login}, one-time password: {added.admin_password}")
    click.echo("The admin chooses a new password at first sign-in.")


@school.command("list")
def school_list() -> None:
    """List the deployment's schools (code, origin, name)."""
    district = _district()
    try:
        district.init()
        schools = district.schools()
    except WorkflowError as exc:
        _fail(exc.message)
        return
    for record in schools:
        click.echo(f"{record.code}\t{record.origin}\t{record.name}")


@school.command("import")
@click.argument("code")
@click.option("--name", required=True, help="The school's name, as people know it.")
@click.option("--from", "source", required=True, help="The school's own DATABASE_URL.")
@click.option(
    "--keys",
    "keys_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The school's keys folder (institution.key, institution.pub, pepper).",
)
@click.option(
    "--attachments",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="The school's attachments folder, copied beside the moved school.",
)
@click.option(
    "--trust",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="A checkpoint the school's log must extend: the last one its witness cosigned.",
)
def school_import(
    code: str,
    name: str,
    source: str,
    keys_dir: Path,
    attachments: Path | None,
    trust: Path | None,
) -> None:
    """Move a school's own instance into this deployment, its log intact."""
    from workflow.school_import import import_school

    district = _district()
    from .district.app import school_attachments

    try:
        district.init()
        moved = import_school(
            district,
            code,
            name=name,
            source_url=source,
            keys_from=keys_dir,
            attachments_from=attachments,
            attachments_to=school_attachments(current_app, code) if attachments else None,
            trusted_checkpoint=trust.read_text(encoding="utf-8") if trust else None,
        )
    except WorkflowError as exc:
        _fail(exc.message)
        return
    click.echo(f"School {moved.code} imported: {moved.events} events, origin {moved.origin}")
    click.echo(f"Institution key fingerprint: {moved.fingerprint}")


def _run_in_school(code: str, args: list[str]) -> int:
    """Run one `flask` command (``args``) in the school's own app; returns its exit code."""
    from flask.cli import ScriptInfo

    from . import create_app
    from .district.app import school_config

    config = school_config(current_app._get_current_object(), _district(), code, {})  # type: ignore[attr-defined]
    if config is None:
        _fail(f"no school {code!r} in this deployment")
        return 1
    app = create_app(config)
    click.echo(f"== {code}")
    try:
        # NOTE: the school's app context, pushed here: the commands would otherwise find the
        # district app's context already current and run there.
        with app.app_context():
            app.cli.main(
                args=args,
                prog_name=f"school run {code}",
                obj=ScriptInfo(create_app=lambda: app),
                standalone_mode=False,
            )
    except SystemExit as exc:
        return int(exc.code or 0)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0


@school.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("code")
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED)
def school_run(code: str, args: tuple[str, ...]) -> None:
    """Run a command in one school, e.g. `school run thdemo audit verify`."""
    sys.exit(_run_in_school(code, list(args)))


@school.command("each", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED)
def school_each(args: tuple[str, ...]) -> None:
    """Run a command in every school in turn (cron: `school each notify send`, `checkpoint`)."""
    failed = [
        record.code
        for record in _district().schools()
        if _run_in_school(record.code, list(args)) != 0
    ]
    if failed:
        _fail(f"failed in: {', '.join(failed)}")


@click.group("district", cls=AppGroup)
def district_group() -> None:
    """District accounts (inspector, finance officer) and the schools they may see."""


@district_group.command("add-user")
@click.option("--login", required=True)
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice(DISTRICT_ROLES))
@click.password_option("--password", help="Login password (asked if not given).")
def district_add_user(login: str, name: str, role: str, password: str) -> None:
    """Create a district account."""
    district = _district()
    try:
        district.init()
        district.create_user(login=login, name=name, role=role, password=password)
    except WorkflowError as exc:
        _fail(exc.message)
        return
    click.echo(f"District account {login} created ({role}).")


@district_group.command("grant")
@click.argument("login")
@click.argument("codes", nargs=-1, required=True)
def district_grant(login: str, codes: tuple[str, ...]) -> None:
    """Let a district account see these schools (read-only)."""
    district = _district()
    try:
        for code in codes:
            district.grant(login, code)
    except WorkflowError as exc:
        _fail(exc.message)
        return
    click.echo(f"{login} may see: {', '.join(codes)}")


@district_group.command("witness-init")
@click.argument("name")
def district_witness_init(name: str) -> None:
    """Create the district's witness key (NAME: e.g. phonggd.example.gov.vn/witness) and
    register every school's log with it; each new checkpoint is then cosigned."""
    district = _district()
    try:
        district.init()
        key = district.init_witness(name)
    except WorkflowError as exc:
        _fail(exc.message)
        return
    click.echo(f"Witness key created in {district.witness_dir}")
    click.echo(f"Give auditors this key for `audit-verify --witness-key`: {key.vkey}")


def register_tenancy(app: Flask) -> None:
    """Attach the multi-school commands."""
    for command in (school, district_group):
        app.cli.add_command(command)
