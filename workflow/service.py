"""The one way to change a request: act(), in one transaction with its event and its mails."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from expense_audit.budget import BudgetBook
from expense_audit.decision import check_decision, make_decision, server_signature
from expense_audit.definitions import (
    DEFAULT_WORKFLOW,
    BudgetCatalogue,
    BudgetLine,
    DefinitionSet,
    TransitionDef,
    WorkflowDefinition,
    load_workflow,
)
from expense_audit.errors import (
    ActorNotAllowed,
    CommentRequired,
    ContentMissing,
    DataInvalid,
    NotPermitted,
    RoleNotAllowed,
    WorkflowError,
)
from expense_audit.guards import (
    GuardContext,
    allocation_left,
    check_attachments,
    check_content,
    clean_text,
    require_tax_code,
    within_allocation,
    within_norm,
)
from expense_audit.limits import (
    MAX_BANK,
    MAX_BANK_ACCOUNT,
    MAX_CODE,
    MAX_COMMENT,
    MAX_DESCRIPTION,
    MAX_INVOICE_NUMBER,
    MAX_INVOICE_SERIES,
    MAX_PAYEE,
    MAX_QUANTITY,
    MAX_TITLE,
)
from expense_audit.machine import machine_for
from expense_audit.mandates import Mandate, acting_for, local_date
from expense_audit.money import parse_amount
from expense_audit.projection import (
    CONTENT_FIELDS,
    INVOICE_FIELDS,
    PAPERWORK_FIELDS,
    PROJECTION_FIELDS,
    Projection,
    apply_event,
    content_of,
    requested_on,
)

from . import budget_totals
from .audit import decision_row, event_view, format_ts, locked_head
from .clock import Clock, local_time, utcnow
from .db import begin_write, reading_first
from .directory import Directory
from .enrollment import same_except_issued
from .errors import AccountLocked, ConcurrentChange, RequestNotFound, WrongSecret
from .mandates import Mandates, signature_line
from .models import AuditEvent, Counter, DefinitionFile, Draft, Request, SigningKey, User
from .notify import event_mails, message_id
from .policy import can_edit
from .signatures import Verified, accept_counter, verify_signature
from .step_writes import (
    EVENTS,
    REQUESTS,
    Head,
    StepWrites,
    draft_row,
    events_since,
    seen_head,
    unrecorded_definitions,
    write_step,
)

PAPERWORK_LIMITS = {
    "payee": MAX_PAYEE,
    "payee_kind": MAX_CODE,
    "tax_code": 14,
    "bank_account": MAX_BANK_ACCOUNT,
    "bank": MAX_BANK,
    "invoice_number": MAX_INVOICE_NUMBER,
    "invoice_series": MAX_INVOICE_SERIES,
    "invoice_date": 10,
}
# The workflow name of each definition file met (by sha256): files never change under their hash.
_WORKFLOW_NAMES: dict[str, str] = {}
DECISION_LIFETIME = timedelta(hours=24)  # a prepared step may wait this long for its signature
CLOCK_TOLERANCE = timedelta(minutes=5)
_NUMBER = re.compile(r"\d{4}-\d{4}/\d{4,6}")
# A request's row and its latest event's hash in one Core query (no ORM object), and its draft:
# built once (see workflow/step_writes.py).
_REQUEST = (
    select(REQUESTS, EVENTS.c.hash.label("last_event_hash"))
    .outerjoin(EVENTS, EVENTS.c.seq == REQUESTS.c.last_seq)
    .where(REQUESTS.c.number == bindparam("number"))
)
_LOCKED_REQUEST = _REQUEST.with_for_update(of=REQUESTS)
_DRAFT = select(Draft).where(Draft.number == bindparam("number"))
_LOCKED_DRAFT = _DRAFT.with_for_update()
CLIENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Current:
    """Where a request stands: its state, owner, projection (if any) and draft (if any)."""

    number: str
    state: str
    owner: str
    projection: Projection | None
    draft: Draft | None
    last_hash: str | None = None  # the hash of the request's latest event (None before it)


@dataclass(frozen=True)
class Prepared:
    """A checked step waiting for its signature: the decision, the key kind, the transition."""

    decision: dict[str, Any]
    key_kind: str
    transition: TransitionDef
    basis: _Basis | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class _Basis:
    """What a step's checks read (in one snapshot) and when: the request, the key, the step."""

    current: Current
    key: SigningKey
    transition: TransitionDef
    at: datetime


def _check_issued(issued: str, now: datetime) -> None:
    """A decision is signed soon after it was prepared (and never in the future)."""
    moment = datetime.strptime(issued, "%Y-%m-%dT%H:%M:%SZ")
    if not now - DECISION_LIFETIME <= moment <= now + CLOCK_TOLERANCE:
        raise DataInvalid(
            "Quyết định này đã quá hạn: hãy tải lại trang và ký lại.",
            en="This decision is too old: reload the page and sign again.",
            field="issued",
        )


