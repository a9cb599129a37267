"""The demo school of SCENARIOS.md: its people and, on request, a signed history of requests."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from expense_audit.errors import WorkflowError

from .clock import Clock
from .models import AuditEvent, User
from .runtime import Runtime

DEMO_PASSWORD = "demo-2024"  # noqa: S105 - demo accounts only; printed by `flask demo`
DEMO_SECRET = "ky-demo-2024"  # noqa: S105 - demo signing secret; real ones are chosen by each user
DEMO_SCRYPT_N = 2**12  # demo keys unlock fast; real keys use the default cost
DEMO_EPOCH = datetime(2024, 8, 26, 1, 0)  # the demo log begins before the school year
DEMO_START = datetime(2024, 9, 9, 0, 40)  # the earliest the demo history may start
DEMO_END = datetime(2025, 5, 31, 10, 0)  # the school year's requests are decided by then
DEMO_BUDGET_YEARS = (2024, 2025)  # the years of definitions/budgets/2024-2025.toml


@dataclass(frozen=True)
class DemoPerson:
    login: str
    name: str
    roles: tuple[str, ...]
    title: str


PEOPLE = (
    DemoPerson("hanh", "Võ Thị Hạnh", ("proposer",), "IT staff / nhân viên CNTT"),
    DemoPerson("nga", "Hồ Thị Nga", ("proposer",), "library staff / nhân viên thư viện"),
    DemoPerson(
        "long", "Nguyễn Văn Long", ("reviewer", "proposer"), "deputy principal / phó hiệu trưởng"
    ),
    DemoPerson("dung", "Phạm Thị Dung", ("reviewer",), "second deputy principal / phó hiệu trưởng"),
    DemoPerson("toan", "Nguyễn Văn Toàn", ("approver", "proposer"), "principal / hiệu trưởng"),
    DemoPerson("mai", "Trần Thị Mai", ("accountant",), "accountant / kế toán"),
    DemoPerson("kiem", "Lê Văn Kiểm", ("auditor",), "district inspector / thanh tra Phòng GDĐT"),
    DemoPerson("admin", "Quản trị hệ thống", ("admin",), "admin / quản trị"),
    # Not school staff: the district finance officer who signs the extra step of large amounts
    # (definitions/expense_approval_district.toml) with an account at the school.
    DemoPerson(
        "thanh",
        "Đỗ Văn Thành",
        ("district_finance",),
        "district finance officer / chuyên viên Phòng Tài chính – Kế hoạch",
    ),
)

# (line, title, amount or (quantity, unit price), source)
TEMPLATES: tuple[tuple[str, str, int | tuple[int, int], str], ...] = (
    ("SW-ASSET", "Gia hạn phần mềm quản lý tài sản công", 1_800_000, "NSNN-TX"),
    ("SW-IMAS", "Gia hạn phần mềm kế toán Imas", 1_800_000, "NSNN-TX"),
    ("WEB", "Duy trì tên miền và hosting trang web trường", 2_400_000, "NSNN-TX"),
    ("PRINT", "In tài liệu tập huấn chuyển đổi số", 450_000, "NSNN-TX"),
    ("PRINT", "In báo cáo sơ kết học kỳ", 320_000, "THU-DL"),
    ("TRAINER", "Thuê báo cáo viên tập huấn phần mềm thư viện", (2, 1_000_000), "NSNN-TX"),
    ("LMS", "Tài khoản bồi dưỡng giáo viên trên LMS", (25, 1_200_000), "NSNN-TX"),
    ("SW-LIB", "Phần mềm quản lý thư viện và thiết bị", 18_000_000, "NSNN-TX"),
    ("SW-KDCL", "Phần mềm kiểm định chất lượng (3 năm)", 6_000_000, "NSNN-TX"),
    ("CASHLESS", "Triển khai thu phí không dùng tiền mặt", 9_500_000, "THU-DL"),
    ("ENETVIET", "Sổ liên lạc điện tử EnetViet tháng", (450, 15_000), "THU-DL"),
)

# The large request of the history (issue 15): above the district limit of the budget plan's
# [[workflow_rules]], it waits after the principal's approval for the district finance officer.
# (line, title, (quantity, unit price), source), the first that still fits the line's allocation.
DISTRICT_STORIES: tuple[tuple[str, str, tuple[int, int], str], ...] = (
    ("ENETVIET", "Sổ liên lạc điện tử EnetViet cả năm học, toàn trường", (2_700, 15_000), "THU-DL"),
    ("LMS", "Tài khoản LMS cho toàn bộ giáo viên", (30, 1_200_000), "NSNN-TX"),
    ("ENETVIET", "Sổ liên lạc điện tử EnetViet học kỳ II, toàn trường", (2_100, 15_000), "THU-DL"),
)

TARGETS = (
    "paid",
    "approved",
    "forwarded",
    "submitted",
    "returned",
    "rejected",
    "withdrawn",
    "draft",
)


def enrolment_clock(runtime: Runtime) -> Clock:
    """Times for the demo accounts' events: a minute apart before the school year on a fresh
    demo log; the real clock on a log already in use (nothing may be dated ahead of it)."""
    latest = _latest_event_time(runtime)
    if latest >= DEMO_START:
        return runtime.clock
    moments = itertools.count(1)
    return lambda: max(DEMO_EPOCH, latest) + timedelta(minutes=next(moments))


class DemoClock:
    """A clock that walks through the school year, so the history looks lived in."""

    def __init__(
        self,
        start: datetime,
        rng: random.Random,
        *,
        scale: float = 1.0,
        ceiling: datetime | None = None,
    ) -> None:
        self.now, self.rng, self.scale, self.ceiling = start, rng, scale, ceiling

    def __call__(self) -> datetime:
        return self.now

    def advance(self, low_minutes: int = 20, high_minutes: int = 60 * 30) -> None:
        low = max(1, int(low_minutes * self.scale))
        self.now += timedelta(
            minutes=self.rng.randint(low, max(low, int(high_minutes * self.scale)))
        )
        # NOTE: the history never runs ahead of the real clock: later real steps and the
        # checkpoint made at export must not be dated before it.
        if self.ceiling is not None and self.now > self.ceiling:
            self.now = self.ceiling


def _latest_event_time(runtime: Runtime) -> datetime:
    with runtime.transaction() as session:
        latest = session.scalars(
            select(AuditEvent.ts).order_by(AuditEvent.seq.desc()).limit(1)
        ).first()
    return datetime.strptime(latest, "%Y-%m-%dT%H:%M:%SZ") if latest else DEMO_EPOCH


def create_people(
    runtime: Runtime,
    session: Session,
    *,
    domain: str = "th-demo.edu.vn",
    clock: Clock | None = None,
) -> list[User]:
    """Create the demo accounts (idempotent), each with a signing key under the demo secret."""
    directory = runtime.directory(session, clock=clock, scrypt_n=DEMO_SCRYPT_N)
    users = []
    for person in PEOPLE:
        user = directory.get_user(person.login)
        if user is None:
            user = directory.create_user(
                login=person.login,
                name=person.name,
                email=f"{person.login}@{domain}",
                roles=person.roles,
                password=DEMO_PASSWORD,
                signing_secret=DEMO_SECRET if person.roles != ("auditor",) else None,
            )
        users.append(user)
    return users


def create_history(runtime: Runtime, count: int, *, seed: int = 2024) -> dict[str, int]:
    """Create ``count`` requests spread over every state, every step really signed."""
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not a secret
    # The log moves forward in time: the history starts after the log's latest event and runs
    # through the school year (or, on a log already past it, up to now).
    start = max(DEMO_START, _latest_event_time(runtime))
    # NOTE: nothing is dated ahead of the runtime's clock: later steps and the checkpoint made at
    # export must not come before the history.
    now = runtime.now().replace(tzinfo=None)
    ceiling = max(start, min(DEMO_END, now))
    # NOTE: time is compressed so a long history fits between its start and its end.
    hours = max(1.0, (ceiling - start).total_seconds() / 3600)
    scale = min(1.0, 200 / max(count, 1), hours / (50 * max(count, 1)))
    clock = DemoClock(start, rng, scale=scale, ceiling=ceiling)
    tally: dict[str, int] = {}
    # A history longer than the fixed stories ends with the large request through the district
    # (in place of its last random one, so that it still holds ``count`` requests).
    district = count > len(TARGETS) * 2
    for index in range(count - 1 if district else count):
        target = TARGETS[index % len(TARGETS)] if index < len(TARGETS) * 2 else rng.choice(TARGETS)
        with runtime.transaction() as session:
            state = _one_request(runtime, session, clock, rng, target)
        tally[state] = tally.get(state, 0) + 1
        clock.advance(10, 60 * 8)
    if district:
        with runtime.transaction() as session:
            large = _district_request(runtime, session, clock)
        if large is not None:
            tally[large] = tally.get(large, 0) + 1
    return tally


def _district_request(runtime: Runtime, session: Session, clock: DemoClock) -> str | None:
    """One large request through the district step, paid; None if no line has room left.

    It comes after the random history and draws nothing from its random stream, so the
    history's other stories stay as they were.
    """
    service = runtime.service(session, clock=clock)
    for line, title, (quantity, unit_price), source in DISTRICT_STORIES:
        content: dict[str, object] = {
            "title": title,
            "line": line,
            "source": source,
            "budget_year": DEMO_BUDGET_YEARS[-1],
            "description": "Khoản lớn: sau hiệu trưởng, chờ Phòng Tài chính – Kế hoạch duyệt.",
            "quantity": quantity,
            "unit_price_vnd": unit_price,
            "attachments": [
                {"name": f"bao-gia-{i + 1}.pdf", "sha256": f"{i + 1:x}" * 64} for i in range(2)
            ],
        }
        budget = {**content, "amount_vnd": quantity * unit_price}
        if service.budget_refusal("2024-2025", budget) is None:
            break
    else:
        return None
    people = {p.login: service.directory.get_user(p.login) for p in PEOPLE}
    hanh = people["hanh"]
    if hanh is None:
        raise WorkflowError("demo person hanh is missing: run `flask demo` first")
    number = service.create_draft(hanh, school_year="2024-2025", **content).number
    steps: list[tuple[str, str, dict[str, object] | None]] = [
        ("submit", "hanh", None),
        ("forward", "long", None),
        ("approve", "toan", None),
        ("district_approve", "thanh", None),
    ]
    paid = {"voucher": "PC-2025-0999", "amount_paid_vnd": quantity * unit_price}
    steps.append(("pay", "mai", paid))
    for trigger, login, data in steps:
        clock.now += timedelta(hours=3)
        if clock.ceiling is not None and clock.now > clock.ceiling:
            clock.now = clock.ceiling
        if data is not None:
            data = {**data, "paid_on": clock.now.date().isoformat()}
        user = people[login]
        if user is None:
            raise WorkflowError(f"demo person {login} is missing: run `flask demo` first")
        try:
            with session.begin_nested():
                service.act(number, trigger, user, DEMO_SECRET, data=data)
        except WorkflowError:
            break
    return service.current(number).state


MONEY_TARGETS = ("forwarded", "approved", "paid")


def _content(
    template: tuple[str, str, int | tuple[int, int], str], year: int, rng: random.Random
) -> dict[str, object]:
    line, title, amount, source = template
    # NOTE: a demo run later than the 2024-2025 school year still charges that year's budget.
    year = year if year in DEMO_BUDGET_YEARS else DEMO_BUDGET_YEARS[-1]
    content: dict[str, object] = {
        "title": title,
        "line": line,
        "source": source,
        "budget_year": year,
        "description": "Theo kế hoạch ứng dụng CNTT, chuyển đổi số năm học 2024-2025.",
        "attachments": [
            {"name": f"bao-gia-{i + 1}.pdf", "sha256": f"{rng.getrandbits(256):064x}"}
            for i in range(2)
        ],
    }
    if isinstance(amount, tuple):
        quantity = max(1, amount[0] - rng.randint(0, amount[0] // 4))
        content.update(quantity=quantity, unit_price_vnd=amount[1], amount_vnd=quantity * amount[1])
    else:
        value = amount if line != "PRINT" else rng.randrange(150_000, 500_001, 10_000)
        content.update(amount=value, amount_vnd=value, quantity=1, unit_price_vnd=value)
    return content


def _one_request(
    runtime: Runtime, session: Session, clock: DemoClock, rng: random.Random, target: str
) -> str:
    service = runtime.service(session, clock=clock)
    people = {p.login: service.directory.get_user(p.login) for p in PEOPLE}
    proposer_login = rng.choices(["hanh", "nga", "long"], weights=[45, 45, 10])[0]
    if target in MONEY_TARGETS or target in ("returned", "rejected"):
        proposer_login = rng.choice(
            ["hanh", "nga"]
        )  # Long's own requests wait for another reviewer
    templates = list(TEMPLATES)
    rng.shuffle(templates)
    content = _content(templates[0], clock.now.year, rng)
    if target != "draft":
        fitting = (_content(t, clock.now.year, rng) for t in templates)
        content = next((c for c in fitting if service.budget_refusal("2024-2025", c) is None), {})
        if not content:  # the year's budget is spent: a small printing job, turned down
            target = "rejected" if target in MONEY_TARGETS else target
            content = _content(TEMPLATES[4], clock.now.year, rng)
    content.pop("amount_vnd")
    if content["line"] in ("LMS", "TRAINER", "ENETVIET"):
        content.pop("amount", None)
    else:
        content.pop("quantity")
        content.pop("unit_price_vnd")
    proposer = people[proposer_login]
    if proposer is None:
        raise WorkflowError(f"demo person {proposer_login} is missing: run `flask demo` first")
    number = service.create_draft(proposer, school_year="2024-2025", **content).number
    if target == "draft":
        return "draft"

    def step(
        trigger: str, actor: str, comment: str | None = None, data: dict[str, object] | None = None
    ) -> bool:
        clock.advance()
        user = people[actor]
        if user is None:
            raise WorkflowError(f"demo person {actor} is missing: run `flask demo` first")
        try:
            with session.begin_nested():
                service.act(number, trigger, user, DEMO_SECRET, comment=comment, data=data)
        except WorkflowError:
            return False
        return True

    plan: list[Callable[[], bool]] = [lambda: step("submit", proposer_login)]
    if target == "withdrawn":
        plan.append(lambda: step("withdraw", proposer_login, "Không còn nhu cầu."))
    elif target == "returned":
        plan.append(lambda: step("return", "long", "Thiếu báo giá thứ hai."))
    elif target == "rejected":
        plan.append(
            lambda: step("reject", "long", "Vượt định mức hoặc hết phân bổ của dòng ngân sách.")
        )
    elif target in MONEY_TARGETS:
        plan.append(lambda: step("forward", "long", "Hợp lý."))
    if target in ("approved", "paid"):
        plan.append(lambda: step("approve", "toan"))
    if target == "paid":
        plan.append(
            lambda: step(
                "pay",
                "mai",
                data={
                    "voucher": f"PC-{clock.now.year}-{rng.randint(1, 9999):04d}",
                    "paid_on": clock.now.date().isoformat(),
                    "amount_paid_vnd": (service.current(number).projection or {})["amount_vnd"],
                },
            )
        )
    for action in plan:
        if not action():
            break
    return service.current(number).state
