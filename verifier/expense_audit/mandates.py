"""Signing for someone: mandates ("KT." ký thay, "TUQ." thừa ủy quyền) and the rules of their use.

Nghị định 30/2020/NĐ-CP, Điều 13: the head of a body may let a deputy sign in their place ("KT.",
ký thay), or, by a written mandate limited in time, let someone sign on their behalf ("TUQ.",
thừa ủy quyền); whoever signs under a TUQ. mandate may not pass it on.

A mandate is a v2 decision signed by the delegator with their own key: action ``mandate.grant``,
no request, ``role`` = the role delegated, ``data`` = the mandate (GRANT_FIELDS). It ends early by
a ``mandate.revoke`` decision of the same delegator naming it (``{"seq", "hash"}``). A step taken
under a mandate carries ``data.mandate = {"seq", "hash"}`` and the delegated role. The engine and
the verifier run the same checks below; a refusal names its problem kind (``MandateRefused.problem``,
the verifier's report kinds).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from .errors import Refusal
from .money import format_vnd

GRANT = "mandate.grant"
REVOKE = "mandate.revoke"
ACTIONS = (GRANT, REVOKE)
KT, TUQ = "KT", "TUQ"
KINDS = (KT, TUQ)
# Roles a person may hand over for a while; proposing is one's own, auditing is not delegated.
DELEGABLE_ROLES = ("reviewer", "approver", "accountant")
# Roles whose holders never receive a mandate, whatever a definition says.
NEVER_RECEIVE = ("admin", "auditor")
GRANT_FIELDS = ("delegator", "delegate", "role", "kind", "from", "to", "lines", "max_amount_vnd")
REF_FIELDS = ("seq", "hash")
MAX_DAYS = 366  # a mandate is limited in time (Điều 13 khoản 3); at most a year at once
MAX_LINES = 50
# NOTE: mandates are dated in the school's local time; Vietnam keeps UTC+7 all year.
LOCAL_OFFSET = timedelta(hours=7)
_LINE_PATTERN = re.compile(r"[A-Z][A-Z0-9-]*\*?")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_LOGIN = re.compile(r"[A-Za-z0-9._-]{1,64}")

# Problem kinds (the verifier's report.Kind values).
UNKNOWN = "mandate-unknown"
INVALID = "mandate-invalid"
EXPIRED = "mandate-expired"
REVOKED = "mandate-revoked"
OUT_OF_SCOPE = "mandate-out-of-scope"
REDELEGATED = "mandate-redelegated"
NOT_BY_DELEGATOR = "mandate-not-by-delegator"


class MandateRefused(Refusal):
    """A mandate cannot be granted, revoked or used as asked; ``problem`` names why."""

    code = "mandate_refused"

    def __init__(self, message: str, *, en: str, problem: str, **details: Any) -> None:
        super().__init__(message, en=en, problem=problem, **details)


@dataclass
class Mandate:
    """A granted mandate as the log holds it (``seq`` and ``hash`` of its grant event)."""

    seq: int
    hash: str
    delegator: str
    delegate: str
    role: str
    kind: str
    valid_from: date
    valid_to: date
    lines: tuple[str, ...] = ()  # empty: every budget line; "SW-*": every line starting "SW-"
    max_amount_vnd: int | None = None
    revoked_seq: int | None = None

    @property
    def ref(self) -> dict[str, Any]:
        """What a step under this mandate records in its data."""
        return {"seq": self.seq, "hash": self.hash}

    def covers_line(self, line: str) -> bool:
        """Whether the mandate reaches this budget line."""
        if not self.lines:
            return True
        return any(line.startswith(p[:-1]) if p.endswith("*") else line == p for p in self.lines)

    def to_state(self) -> dict[str, Any]:
        """JSON-ready (the verifier's saved state)."""
        state = asdict(self)
        state.update(
            valid_from=self.valid_from.isoformat(),
            valid_to=self.valid_to.isoformat(),
            lines=list(self.lines),
        )
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Mandate:
        """Inverse of to_state (raises KeyError/TypeError/ValueError when malformed)."""
        return cls(
            seq=int(state["seq"]),
            hash=str(state["hash"]),
            delegator=str(state["delegator"]),
            delegate=str(state["delegate"]),
            role=str(state["role"]),
            kind=str(state["kind"]),
            valid_from=date.fromisoformat(state["valid_from"]),
            valid_to=date.fromisoformat(state["valid_to"]),
            lines=tuple(str(p) for p in state["lines"]),
            max_amount_vnd=None
            if state["max_amount_vnd"] is None
            else int(state["max_amount_vnd"]),
            revoked_seq=None if state["revoked_seq"] is None else int(state["revoked_seq"]),
        )


_TS_ASCII = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def local_date(ts: str | datetime) -> date:
    """The school's calendar date of a UTC moment (an event's ts, or the engine's clock)."""
    if isinstance(ts, str):
        # NOTE: the strict ASCII form goes through fromisoformat (strptime costs ~50 µs, a
        # visible share of a replayed step); anything else keeps strptime's own reading.
        if _TS_ASCII.fullmatch(ts):
            moment = datetime.fromisoformat(ts[:-1])
        else:
            moment = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")
    else:
        moment = ts
    return (moment.replace(tzinfo=None) + LOCAL_OFFSET).date()


def _invalid(vi: str, en: str, problem: str = INVALID, **details: Any) -> MandateRefused:
    return MandateRefused(vi, en=en, problem=problem, **details)


def check_ref(value: Any) -> dict[str, Any]:
    """A reference to a grant event: exactly ``{"seq": positive int, "hash": 64 hex}``."""
    if (
        not isinstance(value, Mapping)
        or set(value) != set(REF_FIELDS)
        or type(value["seq"]) is not int
        or not 1 <= value["seq"] <= 2**53 - 1
        or not isinstance(value["hash"], str)
        or not _HEX64.fullmatch(value["hash"])
    ):
        raise _invalid(
            "Tham chiếu giấy ủy quyền không hợp lệ.",
            "The mandate reference is malformed.",
            UNKNOWN,
        )
    return {"seq": value["seq"], "hash": value["hash"]}


def parse_grant(data: Any, *, seq: int, event_hash: str) -> Mandate:
    """The mandate a grant's data describes, its fields checked (not yet who may grant it)."""
    if not isinstance(data, Mapping) or set(data) != set(GRANT_FIELDS):
        raise _invalid(
            "Giấy ủy quyền thiếu hoặc thừa thông tin.",
            f"A mandate has exactly the fields {list(GRANT_FIELDS)}.",
        )
    for name in ("delegator", "delegate"):
        if not isinstance(data[name], str) or not _LOGIN.fullmatch(data[name]):
            raise _invalid(
                "Người ủy quyền hoặc người được ủy quyền không hợp lệ.",
                f"The mandate's {name} is not a login.",
            )
    if data["role"] not in DELEGABLE_ROLES:
        raise _invalid(
            f"Không ủy quyền được vai trò «{data['role']}».",
            f"The role {data['role']!r} cannot be delegated.",
        )
    if data["kind"] not in KINDS:
        raise _invalid("Loại ủy quyền phải là KT. hoặc TUQ.", "The kind must be KT or TUQ.")
    if data["kind"] == KT and data["role"] != "approver":
        raise _invalid(
            "Ký thay (KT.) chỉ dành cho việc ký thay hiệu trưởng (vai trò duyệt chi).",
            "KT. (signing in the head's place) is only for the approver's role.",
        )
    try:
        start, end = date.fromisoformat(data["from"]), date.fromisoformat(data["to"])
    except (TypeError, ValueError):
        raise _invalid(
            "Ngày ủy quyền không hợp lệ.", "The mandate's dates are not valid."
        ) from None
    if end < start or (end - start).days >= MAX_DAYS:
        raise _invalid(
            f"Thời hạn ủy quyền phải từ 1 đến {MAX_DAYS} ngày, ngày kết thúc sau ngày bắt đầu.",
            f"A mandate lasts 1 to {MAX_DAYS} days and ends after it starts.",
        )
    lines = data["lines"]
    if (
        not isinstance(lines, list)
        or len(lines) > MAX_LINES
        or not all(isinstance(p, str) and _LINE_PATTERN.fullmatch(p) for p in lines)
    ):
        raise _invalid(
            "Dòng ngân sách được ủy quyền không hợp lệ (ví dụ SW-* hoặc WEB).",
            "The mandate's budget lines are not valid (for example SW-* or WEB).",
        )
    cap = data["max_amount_vnd"]
    if cap is not None and (type(cap) is not int or not 0 < cap <= 2**53 - 1):
        raise _invalid(
            "Số tiền tối đa của ủy quyền phải là số nguyên dương.",
            "The mandate's maximum amount must be a positive whole number.",
        )
    return Mandate(
        seq=seq,
        hash=event_hash,
        delegator=data["delegator"],
        delegate=data["delegate"],
        role=data["role"],
        kind=data["kind"],
        valid_from=start,
        valid_to=end,
        lines=tuple(lines),
        max_amount_vnd=cap,
    )


def check_grant(
    mandate: Mandate,
    *,
    actor: str,
    role: str,
    actor_roles: Collection[str],
    actor_mandates: Collection[Mandate],
    on: date,
) -> None:
    """Who may grant this mandate: the delegator, signing for a role they hold themselves."""
    # 1. The person who signs is the delegator the mandate names.
    if actor != mandate.delegator:
        raise _invalid(
            f"Giấy ủy quyền của {mandate.delegator} phải do chính {mandate.delegator} ký.",
            f"A mandate of {mandate.delegator} must be signed by {mandate.delegator}, not {actor}.",
            NOT_BY_DELEGATOR,
        )
    if role != mandate.role:
        raise _invalid(
            "Vai trò ký khác vai trò được ủy quyền.",
            f"The decision's role {role!r} is not the delegated role {mandate.role!r}.",
        )
    # 2. A mandate is never passed on: what one holds by mandate cannot be delegated again.
    if mandate.role not in actor_roles:
        if any(m.role == mandate.role for m in actor_mandates):
            raise _invalid(
                "Người được ủy quyền không được ủy quyền lại cho người khác.",
                "Whoever acts under a mandate cannot delegate it again.",
                REDELEGATED,
            )
        raise _invalid(
            "Bạn không giữ vai trò này nên không ủy quyền được.",
            f"{actor} does not hold the role {mandate.role!r} and cannot delegate it.",
        )
    # 3. To someone else, and not for a period already over.
    if mandate.delegate == mandate.delegator:
        raise _invalid("Không tự ủy quyền cho chính mình.", "Nobody delegates to themselves.")
    if mandate.valid_to < on:
        raise _invalid("Thời hạn ủy quyền đã qua.", "The mandate's period is already over.")


def check_delegate(
    mandate: Mandate,
    *,
    name: str,
    delegate_roles: Collection[str],
    receivers: Collection[str] | None = None,
) -> None:
    """Who may receive a mandate: never an admin or an auditor (they do not sign in the chain);
    with ``receivers`` (the workflow definition's [mandates] receivers), a holder of one of them.
    """
    held = set(delegate_roles)
    allowed = None if receivers is None else set(receivers) - set(NEVER_RECEIVE)
    if held & set(NEVER_RECEIVE) or (allowed is not None and not held & allowed):
        raise _invalid(
            f"{name} không thể nhận ủy quyền: quản trị viên và thanh tra không ký trong quy "
            "trình duyệt chi, và người nhận phải giữ một vai trò trong quy trình.",
            f"{name} cannot receive a mandate: administrators and auditors do not sign in the "
            "approval chain, and a delegate holds a role in the chain.",
            delegate=mandate.delegate,
            allowed=sorted(allowed) if allowed is not None else None,
        )


def check_revoke(mandate: Mandate, *, actor: str) -> None:
    """Only the delegator ends a mandate early, and only once."""
    if actor != mandate.delegator:
        raise _invalid(
            "Chỉ người ủy quyền mới được thu hồi ủy quyền.",
            f"Only {mandate.delegator} may revoke this mandate, not {actor}.",
            NOT_BY_DELEGATOR,
        )
    if mandate.revoked_seq is not None:
        raise _invalid("Ủy quyền này đã bị thu hồi.", "This mandate is already revoked.", REVOKED)


def check_use(
    mandate: Mandate,
    *,
    actor: str,
    role: str,
    on: date,
    line: str,
    amount_vnd: int,
    delegator_roles: Collection[str],
) -> None:
    """May ``actor`` act as ``role`` under ``mandate`` on ``on`` for this line and amount?"""
    # 1. The mandate is the actor's own, for this role, from a delegator who still holds it.
    if actor != mandate.delegate or role != mandate.role:
        raise _invalid(
            "Giấy ủy quyền này không trao vai trò này cho bạn.",
            f"This mandate gives {mandate.role!r} to {mandate.delegate}, not {role!r} to {actor}.",
            OUT_OF_SCOPE,
        )
    if mandate.role not in delegator_roles:
        raise _invalid(
            "Người ủy quyền không còn giữ vai trò đã ủy quyền.",
            f"{mandate.delegator} no longer holds the delegated role {mandate.role!r}.",
            OUT_OF_SCOPE,
        )
    # 2. Not revoked, and within its dates.
    if mandate.revoked_seq is not None:
        raise _invalid(
            "Ủy quyền đã bị người ủy quyền thu hồi.",
            f"The mandate was revoked at event {mandate.revoked_seq}.",
            REVOKED,
        )
    if not mandate.valid_from <= on <= mandate.valid_to:
        period = f"{mandate.valid_from:%d/%m/%Y}–{mandate.valid_to:%d/%m/%Y}"
        raise _invalid(
            f"Ủy quyền chỉ có hiệu lực {period}; hôm nay là {on:%d/%m/%Y}.",
            f"The mandate is valid {period} only; today is {on:%d/%m/%Y}.",
            EXPIRED,
        )
    # 3. Within its scope: the budget lines and the amount it names.
    if not mandate.covers_line(line):
        raise _invalid(
            f"Ủy quyền chỉ áp dụng cho các dòng {', '.join(mandate.lines)}, không có «{line}».",
            f"The mandate covers the lines {', '.join(mandate.lines)} only, not {line!r}.",
            OUT_OF_SCOPE,
        )
    if mandate.max_amount_vnd is not None and amount_vnd > mandate.max_amount_vnd:
        raise _invalid(
            f"Ủy quyền chỉ đến {format_vnd(mandate.max_amount_vnd)}; "
            f"khoản này là {format_vnd(amount_vnd)}.",
            f"The mandate reaches {format_vnd(mandate.max_amount_vnd)} at most; "
            f"this is {format_vnd(amount_vnd)}.",
            OUT_OF_SCOPE,
        )


def acting_for(
    mandates: Iterable[Mandate],
    *,
    actor: str,
    roles: Collection[str],
    on: date,
    delegator_roles: Callable[[str], Collection[str]],
) -> Mandate | None:
    """The live mandate by which ``actor`` acts for one of ``roles`` on ``on``, if any.

    A transition's ``not_while_acting_for`` names those roles: the deputy signing for the
    principal does not also review, so one person never both forwards and approves.
    """
    for mandate in mandates:
        if (
            mandate.delegate == actor
            and mandate.role in roles
            and mandate.revoked_seq is None
            and mandate.valid_from <= on <= mandate.valid_to
            and mandate.role in delegator_roles(mandate.delegator)
        ):
            return mandate
    return None