def projection_of(row: Request | Row[Any]) -> Projection:
    """A request row (ORM or Core) as a projection dict (the form replay produces)."""
    return {name: getattr(row, name) for name in PROJECTION_FIELDS}


def draft_content(draft: Draft) -> dict[str, Any]:
    """The content of a draft in the form events bind."""
    return {
        "title": draft.title,
        "description": draft.description or "",
        "line": draft.line,
        "source": draft.source,
        "budget_year": draft.budget_year,
        "quantity": draft.quantity,
        "unit_price_vnd": draft.unit_price_vnd,
        "amount_vnd": draft.amount_vnd,
        "attachments": list(draft.attachments or []),
        **{name: getattr(draft, name) or None for name in PAPERWORK_FIELDS},
    }


class ApprovalService:
    """Drafts and transitions of expense requests."""

    def __init__(
        self,
        session: Session,
        *,
        definitions: DefinitionSet,
        directory: Directory,
        clock: Clock = utcnow,
        base_url: str = "http://localhost:5000",
        workflow: str = DEFAULT_WORKFLOW,
    ) -> None:
        self._book_memo: dict[str, BudgetBook] | None = None
        self.session = session
        self.definitions = definitions
        self.directory = directory
        self.clock = clock
        self.base_url = base_url
        self.workflow: WorkflowDefinition = definitions.workflow(workflow)
        self.machine = machine_for(self.workflow)
        self.mandates = Mandates(
            session,
            directory=directory,
            clock=clock,
            receivers=self.workflow.mandate_receivers or tuple(self.workflow.signing_roles),
        )

    # --- drafts -------------------------------------------------------------------------------

    def catalogue_in_force(self) -> BudgetCatalogue:
        """The budget plan new requests are drafted under today (from the clock)."""
        return self.definitions.catalogue_on(self.clock().date())

    def create_draft(self, owner: User, *, school_year: str | None = None, **content: Any) -> Draft:
        """Open a new draft numbered in its school year (by default the plan in force today)."""
        catalogue = (
            self.catalogue_in_force()
            if school_year is None
            else self.definitions.catalogue(school_year)
        )
        if not owner.has_role("proposer"):
            raise NotPermitted(
                "Tài khoản của bạn không được lập đề xuất.",
                en="Your account may not draft requests.",
                field="owner",
            )
        now = self.clock()
        draft = Draft(
            number=self._next_number(catalogue.school_year),
            school_year=catalogue.school_year,
            owner=owner.login,
            title="",
            description="",
            quantity=1,
            attachments=[],
            created_at=now,
            updated_at=now,
        )
        self._fill_draft(draft, catalogue, content)
        self.session.add(draft)
        self.session.flush()
        return draft

    def sync_draft(
        self, owner: User, *, client_id: str, school_year: str | None = None, **content: Any
    ) -> Draft:
        """Create the draft a phone named ``client_id``, or update it if an earlier sync did.

        A phone on a weak connection retries a sync whose answer it never received: the id it
        chose offline finds the draft the first attempt made, so a retry never makes a second.
        """
        if not CLIENT_ID.fullmatch(client_id or ""):
            raise DataInvalid(
                "Mã bản nháp trên điện thoại không hợp lệ.",
                en="The phone's draft id is not valid.",
                field="client_id",
            )
        number = self.session.scalar(
            select(Draft.number).where(Draft.owner == owner.login, Draft.client_id == client_id)
        )
        if number is not None:
            return self.update_draft(number, owner, **content)
        draft = self.create_draft(owner, school_year=school_year, **content)
        draft.client_id = client_id
        self.session.flush()
        return draft

    def attach(self, number: str, actor: User, record: Mapping[str, Any]) -> Draft:
        """Add one attachment to a draft; a file already attached (same sha256) is kept once."""
        current = self.current(number, lock=True)
        attachments = list(current.draft.attachments or []) if current.draft else []
        if any(a.get("sha256") == record.get("sha256") for a in attachments):
            return self.update_draft(number, actor)
        return self.update_draft(number, actor, attachments=[*attachments, dict(record)])

    def update_draft(self, number: str, actor: User, **content: Any) -> Draft:
        """Edit a draft or a returned request; only its owner, only while editable."""
        current = self.current(number, lock=True)
        if current.owner != actor.login:
            raise NotPermitted(
                "Chỉ người lập đề xuất mới được sửa.",
                en="Only the proposer may change a request.",
                field="owner",
            )
        draft = current.draft
        if draft is None or not can_edit(self.workflow, actor.login, current):
            raise DataInvalid(
                "Đề xuất đã gửi, không sửa được nữa.",
                en="This request has been sent and can no longer be changed.",
                field="state",
            )
        self._fill_draft(draft, self.definitions.catalogue(draft.school_year), content)
        draft.updated_at = self.clock()
        self.session.flush()
        return draft

    def _fill_draft(
        self, draft: Draft, catalogue: BudgetCatalogue, content: Mapping[str, Any]
    ) -> None:
        unknown = set(content) - {*CONTENT_FIELDS, "amount"}
        if unknown:
            raise DataInvalid(
                f"Trường không hợp lệ: {', '.join(sorted(unknown))}.",
                en=f"Unknown fields: {', '.join(sorted(unknown))}.",
                field="content",
            )
        for name, limit in (
            ("title", MAX_TITLE),
            ("description", MAX_DESCRIPTION),
            ("line", MAX_CODE),
            ("source", MAX_CODE),
        ):
            if name in content:
                text = clean_text(
                    content[name], field=name, limit=limit, multiline=name == "description"
                )
                setattr(draft, name, text if name in ("title", "description") else (text or None))
        for name in PAPERWORK_FIELDS:
            if name in content:
                text = clean_text(content[name], field=name, limit=PAPERWORK_LIMITS[name])
                setattr(draft, name, text or None)
        if draft.tax_code is not None:
            # at once, under the field; submit checks again
            require_tax_code(draft.tax_code, person=draft.payee_kind == "person")
        if "budget_year" in content:
            year = content["budget_year"]
            try:
                draft.budget_year = int(year) if year not in (None, "") else None
            except (TypeError, ValueError):
                raise DataInvalid(
                    "Năm ngân sách không hợp lệ.",
                    en="The budget year is not valid.",
                    field="budget_year",
                ) from None
        if "attachments" in content:
            attachments = content["attachments"] or []
            check_attachments(attachments)
            draft.attachments = [dict(a) for a in attachments]
        line = catalogue.lines.get(draft.line or "")
        amount_text = content.get("amount", content.get("amount_vnd"))
        if line is not None and line.norm.kind == "per_unit":
            if "quantity" in content:
                draft.quantity = _parse_quantity(content["quantity"])
            if "unit_price_vnd" in content:
                draft.unit_price_vnd = parse_amount(content["unit_price_vnd"])
            if draft.unit_price_vnd is not None:
                draft.amount_vnd = draft.quantity * draft.unit_price_vnd
        elif amount_text is not None:
            draft.quantity = 1
            draft.amount_vnd = draft.unit_price_vnd = parse_amount(amount_text)

    def _next_number(self, school_year: str) -> str:
        counter = self.session.scalars(
            select(Counter).where(Counter.school_year == school_year).with_for_update()
        ).first()
        if counter is None:
            counter = Counter(school_year=school_year, last=0)
            self.session.add(counter)
        counter.last += 1
        return f"{school_year}/{counter.last:04d}"

    # --- reading ------------------------------------------------------------------------------

    def current(self, number: str, *, lock: bool = False) -> Current:
        """The request's current state; with lock=True its rows are locked for this transaction."""
        if not isinstance(number, str) or not _NUMBER.fullmatch(number):
            raise RequestNotFound(
                "Không tìm thấy đề xuất.", en="No such request.", number=str(number)[:32]
            )
        row = (
            self.session.connection()
            .execute(_LOCKED_REQUEST if lock else _REQUEST, {"number": number})
            .first()
        )
        draft = self.session.scalars(_LOCKED_DRAFT if lock else _DRAFT, {"number": number}).first()
        if row is not None:
            return Current(
                number, row.state, row.owner, projection_of(row), draft, row.last_event_hash
            )
        if draft is not None:
            return Current(number, self.workflow.initial, draft.owner, None, draft)
        raise RequestNotFound(
            f"Không tìm thấy đề xuất {number}.", en=f"No request {number}.", number=number
        )

    def workflow_of(self, current: Current) -> WorkflowDefinition:
        """The workflow a request follows: the one its submission chose (see choose_workflow).

        A draft follows the default one until it is submitted. The request's latest event names
        the definition file it was decided under; its name gives today's version of that workflow.
        """
        sha256 = (current.projection or {}).get("definition")
        if not sha256:
            return self.workflow
        return self.definitions.workflow(self._workflow_name(str(sha256)))

    def _workflow_name(self, sha256: str) -> str:
        known = self.definitions.by_hash.get(sha256)
        if isinstance(known, WorkflowDefinition):
            return known.name
        name = _WORKFLOW_NAMES.get(sha256)
        if name is None:
            # An older version of a workflow file: the log keeps every file an event names.
            stored = self.session.get(DefinitionFile, sha256)
            name = (
                load_workflow(bytes(stored.content), stored.path).name
                if stored is not None
                else self.workflow.name
            )
            _WORKFLOW_NAMES[sha256] = name
        return name

    def chosen_workflow(self, current: Current, content: Mapping[str, Any]) -> WorkflowDefinition:
        """The workflow a submission picks: the catalogue's dated rule on today's local date."""
        catalogue = self.definitions.catalogues.get(current.number.split("/")[0])
        if catalogue is None:
            return self.workflow
        name = catalogue.workflow_for(local_date(self.clock()), int(content.get("amount_vnd") or 0))
        return self.definitions.workflow(name)

    def remember_budgets(self) -> None:
        """Read-only pages: compute each line's commitments once for this service's lifetime."""
        self._book_memo = {}

    def book_for_line(self, line: str) -> BudgetBook:
        """Commitments on one budget line, across plans (what the norm and allocation guards see)."""
        if self._book_memo is not None:
            if line not in self._book_memo:
                self._book_memo[line] = self._load_book(line)
            return self._book_memo[line]
        return self._load_book(line)

    def _load_book(self, line: str) -> BudgetBook:
        return budget_totals.book_for_line(self.session, line)

    def budget_status(self, school_year: str, line_code: str) -> dict[str, int] | None:
        """Allocation, used and left for a budget line (for forms and queues)."""
        catalogue = self.definitions.catalogues.get(school_year)
        line: BudgetLine | None = catalogue.lines.get(line_code) if catalogue else None
        if catalogue is None or line is None:
            return None
        left = allocation_left(catalogue, line, self.book_for_line(line_code))
        return {"allocation": line.allocation_vnd, "left": left, "used": line.allocation_vnd - left}

    def budget_refusal(self, school_year: str, content: Mapping[str, Any]) -> WorkflowError | None:
        """Would this content pass the norm and allocation guards now? (for forms and demo data)"""
        catalogue = self.definitions.catalogues.get(school_year)
        ctx = GuardContext(
            actor="",
            owner="",
            forwarded_by=None,
            content=content,
            catalogue=catalogue,
            book=self.book_for_line(str(content.get("line") or "")),
        )
        try:
            within_norm(ctx)
            within_allocation(ctx)
        except WorkflowError as refusal:
            return refusal
        return None

    def check_guards(
        self, number: str, trigger: str, actor: User, *, current: Current | None = None
    ) -> WorkflowError | None:
        """Would ``trigger`` pass its guards now? Returns the refusal, or None (for queues)."""
        try:
            current = current or self.current(number)
            machine = machine_for(self.workflow_of(current))
            transition = machine.transition_for(current.state, trigger)
            if transition.not_while_acting_for and set(transition.roles) & set(actor.role_list):
                self._check_not_acting(current, transition, actor)
            content = self._content_for(current, transition)
            machine.fire(current.state, trigger, self._context(current, actor, content, {}))
        except WorkflowError as refusal:
            return refusal
        return None

    # --- acting -------------------------------------------------------------------------------

    def act(
        self,
        number: str,
        trigger: str,
        actor: User,
        secret: str,
        comment: str | None = None,
        data: Mapping[str, Any] | None = None,
        *,
        expected_seq: int | None = None,
    ) -> AuditEvent:
        """Fire ``trigger`` as ``actor`` with their server-held key (the fallback, the CLI, demo).

        People with a passkey sign on their phone instead: prepare() gives the decision, the
        phone signs it, commit() checks and appends it.
        """
        prepared = self.prepare(
            number, trigger, actor, comment=comment, data=data, expected_seq=expected_seq
        )
        # The secret is checked before the log head is taken: a wrong one holds nobody up.
        try:
            _key, signer = self.directory.keyring.unlock(
                actor,
                secret,
                reset_failures=False,
                key=prepared.basis.key if prepared.basis is not None else None,
            )
        except WrongSecret as refusal:
            self._record_failure(actor, refusal)
            raise
        signature = server_signature(prepared.decision, signer.private)
        # NOTE: in a read_first() session prepare() read in the snapshot commit() works in, so
        # what it checked is not read and checked a second time before the lock.
        basis = prepared.basis if reading_first(self.session) else None
        return self._commit(dict(prepared.decision), signature, actor, basis)

    def prepare(
        self,
        number: str,
        trigger: str,
        actor: User,
        *,
        comment: str | None = None,
        data: Mapping[str, Any] | None = None,
        expected_seq: int | None = None,
    ) -> Prepared:
        """Check a step without writing or locking anything and return the decision to sign.

        The person may take their time at the fingerprint prompt: nothing is held meanwhile.
        """
        self._book_memo = None
        current = self.current(number)
        if expected_seq is not None and (current.projection or {}).get("last_seq") != expected_seq:
            raise self._concurrent_change(current)
        key = self.directory.keyring.signing_key(actor)
        decision, transition = self._decide(current, trigger, actor, comment, data, key.key_id)
        basis = _Basis(current, key, transition, self.clock())
        return Prepared(decision, key.kind, transition, basis)

    def commit(
        self, decision: Mapping[str, Any], signature: Mapping[str, Any], actor: User
    ) -> AuditEvent:
        """Append a signed decision: every check again under the lock, then the signature.

        A refusal raises a WorkflowError and the caller rolls back, so request, log and outbox
        stay exactly as they were.
        """
        return self._commit(self._well_formed(decision, actor), signature, actor)

    def _well_formed(self, decision: Mapping[str, Any], actor: User) -> dict[str, Any]:
        """1. Well formed, and the actor's own decision."""
        try:
            checked = check_decision(decision)
        except WorkflowError:
            raise DataInvalid(
                "Nội dung được ký không hợp lệ.",
                en="The signed decision is malformed.",
                field="decision",
            ) from None
        if checked["actor"] != actor.login or not isinstance(checked["request"], str):
            raise NotPermitted(
                "Quyết định này không phải của bạn.",
                en="This decision is not yours.",
                field="decision",
            )
        return checked

    def _commit(
        self,
        checked: dict[str, Any],
        signature: Mapping[str, Any],
        actor: User,
        basis: _Basis | None = None,
    ) -> AuditEvent:
        """Steps 2-6 of commit(); ``basis``: what prepare() read in this same snapshot."""
        self._book_memo = None
        if reading_first(self.session):
            # 2. In a read_first() session (the web's signing views, act()) everything is
            # checked and worked out before the write lock, the signature included, in one
            # snapshot of the database. Under the lock, a log head that has not moved since
            # means nothing the step depends on has (every change of a request, person, role,
            # key, mandate or budget total is an event): the step is written as worked out.
            seen = seen_head(self.session)
            basis = basis or self._basis(checked, actor, self.current(checked["request"]))
            verified = verify_signature(basis.key, checked, signature)
            step = self._plan(checked, signature, actor, basis, verified, seen)
            totals = budget_totals.line_totals(self.session, _line_of(checked))
            begin_write(self.session, keep_read=True)
            head = locked_head(self.session)
            # Steps of other people on other requests may have been appended meanwhile: if the
            # budget line's totals are still those the guards judged, they change nothing this
            # step depends on, only its place in the chain.
            if (
                head == seen or self._unrelated_since(seen, checked, actor, basis, totals)
            ) and self._still_as_planned(checked, basis):
                if head != seen:
                    step = self._chained(step, checked, signature, basis, head)
                return write_step(self.session, step)
            # Something this step depends on may have changed: read everything again under the
            # lock and check again.
            self.session.expire_all()
            self._book_memo = None
        else:
            # 3.-4. Serialize: the write lock (in turn), the log head, then the request.
            head = locked_head(self.session)
            verified = None
        basis = self._basis(checked, actor, self.current(checked["request"], lock=True))
        # 5. The signature: the person's key signed this decision; under the lock, still the
        # key that verified (not revoked or replaced meanwhile), and a passkey's counter rises.
        if verified is None:
            verified = verify_signature(basis.key, checked, signature)
        return write_step(
            self.session, self._plan(checked, signature, actor, basis, verified, head)
        )

    def _basis(self, checked: Mapping[str, Any], actor: User, current: Current) -> _Basis:
        key, transition = self._check_decided(checked, actor, current)
        return _Basis(current, key, transition, self.clock())

    def _still_as_planned(self, checked: Mapping[str, Any], basis: _Basis) -> bool:
        """Under the lock, with nothing in the log changed that the step depends on: what is not
        in the log is unchanged too (the draft a submission binds, the day the guards and
        mandates were judged on)."""
        now = self.clock()
        _check_issued(checked["issued"], now)
        if local_date(now) != local_date(basis.at) or now.date() != basis.at.date():
            return False
        current = basis.current
        if basis.transition.binds_content and current.draft is not None:
            row = draft_row(self.session, current.number)
            return row is not None and draft_content(row) == draft_content(current.draft)
        return True

    def _unrelated_since(
        self,
        seen: Head,
        checked: Mapping[str, Any],
        actor: User,
        basis: _Basis,
        totals: Sequence[tuple[Any, ...]],
    ) -> bool:
        """Under the lock: every event appended since ``seen`` is another person's step on
        another request (no change of people, keys, mandates, this request or this signer's
        counter). Their only effect on this step can then be on its budget line's totals: if
        these moved, the guards are judged again on them (a refusal is raised as the full
        check would), nothing else being read. False: everything must be read again."""
        line = _line_of(checked)
        same_line = False
        for event in events_since(self.session, seen.seq):
            if (
                event.request is None
                or event.request == checked["request"]
                or event.actor == checked["actor"]
            ):
                return False
            same_line = same_line or event.line is None or event.line == line
        if not same_line:
            return True
        now = budget_totals.line_totals(self.session, line)
        if now != totals:
            self._book_memo = {line: budget_totals.book_of(now)}
            payment = (checked["data"] or {}).get("payment")
            expected, _transition = self._decide(
                basis.current,
                checked["action"],
                actor,
                checked["comment"],
                payment,
                basis.key.key_id,
            )
            same_except_issued(checked, expected)
        return True

    def _chained(
        self,
        step: StepWrites,
        checked: Mapping[str, Any],
        signature: Mapping[str, Any],
        basis: _Basis,
        head: Head,
    ) -> StepWrites:
        """``step`` moved to the end of the chain at ``head`` (its event, its projection's
        last step, its mails' event number); nothing is read."""
        event, projection = self._event_at(checked, signature, basis, head)
        seq = str(event["seq"])
        mails = [
            {
                **mail,
                "event_seq": event["seq"],
                "message_id": message_id(str(checked["origin"]), "event", seq, mail["recipient"]),
            }
            for mail in step.mails
        ]
        return replace(step, head=head, event=event, after=projection, mails=mails)

    def _event_at(
        self,
        checked: Mapping[str, Any],
        signature: Mapping[str, Any],
        basis: _Basis,
        head: Head,
    ) -> tuple[dict[str, Any], Projection]:
        """The audit_events row of the decision chained after ``head``, and the projection."""
        event, body = decision_row(
            checked, signature, seq=head.seq + 1, prev=head.hash, ts=format_ts(self.clock())
        )
        projection = apply_event(
            basis.current.projection, event_view(body), event["hash"], basis.transition.effects
        )
        return event, projection

    def _plan(
        self,
        checked: Mapping[str, Any],
        signature: Mapping[str, Any],
        actor: User,
        basis: _Basis,
        verified: Verified,
        head: Head,
    ) -> StepWrites:
        """6. What the step writes: the event chained to ``head``, the projection, the key's
        counter, the mails (the caller writes it all or nothing)."""
        use = accept_counter(basis.key, verified, signature)
        if use is not None and (use.sign_count, use.batch) == (
            basis.key.sign_count,
            basis.key.last_batch,
        ):
            use = None  # unchanged (an authenticator without a counter, a batch's next step)
        event, projection = self._event_at(checked, signature, basis, head)
        named = [str(checked["definition"]), *([checked["budget"]] if checked["budget"] else [])]
        mails = event_mails(
            self.session,
            origin=str(checked["origin"]),
            event_seq=head.seq + 1,
            transition=basis.transition,
            projection=projection,
            actor=actor.login,
            actor_name=self._signed_as(checked, actor) or actor.name,
            comment=checked["comment"],
            base_url=self.base_url,
            now=self.clock(),
        )
        return StepWrites(
            head=head,
            event=event,
            before=basis.current.projection,
            after=projection,
            key_id=basis.key.key_id,
            counter=use,
            reset_failures=bool(basis.key.failed_attempts),
            definitions=[
                (sha256, self.definitions.paths[sha256], self.definitions.files[sha256])
                for sha256 in unrecorded_definitions(self.session, named)
            ],
            mails=mails,
        )

    def _check_decided(
        self, checked: Mapping[str, Any], actor: User, current: Current
    ) -> tuple[SigningKey, TransitionDef]:
        """Steps 3 and 4 of commit(): nobody acted first, the step is still allowed, and the
        decision is exactly what it would be now."""
        if checked["request_prev"] != self._last_hash(current):
            raise self._concurrent_change(current)
        key = self.directory.keyring.signing_key(actor)
        payment = (checked["data"] or {}).get("payment")
        expected, transition = self._decide(
            current, checked["action"], actor, checked["comment"], payment, key.key_id
        )
        same_except_issued(checked, expected)
        _check_issued(checked["issued"], self.clock())
        return key, transition

    def _signed_as(self, decision: Mapping[str, Any], actor: User) -> str | None:
        """How a step under a mandate is signed on papers and mails, else None."""
        ref = (decision["data"] or {}).get("mandate")
        mandate = self.mandates.get(int(ref["seq"])) if isinstance(ref, Mapping) else None
        return signature_line(mandate, actor) if mandate is not None else None

    def _decide(
        self,
        current: Current,
        trigger: str,
        actor: User,
        comment: str | None,
        payment_data: Mapping[str, Any] | None,
        key_id: str,
    ) -> tuple[dict[str, Any], TransitionDef]:
        """The decision ``actor`` would sign now, or the refusal (nothing is written)."""
        # 1. Is the trigger possible from this state, and under which of the actor's roles?
        workflow = self.workflow_of(current)
        machine = machine_for(workflow)
        transition = machine.transition_for(current.state, trigger)
        if not actor.active:
            raise AccountLocked(
                "Tài khoản đã bị khóa.", en="This account is locked.", login=actor.login
            )
        role, mandate = self._role_for(current, transition, actor)
        if mandate is None and transition.not_while_acting_for:
            self._check_not_acting(current, transition, actor)
        # 2. Comment and data the transition needs.
        comment = clean_text(comment, field="comment", limit=MAX_COMMENT, multiline=True) or None
        if transition.comment_required and comment is None:
            raise CommentRequired(
                f"Cần ghi ý kiến khi «{transition.label['vi']}».",
                en=f"Please write a comment to “{transition.label['en']}”.",
                trigger=trigger,
            )
        content = self._content_for(current, transition)
        payment = _payment_data(payment_data) if transition.has("record_payment") else {}
        if transition.has("choose_workflow"):
            # The submission picks the workflow by the rule in force today and the amount.
            workflow = self.chosen_workflow(current, content)
            machine = machine_for(workflow)
            transition = machine.transition_for(current.state, trigger)
        # 3. Guards (ownership, separation of duties, norms, allocation) through the machine.
        new_state = machine.fire(
            current.state, trigger, self._context(current, actor, content, payment)
        )
        catalogue = self.definitions.catalogues.get(current.number.split("/")[0])
        data: dict[str, Any] = {"content": content}
        if payment:
            data["payment"] = payment
        if mandate is not None:
            data["mandate"] = mandate.ref
        decision = make_decision(
            origin=self.directory.keyring.origin,
            request=current.number,
            request_prev=self._last_hash(current),
            action=trigger,
            from_state=current.state,
            to_state=new_state,
            actor=actor.login,
            role=role,
            key=key_id,
            definition=workflow.sha256,
            budget=catalogue.sha256 if catalogue is not None else None,
            data=data,
            comment=comment,
            issued=format_ts(self.clock()),
        )
        return decision, transition

    def _role_for(
        self, current: Current, transition: TransitionDef, actor: User
    ) -> tuple[str, Mandate | None]:
        """The role the actor acts under: their own, or one a live mandate gives them."""
        try:
            return self.machine.role_for(transition, actor.role_list), None
        except RoleNotAllowed:
            content = (
                content_of(current.projection)
                if current.projection is not None
                else draft_content(current.draft)
                if current.draft is not None
                else {}
            )
            mandate = self.mandates.for_step(
                actor,
                transition.roles,
                line=str(content.get("line") or ""),
                amount_vnd=int(content.get("amount_vnd") or 0),
            )
            if mandate is None:
                raise
            return mandate.role, mandate

    def _check_not_acting(self, current: Current, transition: TransitionDef, actor: User) -> None:
        """Separation of duties under a mandate (the definition's ``not_while_acting_for``)."""
        today = local_date(self.clock())
        acting = acting_for(
            self.mandates.held_by(actor.login, transition.not_while_acting_for),
            actor=actor.login,
            roles=transition.not_while_acting_for,
            on=today,
            delegator_roles=self._roles_of,
        )
        if acting is None:
            return
        delegator = self.directory.get_user(acting.delegator)
        head = delegator.name if delegator is not None else acting.delegator
        until = f"{acting.valid_to:%d/%m/%Y}"
        others = self.others_for(transition, actor, current.owner)
        if others:
            names = ", ".join(user.name for user in others)
            raise ActorNotAllowed(
                f"Bạn đang ký thay {head} đến {until}: người ký thay không xem xét đề xuất mình "
                f"sẽ duyệt. Đề xuất này do {names} xem xét.",
                en=f"You sign for {head} until {until}: whoever signs for the principal does not "
                f"review what they will approve. {names} reviews this request.",
                rule="not_while_acting_for",
                others=[user.login for user in others],
            )
        raise ActorNotAllowed(
            f"Bạn đang ký thay {head} đến {until} và không có người xem xét nào khác: đề xuất "
            f"chờ đến khi hết ủy quyền (hoặc {head} thu hồi ủy quyền) để được xem xét.",
            en=f"You sign for {head} until {until} and there is no other reviewer: the request "
            f"waits until the mandate ends (or {head} revokes it) to be reviewed.",
            rule="not_while_acting_for",
            others=[],
        )

    def others_for(self, transition: TransitionDef, actor: User, owner: str) -> list[User]:
        """Who else may take ``transition`` today: holds its roles, is not the proposer, and
        does not act for a role the definition keeps apart from it."""
        today = local_date(self.clock())
        found: dict[str, User] = {}
        for role in transition.roles:
            for user in self.directory.users_with_role(role):
                if user.login in (actor.login, owner) or not user.active:
                    continue
                if transition.not_while_acting_for and acting_for(
                    self.mandates.held_by(user.login, transition.not_while_acting_for),
                    actor=user.login,
                    roles=transition.not_while_acting_for,
                    on=today,
                    delegator_roles=self._roles_of,
                ):
                    continue
                found[user.login] = user
        return sorted(found.values(), key=lambda user: user.login)

    def _roles_of(self, login: str) -> list[str]:
        user = self.directory.get_user(login)
        return user.role_list if user is not None and user.active else []

    def _last_hash(self, current: Current) -> str | None:
        """Hash of the request's latest event (None before its first)."""
        return current.last_hash if current.projection is not None else None

    def _record_failure(self, actor: User, refusal: WorkflowError) -> None:
        """Count a wrong secret apart from the step, which is refused and rolled back.

        NOTE: the step has written nothing yet (the secret is checked before any write), so
        ending the transaction here loses nothing; the count must survive the refusal.
        """
        self.session.rollback()
        self.directory.keyring.record_failure(
            actor.login, str(refusal.details.get("key_id", "")), "wrong-secret"
        )
        self.session.commit()

    def _content_for(self, current: Current, transition: TransitionDef) -> dict[str, Any]:
        catalogue = self.definitions.catalogues.get(current.number.split("/")[0])
        if transition.binds_content and current.draft is not None:
            content = draft_content(current.draft)
            if transition.checks_content:
                check_content(content, catalogue)
            return content
        if current.projection is None:
            raise ContentMissing(
                "Đề xuất chưa có nội dung.",
                en="The request has no content yet.",
                number=current.number,
            )
        return content_of(current.projection)

    def _context(
        self, current: Current, actor: User, content: Mapping[str, Any], payment: Mapping[str, Any]
    ) -> GuardContext:
        line = str(content.get("line") or "")
        now = self.clock()
        return GuardContext(
            actor=actor.login,
            owner=current.owner,
            forwarded_by=(current.projection or {}).get("forwarded_by"),
            approved_by=(current.projection or {}).get("approved_by"),
            content=content,
            catalogue=self.definitions.catalogues.get(current.number.split("/")[0]),
            book=self.book_for_line(line),
            data=payment,
            today=now.date(),
            local_day=local_date(now),
            requested_on=requested_on(current.projection),
        )

    def _concurrent_change(self, current: Current) -> ConcurrentChange:
        last = None
        if current.projection is not None:
            last = self.session.get(AuditEvent, current.projection["last_seq"])
        if last is None:
            return ConcurrentChange(
                "Đề xuất vừa thay đổi, hãy tải lại trang.",
                en="The request just changed: reload the page.",
                number=current.number,
            )
        actor = self.directory.get_user(last.actor)
        name = actor.name if actor else last.actor
        label = self.workflow.label_of(last.action)
        at = local_time(last.ts)
        return ConcurrentChange(
            f"{name} đã «{label['vi']}» đề xuất này lúc {at}, trước bạn. "
            "Bước của bạn không được ghi.",
            en=f"{name} did “{label['en']}” on this request at {at}, before you. "
            "Your step was not recorded.",
            number=current.number,
            actor=last.actor,
            action=last.action,
            at=last.ts,
        )


