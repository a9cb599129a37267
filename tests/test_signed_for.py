"""Wherever an approval appears, an approval signed for the principal reads "KT. HIỆU TRƯỞNG /
PHÓ HIỆU TRƯỞNG Nguyễn Văn Long" (issue 15): the ledger's CSV and XLSX, the PDF payment form, the
mails and the timeline. And who may receive a mandate is refused in the service, not only in
the web form."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import pytest
from openpyxl import load_workbook

from expense_audit.mandates import MandateRefused
from workflow import queries
from workflow.ledger import LedgerFilter, rows_from_database, write_csv, write_xlsx

from .conftest import SteppingClock
from .factories import SECRET, School, pay_data
from .test_district_approval import to_district
from .test_mandates import KT_TO_LONG, _sign_as, at, forwarded_by, grant, verify
from .test_payment_form import _form_text

KT_LINE = "KT. HIỆU TRƯỞNG / PHÓ HIỆU TRƯỞNG Nguyễn Văn Long"
REASON = (
    "administrators and auditors do not sign in the approval chain, and a delegate holds a role "
    "in the chain."
)


@pytest.fixture
def approved_for_toan(school: School, clock: SteppingClock) -> str:
    """Toàn is away 10–21/03 with a KT. mandate to Long; Long approves what Dung forwarded and
    Mai pays it."""
    at(clock, date(2025, 3, 7))
    grant(school, "toan", **KT_TO_LONG)
    number = forwarded_by(school, "dung")
    at(clock, date(2025, 3, 12))
    school.act(number, "approve", "long")
    school.act(number, "pay", "mai", data=pay_data(paid_on="2025-03-12"))
    return number


def _ledger(school: School) -> list[dict[str, Any]]:
    with school.runtime.transaction() as session:
        return list(rows_from_database(session, LedgerFilter(), school.runtime.definitions))


def test_ledger_csv_names_the_deputy_who_signed_for_the_principal(
    school: School, clock: SteppingClock, approved_for_toan: str
) -> None:
    """The CSV's "Ký duyệt thay" cell of the request reads the KT. line; the others stay empty."""
    # approved by Toàn himself, back from his training
    at(clock, date(2025, 3, 24))
    plain = school.to_state("approved", line="WEB", amount="2.400.000", title="Tên miền")
    out = io.StringIO()
    write_csv(_ledger(school), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue().lstrip("\ufeff"))))
    by_number = {row["Số đề xuất"]: row for row in rows}
    assert by_number[approved_for_toan]["Ký duyệt thay"] == KT_LINE
    assert by_number[approved_for_toan]["Người duyệt"] == "long"
    assert by_number[plain]["Ký duyệt thay"] == ""


def test_ledger_xlsx_names_the_deputy_who_signed_for_the_principal(
    school: School, approved_for_toan: str
) -> None:
    out = io.BytesIO()
    write_xlsx(_ledger(school), out)
    sheet = load_workbook(io.BytesIO(out.getvalue()), read_only=True).active
    assert sheet is not None
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    header = rows[0]
    found = [r for r in rows[1:] if r[header.index("Số đề xuất")] == approved_for_toan]
    assert found[0][header.index("Ký duyệt thay")] == KT_LINE


def test_payment_form_prints_kt_principal_deputy_above_the_signer(
    school: School, approved_for_toan: str
) -> None:
    """The principal's place on the PDF: "KT. HIỆU TRƯỞNG", "PHÓ HIỆU TRƯỞNG", then Long's name."""
    text, _pdf = _form_text(school, approved_for_toan)
    place = text[text.index("THỦ TRƯỞNG ĐƠN VỊ") :]
    kt, deputy, name = (
        place.index(s) for s in ("KT. HIỆU TRƯỞNG", "PHÓ HIỆU TRƯỞNG", "Nguyễn Văn Long")
    )
    assert kt < deputy < name
    assert "Nguyễn Văn Toàn" not in place


