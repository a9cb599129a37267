"""The read side: named queries the pages and the CLI show (no query is written in a view).

Writes go through ApprovalService and Directory; these functions only read, and each loads what
its page shows (the names of the people on the page, not every user).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from expense_audit.mandates import Mandate
from expense_audit.projection import CONTENT_FIELDS

from .audit import event_view
from .mandates import signature_line, to_mandate
from .models import AuditEvent, CheckpointRow, Draft, MandateRow, Request, SigningKey, User

QUEUE_PAGE = 50  # queues show the oldest first; acting on them brings the next ones up
_TS = "%Y-%m-%dT%H:%M:%SZ"


def names_of(session: Session, logins: Iterable[str | None]) -> dict[str, str]:
    """Full names of the given logins (unknown logins map to themselves)."""
    wanted = {login for login in logins if login}
    if not wanted:
        return {}
    found = dict(session.execute(select(User.login, User.name).where(User.login.in_(wanted))).all())
    return {login: str(found.get(login, login)) for login in wanted}


def user(session: Session, login: str) -> User | None:
    """One account by login, or None."""
    return session.scalars(select(User).where(User.login == login)).first()


@dataclass(frozen=True)
class MyItem:
    """A line of "my requests": a submitted request or a draft that has no event yet."""

    number: str
    title: str | None
    amount: int | None
    state: str
    when: datetime | str | None


def my_requests(session: Session, login: str) -> list[MyItem]:
    """The proposer's requests and drafts, newest number first."""
    rows = session.scalars(select(Request).where(Request.owner == login)).all()
    numbers = {r.number for r in rows}
    drafts = session.scalars(select(Draft).where(Draft.owner == login)).all()
    items = [MyItem(r.number, r.title, r.amount_vnd, r.state, r.updated_at) for r in rows]
    items += [
        MyItem(d.number, d.title, d.amount_vnd, "draft", None)
        for d in drafts
        if d.number not in numbers
    ]
    items.sort(key=lambda item: item.number, reverse=True)
    return items


def waiting(session: Session, state: str, *, limit: int | None) -> Sequence[Request]:
    """Requests in ``state``, the longest waiting first (at most ``limit``, e.g. QUEUE_PAGE)."""
    query = (
        select(Request).where(Request.state == state).order_by(Request.updated_at, Request.number)
    )
    if limit is not None:
        query = query.limit(limit)
    return session.scalars(query).all()


def waiting_count(session: Session, state: str) -> int:
    """How many requests are in ``state``."""
    return int(
        session.scalar(select(func.count()).select_from(Request).where(Request.state == state)) or 0
    )


def numbers_in(session: Session, state: str) -> list[str]:
    """Numbers of every request in ``state``."""
    return list(session.scalars(select(Request.number).where(Request.state == state)))


@dataclass(frozen=True)
class Step:
    """One signed step of a request's timeline."""

    seq: int
    ts: str
    action: str
    from_state: str
    to_state: str
    actor: str
    actor_name: str
    role: str
    key: str
    comment: str | None
    hash: str
    server_held: bool  # signed with a server-held key (v1 steps, and the v2 fallback)
    waited: float | None  # seconds spent in from_state before this step
    signed_as: str | None = None  # under a mandate: "KT. HIỆU TRƯỞNG / PHÓ HIỆU TRƯỞNG <name>"


def timeline(session: Session, number: str) -> list[Step]:
    """The signed events of a request in order, with who, role, when, key and time waited."""
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.request == number).order_by(AuditEvent.seq)
    ).all()
    bodies = [json.loads(event.body) for event in events]
    views = [event_view(body) for body in bodies]
    names = names_of(session, (view["actor"] for view in views))
    signed_as = _signature_lines(session, views)
    steps = []
    previous: datetime | None = None
    for event, body, view in zip(events, bodies, views, strict=True):
        moment = datetime.strptime(event.ts, _TS)
        steps.append(
            Step(
                seq=event.seq,
                ts=event.ts,
                action=view["action"],
                from_state=view["from"],
                to_state=view["to"],
                actor=view["actor"],
                actor_name=names.get(view["actor"], view["actor"]),
                role=view["role"],
                key=view["key"],
                comment=view.get("comment"),
                hash=event.hash,
                server_held=(body.get("signature") or {}).get("kind") != "webauthn",
                waited=(moment - previous).total_seconds() if previous else None,
                signed_as=signed_as.get(event.seq),
            )
        )
        previous = moment
    return steps