def _line_of(decision: Mapping[str, Any]) -> str:
    """The budget line a decision's request is on (its content's)."""
    return str(((decision["data"] or {}).get("content") or {}).get("line") or "")


def _parse_quantity(value: Any) -> int:
    text = str(value).strip()
    # NOTE: ASCII digits only: int() would also read "²" or Arabic-Indic digits.
    quantity = int(text) if re.fullmatch(r"[0-9]{1,7}", text) else 0
    if not 0 < quantity <= MAX_QUANTITY:
        raise DataInvalid(
            "Số lượng phải là số nguyên dương.",
            en="The quantity must be a positive whole number.",
            field="quantity",
        )
    return quantity


def _payment_data(data: Mapping[str, Any] | None) -> dict[str, Any]:
    data = dict(data or {})
    amount = data.get("amount_paid_vnd")
    if isinstance(amount, str):
        amount = parse_amount(amount)
    paid_on = data.get("paid_on")
    payment: dict[str, Any] = {
        "voucher": str(data.get("voucher") or "").strip(),
        "paid_on": paid_on.isoformat() if isinstance(paid_on, date) else str(paid_on or ""),
        "amount_paid_vnd": amount,
    }
    # The invoice, when the accountant enters it at payment (it was not known at proposal).
    invoice = {name: _invoice_text(data.get(name), name) for name in INVOICE_FIELDS}
    if any(invoice.values()):
        payment.update(invoice)
    return payment


def _invoice_text(value: Any, name: str) -> str | None:
    if isinstance(value, date):
        return value.isoformat()
    return clean_text(value, field=name, limit=PAPERWORK_LIMITS[name]) or None
