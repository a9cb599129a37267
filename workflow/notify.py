"""Transactional outbox: mails are rows written in the same transaction as their cause."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from expense_audit.checkpoint import Checkpoint
from expense_audit.definitions import StateDef, TransitionDef, WorkflowDefinition

from .clock import utcnow
from .mail_text import render, render_checkpoint, render_digest, render_key_mail
from .models import OutboxMail, ReminderSent, Request, SigningKey, User, role_list

RECIPIENT_ROLES = {
    "reviewers": "reviewer",
    "approvers": "approver",
    "accountants": "accountant",
    "district_officers": "district_finance",
}

# Built once: read at every step.
_ACTIVE_USERS = select(
    User.login, User.name, User.email, User.language, User.digest, User.roles
).where(User.active.is_(True))


@dataclass(frozen=True)
class Recipient:
    """Who a mail goes to: what the outbox needs of an active account (read in one query)."""

    login: str
    name: str
    email: str
    language: str
    digest: bool
    roles: tuple[str, ...]

    def has_role(self, role: str) -> bool:
        return role in self.roles


def resolve_recipients(
    session: Session, names: Iterable[str], projection: Mapping[str, Any], *, actor: str | None
) -> list[Recipient]:
    """Who a recipient list means for one request: never the actor, never someone who cannot act."""
    users = {
        row.login: Recipient(
            row.login,
            row.name,
            row.email,
            row.language,
            bool(row.digest),
            tuple(role_list(row.roles)),
        )
        for row in session.connection().execute(_ACTIVE_USERS)
    }
    owner = projection.get("owner")
    chosen: dict[str, Recipient] = {}
    for name in names:
        if name == "proposer":
            candidates: Iterable[Recipient] = [users[owner]] if owner in users else []
        else:
            role = RECIPIENT_ROLES[name]
            excluded = {owner}  # nobody acts on their own request
            if name == "approvers":
                excluded.add(projection.get("forwarded_by"))  # nor approves what they forwarded
            candidates = [u for u in users.values() if u.has_role(role) and u.login not in excluded]
        for user in candidates:
            if user.login != actor:
                chosen[user.login] = user
    return list(chosen.values())


def message_id(origin: str, kind: str, ref: str, login: str) -> str:
    """A stable Message-ID: a retry of the same mail carries the same id."""
    domain = origin.split("/", 1)[0] or "localhost"
    return f"<{kind}.{ref}.{login}@{domain}>"


def _queue(
    session: Session,
    *,
    to: User | Recipient | str,
    kind: str,
    mid: str,
    content: tuple[str, str, str],
    now: datetime,
    event_seq: int | None = None,
    request: str | None = None,
) -> OutboxMail:
    """One outbox row for a user (their address and language) or a bare address (in Vietnamese)."""
    mail = OutboxMail(
        **outbox_row(
            to=to,
            kind=kind,
            mid=mid,
            content=content,
            now=now,
            event_seq=event_seq,
            request=request,
        )
    )
    session.add(mail)
    return mail


def outbox_row(
    *,
    to: User | Recipient | str,
    kind: str,
    mid: str,
    content: tuple[str, str, str],
    now: datetime,
    event_seq: int | None = None,
    request: str | None = None,
) -> dict[str, Any]:
    """The outbox row's values for one mail (see _queue)."""
    user = None if isinstance(to, str) else to
    email, language = (user.email, user.language) if user else (str(to), "vi")
    subject, text, html = content
    return {
        "message_id": mid,
        "kind": kind,
        "event_seq": event_seq,
        "request": request,
        "recipient": user.login if user else email,
        "email": email,
        "language": language,
        "subject": subject,
        "body_text": text,
        "body_html": html,
        "status": "held" if user is not None and user.digest and kind == "event" else "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def event_mails(
    session: Session,
    *,
    origin: str,
    event_seq: int,
    transition: TransitionDef,
    projection: Mapping[str, Any],
    actor: str,
    actor_name: str,
    comment: str | None,
    base_url: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """The outbox rows of one transition, to be written in the same transaction as its event.

    ``actor_name`` is how the step is signed: the person's name, or under a mandate the
    signature line ("KT. HIỆU TRƯỞNG / ... Long").
    """
    number = str(projection["number"])
    rows = []
    subject_words = transition.mail or transition.label
    for user in resolve_recipients(session, transition.notify, projection, actor=actor):
        content = render(
            kind="event",
            headline=subject_words.get(user.language) or subject_words["vi"],
            language=user.language,
            recipient_name=user.name,
            number=number,
            title=str(projection.get("title") or ""),
            amount_vnd=projection.get("amount_vnd"),
            actor_name=actor_name,
            action_label=transition.label.get(user.language, transition.label["vi"]),
            comment=comment,
            link=request_link(base_url, number),
        )
        rows.append(
            outbox_row(
                to=user,
                kind="event",
                mid=message_id(origin, "event", str(event_seq), user.login),
                content=content,
                now=now,
                event_seq=event_seq,
                request=number,
            )
        )
    return rows


def request_link(base_url: str, number: str) -> str:
    """Link straight to a request page (login and signing confirmation are asked there)."""
    return f"{base_url.rstrip('/')}/requests/{number}"


def queue_reminders(
    session: Session,
    *,
    workflow: WorkflowDefinition,
    origin: str,
    base_url: str,
    now: datetime,
    others: Iterable[WorkflowDefinition] = (),
) -> list[OutboxMail]:
    """Remind whoever must act on requests waiting too long; at most once per waiting period.

    ``others``: further workflows requests may follow (their own states, e.g. the district's).
    """
    mails = []
    states = dict(workflow.states)
    for other in others:
        for name, state in other.states.items():
            states.setdefault(name, state)
    for state in states.values():
        if not state.remind or state.wait_days is None:
            continue
        period = timedelta(days=state.wait_days)
        cutoff = (now - period).strftime("%Y-%m-%dT%H:%M:%SZ")
        waiting = session.scalars(
            select(Request).where(Request.state == state.name, Request.updated_at <= cutoff)
        ).all()
        for row in waiting:
            if row.last_seq is None:  # pragma: no cover - a projected request has an event
                continue
            sent = session.get(ReminderSent, (row.number, row.last_seq))
            if sent is not None and now - sent.sent_at < period:
                continue
            projection = {
                "number": row.number,
                "owner": row.owner,
                "forwarded_by": row.forwarded_by,
            }
            stamp = now.strftime("%Y%m%d")
            for user in resolve_recipients(session, state.remind, projection, actor=None):
                content = render(
                    kind="remind",
                    language=user.language,
                    recipient_name=user.name,
                    number=row.number,
                    title=row.title or "",
                    amount_vnd=row.amount_vnd,
                    since=_display_ts(row.updated_at),
                    link=request_link(base_url, row.number),
                )
                mails.append(
                    _queue(
                        session,
                        to=user,
                        kind="reminder",
                        mid=message_id(origin, "remind", f"{row.last_seq}.{stamp}", user.login),
                        content=content,
                        now=now,
                        request=row.number,
                    )
                )
            if sent is None:
                sent = ReminderSent(
                    request=row.number, state_seq=row.last_seq, sent_at=now, count=1
                )
                session.add(sent)
            else:
                sent.sent_at = now
                sent.count += 1
            if (
                state.escalate_after is not None
                and sent.count >= state.escalate_after
                and sent.escalated_at is None
            ):
                mails += _escalate(session, row, state, sent.count, origin, base_url, now)
                sent.escalated_at = now
    session.flush()
    return mails


def _escalate(
    session: Session,
    row: Request,
    state: StateDef,
    count: int,
    origin: str,
    base_url: str,
    now: datetime,
) -> list[OutboxMail]:
    """Tell the next role up, once, that a request still waits after ``count`` reminders."""
    projection = {"number": row.number, "owner": row.owner, "forwarded_by": row.forwarded_by}
    mails = []
    for user in resolve_recipients(session, state.escalate, projection, actor=None):
        content = render(
            kind="escalate",
            language=user.language,
            recipient_name=user.name,
            number=row.number,
            title=row.title or "",
            amount_vnd=row.amount_vnd,
            since=_display_ts(row.updated_at),
            link=request_link(base_url, row.number),
            count=count,
            state_label=state.label.get(user.language, state.label["vi"]),
        )
        mails.append(
            _queue(
                session,
                to=user,
                kind="reminder",
                mid=message_id(origin, "escalate", str(row.last_seq), user.login),
                content=content,
                now=now,
                request=row.number,
            )
        )
    return mails


def queue_digests(
    session: Session, *, origin: str, base_url: str, now: datetime
) -> list[OutboxMail]:
    """Fold each digest user's held mails into one mail."""
    held = session.scalars(
        select(OutboxMail).where(OutboxMail.status == "held").order_by(OutboxMail.id)
    ).all()
    by_user: dict[str, list[OutboxMail]] = {}
    for mail in held:
        by_user.setdefault(mail.recipient, []).append(mail)
    mails = []
    for login, items in by_user.items():
        user = session.scalars(select(User).where(User.login == login)).first()
        if user is None:
            continue
        content = render_digest(
            language=user.language,
            recipient_name=user.name,
            items=[(m.subject, request_link(base_url, m.request or "")) for m in items],
        )
        mails.append(
            _queue(
                session,
                to=user,
                kind="digest",
                mid=message_id(origin, "digest", f"{now:%Y%m%d}.{items[-1].id}", login),
                content=content,
                now=now,
            )
        )
        for item in items:
            item.status = "digested"
    session.flush()
    return mails


def queue_checkpoint_mails(
    session: Session,
    *,
    checkpoint: Checkpoint,
    fingerprint: str,
    witnesses: Iterable[str],
    now: datetime,
) -> list[OutboxMail]:
    """Send a new signed checkpoint to outside witnesses (the district office)."""
    mails = []
    for address in witnesses:
        mid = message_id(
            checkpoint.origin, "checkpoint", str(checkpoint.size), address.replace("@", "-at-")
        )
        if (
            session.scalars(select(OutboxMail).where(OutboxMail.message_id == mid)).first()
            is not None
        ):
            continue
        content = render_checkpoint(
            origin=checkpoint.origin,
            size=checkpoint.size,
            note=checkpoint.note,
            fingerprint=fingerprint,
        )
        mails.append(
            _queue(
                session,
                to=address,
                kind="checkpoint",
                mid=mid,
                content=content,
                now=now,
            )
        )
    session.flush()
    return mails


def _display_ts(ts: str | None) -> str:
    if not ts:
        return ""
    moment = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ") + timedelta(hours=7)
    return moment.strftime("%d/%m/%Y %H:%M")


def queue_key_mail(
    session: Session,
    user: User,
    method: str,
    key: SigningKey,
    *,
    base_url: str,
    now: Callable[[], datetime],
) -> OutboxMail:
    """Tell the owner a new signing key entered the log for their account (and how)."""
    content = render_key_mail(
        language=user.language,
        recipient_name=user.name,
        method=method,
        kind=key.kind,
        key_id=key.key_id,
        by=key.enrolled_by or "",
        link=f"{base_url.rstrip('/')}/account",
    )
    return _queue(
        session,
        to=user,
        kind="key",
        mid=message_id("key", "key", key.key_id, user.login),
        content=content,
        now=now(),
    )


def queue_code_mail(session: Session, user: User, code: str, base_url: str) -> OutboxMail:
    """Send the person their one-time enrollment code (the admin chose to mail it)."""
    lang = user.language if user.language in ("vi", "en") else "vi"
    if lang == "vi":
        subject = "Mã đăng ký khóa ký của bạn"
        text = (
            f"Chào {user.name},\n\nMã dùng một lần để đăng ký khóa ký (passkey): {code}\n"
            f"Mã hết hạn sau 72 giờ. Đăng nhập rồi mở {base_url.rstrip('/')}/signing-key.\n"
        )
    else:
        subject = "Your signing key enrollment code"
        text = (
            f"Hello {user.name},\n\nYour one-time code to register a signing key (passkey): "
            f"{code}\nIt expires in 72 hours. Sign in, then open {base_url.rstrip('/')}/signing-key.\n"
        )
    html = f"<!doctype html><html><body><pre>{escape(text)}</pre></body></html>"
    return _queue(
        session,
        to=user,
        kind="code",
        mid=message_id("code", "code", f"{user.login}.{code[:4]}", user.login),
        content=(subject, text, html),
        now=utcnow(),
    )