def approvals_under_mandate(session: Session, triggers: Collection[str]) -> dict[str, str]:
    """How each approval taken under a mandate is signed, by the approval event's hash.

    Only events of ``triggers`` (the steps that record the approval) by someone who ever held a
    mandate are read: in a school where nobody signs for the principal, no event at all.
    """
    delegates = set(session.scalars(select(MandateRow.delegate).distinct()))
    if not delegates or not triggers:
        return {}
    events = session.execute(
        select(AuditEvent.hash, AuditEvent.body).where(
            AuditEvent.actor.in_(delegates), AuditEvent.action.in_(list(triggers))
        )
    ).all()
    views = [event_view(json.loads(body)) for _hash, body in events]
    lines = _signature_lines(session, views)
    return {
        event_hash: lines[int(view["seq"])]
        for (event_hash, _body), view in zip(events, views, strict=True)
        if int(view["seq"]) in lines
    }


def _signature_lines(session: Session, views: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """How each step taken under a mandate is signed, by the step's seq."""
    under: dict[int, tuple[int, str]] = {}
    for view in views:
        data = view.get("data")
        ref = data.get("mandate") if isinstance(data, Mapping) else None
        if isinstance(ref, Mapping) and isinstance(ref.get("seq"), int):
            under[int(view["seq"])] = (int(ref["seq"]), str(view["actor"]))
    if not under:
        return {}
    mandates = {
        row.seq: to_mandate(row)
        for row in session.scalars(
            select(MandateRow).where(MandateRow.seq.in_({seq for seq, _ in under.values()}))
        )
    }
    users = {
        u.login: u
        for u in session.scalars(
            select(User).where(User.login.in_({login for _, login in under.values()}))
        )
    }
    lines = {}
    for seq, (mandate_seq, login) in under.items():
        mandate, signer = mandates.get(mandate_seq), users.get(login)
        if mandate is not None and signer is not None:
            lines[seq] = signature_line(mandate, signer)
    return lines


@dataclass(frozen=True)
class MandateItem:
    """A mandate as the mandates page lists it: who, for whom, and where it stands today."""

    mandate: Mandate
    delegator_name: str
    delegate_name: str
    status: str  # "live", "future", "ended" or "revoked"


def mandates_of(session: Session, login: str, today: date) -> tuple[list[MandateItem], ...]:
    """The mandates ``login`` granted and the ones they hold, newest first."""
    rows = session.scalars(
        select(MandateRow)
        .where((MandateRow.delegator == login) | (MandateRow.delegate == login))
        .order_by(MandateRow.seq.desc())
    ).all()
    names = names_of(session, [r.delegator for r in rows] + [r.delegate for r in rows])
    granted: list[MandateItem] = []
    held: list[MandateItem] = []
    for row in rows:
        mandate = to_mandate(row)
        status = (
            "revoked"
            if mandate.revoked_seq is not None
            else "future"
            if today < mandate.valid_from
            else "ended"
            if mandate.valid_to < today
            else "live"
        )
        item = MandateItem(mandate, names[row.delegator], names[row.delegate], status)
        (granted if row.delegator == login else held).append(item)
    return granted, held


def delegates(session: Session, login: str, *, never: Collection[str]) -> list[tuple[str, str]]:
    """Who ``login`` may name in a mandate: active accounts, not themselves, none of ``never``."""
    users = session.scalars(
        select(User).where(User.active.is_(True), User.login != login).order_by(User.name)
    ).all()
    return [(u.login, u.name) for u in users if not set(u.role_list) & set(never)]


def seconds_since(ts: str, now: datetime) -> float:
    """Seconds from an event time to ``now``."""
    return (now - datetime.strptime(ts, _TS)).total_seconds()


def people(session: Session) -> Sequence[User]:
    """Every account, by login."""
    return session.scalars(select(User).order_by(User.login)).all()


def active_keys(session: Session) -> dict[str, SigningKey]:
    """Each person's key that is not revoked, by login."""
    keys = session.scalars(select(SigningKey).where(SigningKey.revoked_seq.is_(None))).all()
    return {key.login: key for key in keys}


def latest_checkpoint(session: Session) -> CheckpointRow | None:
    """The checkpoint that covers the most events."""
    return session.scalars(select(CheckpointRow).order_by(CheckpointRow.size.desc())).first()


def event_count(session: Session) -> int:
    """Events in the log."""
    return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def recent_requests(session: Session, limit: int = 200) -> Sequence[Request]:
    """The latest requests by number (the audit page lists them)."""
    return session.scalars(select(Request).order_by(Request.number.desc()).limit(limit)).all()


def request_count(session: Session) -> int:
    """Requests that have at least one event."""
    return int(session.scalar(select(func.count()).select_from(Request)) or 0)


@dataclass(frozen=True)
class Change:
    """One content field that differs from what the reviewer last decided on."""

    field: str
    before: object
    after: object


@dataclass(frozen=True)
class Revision:
    """What changed since a request was last sent back, and when that was."""

    returned_at: str
    returned_by: str
    changes: list[Change]
    added: list[Mapping[str, object]]  # attachments added since
    removed: list[Mapping[str, object]]  # attachments removed since


def changes_since_returned(
    session: Session,
    number: str,
    *,
    sent_back_to: Collection[str],
    content: Mapping[str, object],
) -> Revision | None:
    """``content`` against the content of the request's latest return (an event into one of the
    ``sent_back_to`` states, e.g. "returned"), or None if it was never sent back."""
    last_return: AuditEvent | None = None
    decided: Mapping[str, object] | None = None
    decided_now: Mapping[str, object] = {}
    for event in session.scalars(
        select(AuditEvent).where(AuditEvent.request == number).order_by(AuditEvent.seq)
    ):
        view = event_view(json.loads(event.body))
        bound = (view.get("data") or {}).get("content")
        if isinstance(bound, Mapping):
            decided_now = bound
        if view["to"] in sent_back_to and view["from"] not in sent_back_to:
            last_return, decided = event, decided_now
    if last_return is None or decided is None:
        return None
    changes, added, removed = differences(decided, content)
    return Revision(
        returned_at=last_return.ts,
        returned_by=names_of(session, [last_return.actor]).get(
            last_return.actor, last_return.actor
        ),
        changes=changes,
        added=added,
        removed=removed,
    )


def differences(
    before: Mapping[str, object], after: Mapping[str, object]
) -> tuple[list[Change], list[Mapping[str, object]], list[Mapping[str, object]]]:
    """Content fields that differ, attachments added and attachments removed (by sha256)."""
    before_files, after_files = _attachments(before), _attachments(after)
    changes = [
        Change(name, before.get(name), after.get(name))
        for name in CONTENT_FIELDS
        if name != "attachments" and (before.get(name) or None) != (after.get(name) or None)
    ]
    added = [a for sha, a in after_files.items() if sha not in before_files]
    removed = [a for sha, a in before_files.items() if sha not in after_files]
    return changes, added, removed


def _attachments(content: Mapping[str, object]) -> dict[str, Mapping[str, object]]:
    listed = content.get("attachments")
    items = listed if isinstance(listed, list) else []
    return {str(a.get("sha256")): a for a in items if isinstance(a, Mapping)}


def keys_of(session: Session, login: str) -> Sequence[SigningKey]:
    """Every key a person ever had, newest first (revoked ones too)."""
    return session.scalars(
        select(SigningKey)
        .where(SigningKey.login == login)
        .order_by(SigningKey.registered_seq.desc())
    ).all()


@dataclass(frozen=True)
class PaperCheck:
    """What the log says about a paper form's QR code (request, approving event, school key)."""

    number: str
    request: Request | None
    event: AuditEvent | None  # the event with the hash the paper names, if it is in the log
    approving: bool  # that event is the request's standing approval
    key_matches: bool
    checkpointed: bool  # a signed checkpoint covers the event


def paper_check(
    session: Session, number: str, event_hash: str, fingerprint: str, ours: str
) -> PaperCheck:
    """Resolve a paper form's QR code against the live log."""
    row = session.get(Request, number) if len(number) <= 32 else None
    event = None
    if len(event_hash) == 64:
        event = session.scalars(select(AuditEvent).where(AuditEvent.hash == event_hash)).first()
    checkpoint = latest_checkpoint(session)
    return PaperCheck(
        number=number,
        request=row,
        event=event if event is not None and event.request == number else None,
        approving=row is not None and bool(event_hash) and row.approved_hash == event_hash,
        key_matches=fingerprint == ours,
        checkpointed=event is not None and checkpoint is not None and event.seq <= checkpoint.size,
    )
