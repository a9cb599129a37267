"""Transactional outbox: mails are rows written with the event that causes them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .definitions import TransitionDef
from .mail_text import render
from .models import OutboxMail, User

RECIPIENT_ROLES = {"reviewers": "reviewer", "approvers": "approver", "accountants": "accountant"}


def recipients_for(
    session: Session,
    transition: TransitionDef,
    projection: Mapping[str, Any],
    actor: str,
) -> list[User]:
    """Who must hear of a committed transition: never the actor, never someone who cannot act."""
    users = {u.login: u for u in session.scalars(select(User).where(User.active.is_(True)))}
    owner = projection.get("owner")
    chosen: dict[str, User] = {}
    for name in transition.notify:
        if name == "proposer":
            candidates: Iterable[User] = [users[owner]] if owner in users else []
        else:
            role = RECIPIENT_ROLES[name]
            excluded = {owner}
            if name == "approvers":
                excluded.add(projection.get("forwarded_by"))
            candidates = [u for u in users.values() if u.has_role(role) and u.login not in excluded]
        for user in candidates:
            if user.login != actor:
                chosen[user.login] = user
    return list(chosen.values())


def message_id(origin: str, kind: str, ref: str, login: str) -> str:
    """A stable Message-ID: a retry of the same mail carries the same id."""
    domain = origin.split("/", 1)[0] or "localhost"
    return f"<{kind}.{ref}.{login}@{domain}>"


def queue_event_mails(
    session: Session,
    *,
    origin: str,
    event_seq: int,
    transition: TransitionDef,
    projection: Mapping[str, Any],
    actor: User,
    comment: str | None,
    base_url: str,
    now: datetime,
) -> list[OutboxMail]:
    """Queue the mails of one committed transition (same transaction as the event)."""
    number = str(projection["number"])
    mails = []
    for user in recipients_for(session, transition, projection, actor.login):
        subject, text, html = render(
            kind=transition.trigger,
            language=user.language,
            recipient_name=user.name,
            number=number,
            title=str(projection.get("title") or ""),
            amount_vnd=projection.get("amount_vnd"),
            actor_name=actor.name,
            action_label=transition.label.get(user.language, transition.label["vi"]),
            comment=comment,
            link=request_link(base_url, number),
        )
        mail = OutboxMail(
            message_id=message_id(origin, "event", str(event_seq), user.login),
            kind="event",
            event_seq=event_seq,
            request=number,
            recipient=user.login,
            email=user.email,
            language=user.language,
            subject=subject,
            body_text=text,
            body_html=html,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        session.add(mail)
        mails.append(mail)
    return mails


def request_link(base_url: str, number: str) -> str:
    """Link straight to a request page (login and signing confirmation are asked there)."""
    return f"{base_url.rstrip('/')}/requests/{number}"
