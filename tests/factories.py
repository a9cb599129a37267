"""Small factories for test data: the demo school, drafts, and requests driven to a state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_login import current_user
from sqlalchemy import func, select

from expense_audit.verify import Report
from workflow import journeys
from workflow.demo import DEMO_SECRET, create_people
from workflow.district_report import SchoolSource, recorded_verification
from workflow.livecheck import verify_live
from workflow.models import AuditEvent, OutboxMail, Request, User
from workflow.runtime import Runtime

SECRET = DEMO_SECRET
QUOTE = {"name": "bao-gia-1.pdf", "sha256": "a" * 64}
QUOTE2 = {"name": "bao-gia-2.pdf", "sha256": "b" * 64}


@dataclass
class School:
    runtime: Runtime

    @classmethod
    def create(cls, runtime: Runtime) -> School:
        with runtime.transaction() as session:
            create_people(runtime, session)
        return cls(runtime)

    def user(self, login: str) -> User:
        with self.runtime.transaction() as session:
            user = self.runtime.directory(session).get_user(login)
            assert user is not None
            session.expunge(user)
            return user

    def draft(self, owner: str = "hanh", **content: Any) -> str:
        values: dict[str, Any] = {
            "title": "Gia hạn phần mềm quản lý tài sản công 2025",
            "line": "SW-ASSET",
            "source": "NSNN-TX",
            "budget_year": 2025,
            "amount": "1.800.000",
            "attachments": [QUOTE],
        }
        values.update(content)
        return journeys.propose(self.runtime, owner, **values)

    def act(
        self, number: str, trigger: str, login: str, secret: str = SECRET, **kwargs: Any
    ) -> AuditEvent:
        return journeys.take_step(self.runtime, number, trigger, login, secret, **kwargs)

    def request(self, number: str) -> Request | None:
        with self.runtime.transaction() as session:
            row = session.get(Request, number)
            if row is not None:
                session.expunge(row)
            return row

    def snapshot(self, number: str) -> tuple[Any, ...]:
        """Everything a refused action must leave untouched: the request, the log, the outbox."""
        with self.runtime.transaction() as session:
            row = session.get(Request, number)
            request = (
                None
                if row is None
                else tuple(getattr(row, c.key) for c in Request.__table__.columns)
            )
            events = session.scalar(select(func.count()).select_from(AuditEvent))
            head = session.scalar(select(func.max(AuditEvent.seq)))
            mails = session.scalars(select(OutboxMail.message_id).order_by(OutboxMail.id)).all()
            return request, events, head, tuple(mails)

    def to_state(self, state: str, **content: Any) -> str:
        """A fresh request by hanh, driven to ``state`` along the ordinary path."""
        number = self.draft(**content)
        detours = {
            "returned": [("submit", "hanh"), ("return", "long")],
            "rejected": [("submit", "hanh"), ("reject", "long")],
            "withdrawn": [("withdraw", "hanh")],
        }
        path = detours[state] if state in detours else journeys.steps_to(state)
        for trigger, login in path:
            comment = "Thiếu báo giá thứ hai." if trigger in ("return", "reject") else None
            self.act(number, trigger, login, comment=comment)
        return number

    def verification(self) -> Report:
        """The live check of the whole log: its bundle verified, and every table against it."""
        with self.runtime.transaction() as session:
            return verify_live(
                session, institution=self.runtime.institution, now=self.runtime.now()
            )

    def mails(self) -> list[OutboxMail]:
        """The outbox, without the "new signing key" mails of the school's set-up."""
        with self.runtime.transaction() as session:
            rows = session.scalars(
                select(OutboxMail).where(OutboxMail.kind != "key").order_by(OutboxMail.id)
            ).all()
            for row in rows:
                session.expunge(row)
            return list(rows)


def pay_data(
    amount: int = 1_800_000, voucher: str = "PC-2025-0031", paid_on: str = "2025-01-13"
) -> dict[str, Any]:
    return journeys.payment(amount, paid_on=paid_on, voucher=voucher)


@dataclass
class GrantedSchools:
    """The district pages' access for tests (webapp.dashboard.district.DistrictAccess): the
    schools granted to the signed-in account of the school app, by login."""

    grants: dict[str, list[SchoolSource]]
    clock: Callable[[], datetime]
    layout: str = "base.html"

    def granted(self) -> list[SchoolSource] | None:
        if not current_user.is_authenticated:
            return None
        return list(self.grants.get(current_user.login, []))

    def now(self) -> datetime:
        return self.clock()


def source_of(school: School, code: str, name: str) -> SchoolSource:
    """A school as the district reads it: read-only sessions of its own database."""
    return SchoolSource(
        code=code,
        name=name,
        sessions=school.runtime.read_sessions,
        definitions=school.runtime.definitions,
        last_verification=recorded_verification(school.runtime.settings.origin),
    )