def test_timeline_and_mails_carry_the_kt_line(school: School, approved_for_toan: str) -> None:
    with school.runtime.transaction() as session:
        steps = queries.timeline(session, approved_for_toan)
    [approval] = [s for s in steps if s.action == "approve"]
    assert approval.signed_as == KT_LINE
    to_mai = [m for m in school.mails() if m.request == approved_for_toan and m.recipient == "mai"]
    assert to_mai and all(KT_LINE in m.body_text for m in to_mai[:1])
    assert verify(school) == []


def test_payment_form_of_a_large_request_has_the_districts_signature_place(
    school: School,
) -> None:
    """A request that took the district step prints Thành's approval at its own place."""
    number = to_district(school)
    school.act(number, "district_approve", "thanh")
    text = " ".join(_form_text(school, number)[0].split())  # a narrow place wraps its title
    assert "PHÒNG TÀI CHÍNH – KẾ HOẠCH" in text
    assert "Đỗ Văn Thành" in text
    small = school.to_state("approved")
    assert "PHÒNG TÀI CHÍNH" not in _form_text(school, small)[0]


# --- Who may receive a mandate, refused in the service -------------------------------------------


def _grant_to(school: School, delegator: str, delegate: str, **extra: Any) -> None:
    with school.runtime.transaction() as session:
        service = school.runtime.service(session)
        user = service.directory.get_user(delegator)
        assert user is not None
        service.mandates.grant(user, SECRET, **{**KT_TO_LONG, "delegate": delegate, **extra})


@pytest.mark.parametrize("delegate", ["admin", "kiem", "thanh"])
def test_mandate_to_admin_auditor_or_district_officer_is_refused_by_the_service(
    school: School, clock: SteppingClock, delegate: str
) -> None:
    """Toàn cannot make the admin, the inspector or the district officer sign for him: their roles
    are not among the definition's [mandates] receivers. Nothing is written."""
    at(clock, date(2025, 3, 7))
    number = school.draft()
    before = school.snapshot(number)
    with pytest.raises(MandateRefused, match="không thể nhận ủy quyền") as refused:
        _grant_to(school, "toan", delegate)
    assert refused.value.problem == "mandate-invalid"
    assert school.snapshot(number) == before
    with school.runtime.transaction() as session:
        assert school.runtime.service(session).mandates.held_by(delegate) == []


def test_tuq_holder_cannot_pass_the_payment_mandate_on(
    school: School, clock: SteppingClock
) -> None:
    """Mai pays under a TUQ. mandate of the chief accountant; she cannot hand it on to Hạnh."""
    with school.runtime.transaction() as session:
        directory = school.runtime.directory(session)
        directory.create_user(
            login="thu",
            name="Lê Thị Thu",
            email="thu@th-demo.edu.vn",
            roles=("accountant",),
            password="demo-2024-thu",
            signing_secret=SECRET,
        )
        mai = directory.get_user("mai")
        assert mai is not None
        directory.set_roles(mai, ("proposer",), by="setup")
    at(clock, date(2025, 3, 3))
    tuq = {
        "role": "accountant",
        "kind": "TUQ",
        "valid_from": date(2025, 3, 3),
        "valid_to": date(2025, 3, 31),
    }
    _grant_to(school, "thu", "mai", **tuq)
    with pytest.raises(MandateRefused) as refused:
        _grant_to(school, "mai", "hanh", **tuq)
    assert refused.value.problem == "mandate-redelegated"
    with school.runtime.transaction() as session:
        assert school.runtime.service(session).mandates.held_by("hanh") == []


def test_verifier_catches_a_mandate_to_the_auditor_the_server_let_through(
    school: School, clock: SteppingClock
) -> None:
    """Toàn signs a KT. mandate to Kiểm, the district inspector, and a server without the check
    records it: the verifier names the grant."""
    at(clock, date(2025, 3, 7))
    data = {
        "delegator": "toan",
        "delegate": "kiem",
        "role": "approver",
        "kind": "KT",
        "from": "2025-03-10",
        "to": "2025-03-21",
        "lines": [],
        "max_amount_vnd": None,
    }
    seq = _sign_as(school, "toan", "mandate.grant", "approver", data)
    problems = [(kind, detail) for kind, detail in verify(school) if "kiem" in detail]
    assert problems == [
        ("mandate-invalid", f"mandate.grant by toan: kiem cannot receive a mandate: {REASON}")
    ], seq
