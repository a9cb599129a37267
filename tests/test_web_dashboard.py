"""The spending dashboard as the inspector reads it: figures that add up to the requests behind
them, pages that only read, refused to the school's staff, deputies and accountant; and the
district's view over two schools (two SQLite files), where a school not granted never shows."""

from __future__ import annotations

import csv
import io
import re

import pytest
from flask import Flask
from openpyxl import load_workbook

from expense_audit.money import format_vnd

from .factories import GrantedSchools, School, pay_data, source_of
from .web import Browser, text

MAIN = re.compile(r"<main>(.*)</main>", re.S)


def _spending(school: School) -> dict[str, str]:
    """On PRINT: one paid (300.000), one approved (450.000), one submitted (400.000); on WEB: one
    forwarded (2.000.000); one rejected and one withdrawn that count nowhere."""
    paid = school.to_state("approved", line="PRINT", amount="300.000")
    school.act(paid, "pay", "mai", data=pay_data(300_000))
    return {
        "paid": paid,
        "approved": school.to_state("approved", line="PRINT", amount="450.000"),
        "submitted": school.to_state("submitted", line="PRINT", amount="400.000"),
        "forwarded": school.to_state("forwarded", line="WEB", amount="2.000.000"),
        "rejected": school.to_state("rejected", line="PRINT", amount="200.000"),
        "withdrawn": school.to_state("withdrawn", line="PRINT", amount="100.000"),
    }


def _main(response_text: str) -> str:
    found = MAIN.search(response_text)
    assert found is not None
    return found.group(1)


def _posting_forms(page: str) -> list[str]:
    return re.findall(r"<form[^>]*method=\"?post", _main(page), re.I)


def test_the_inspector_sees_spent_and_in_flight_amounts_that_are_the_sums_of_the_requests(
    app: Flask, school: School
) -> None:
    numbers = _spending(school)
    kiem = Browser(app).login("kiem")
    assert 'href="/audit/dashboard"' in text(kiem.get("/audit"))
    thanh = Browser(app).login("thanh")  # the district finance officer, from his queue
    assert 'href="/audit/dashboard"' in text(thanh.get("/district"))
    page = kiem.get("/audit/dashboard")
    assert page.status_code == 200
    body = text(page)
    assert f'id="total-spent">{format_vnd(300_000)}' in body
    # in flight: 450.000 approved + 400.000 submitted + 2.000.000 forwarded
    assert f'id="total-committed">{format_vnd(2_850_000)}' in body
    assert body.count('role="img"') == 2  # spending per line, time per state
    assert "Đã chi 300.000 + đang xử lý 850.000 / 6.000.000 ₫" in body  # the PRINT bar
    line = text(kiem.get("/audit/dashboard/lines/PRINT"))
    assert f'id="line-spent">{format_vnd(300_000)}' in line
    assert f'id="line-committed">{format_vnd(850_000)}' in line
    for state in ("paid", "approved", "submitted", "rejected", "withdrawn"):
        assert numbers[state] in line
    assert numbers["forwarded"] not in line  # another line
    assert kiem.get(f"/requests/{numbers['approved']}").status_code == 200  # drill-down
    assert kiem.get("/audit/dashboard/lines/NO-SUCH-LINE").status_code == 404


def test_the_dashboard_shows_when_the_log_was_last_verified_and_the_result(
    app: Flask, school: School
) -> None:
    _spending(school)
    kiem = Browser(app).login("kiem")
    before = text(kiem.get("/audit/dashboard"))
    assert "chưa kiểm tra lần nào" in before  # never verified
    kiem.get("/audit")
    assert kiem.post("/audit/verify").status_code == 200
    after = _main(text(kiem.get("/audit/dashboard")))
    assert "✓ hợp lệ" in after and "chưa kiểm tra lần nào" not in after


def test_the_dashboard_speaks_english_when_asked(app: Flask, school: School) -> None:
    _spending(school)
    kiem = Browser(app).login("kiem")
    kiem.post("/language", {"language": "en"})
    body = text(kiem.get("/audit/dashboard"))
    assert "Spending dashboard" in body
    assert "Spent 300.000 + in flight 850.000 / 6.000.000 ₫" in body


@pytest.mark.parametrize(
    ("login", "status"),
    [
        ("hanh", 403),  # staff (proposer)
        ("long", 403),  # deputy principal (reviewer)
        ("dung", 403),  # second deputy
        ("mai", 403),  # accountant
        ("admin", 403),  # accounts and keys only
        ("kiem", 200),  # the inspector
        ("toan", 200),  # the principal, who answers for the spending
        ("thanh", 200),  # the district's finance officer
    ],
)
def test_the_dashboard_is_for_the_inspector_principal_and_district_finance_only(
    app: Flask, school: School, login: str, status: int
) -> None:
    person = Browser(app).login(login)
    for path in ("/audit/dashboard", "/audit/dashboard/lines/PRINT"):
        assert person.get(path).status_code == status, (login, path)


def test_in_a_single_school_deployment_there_is_no_district_view(
    app: Flask, school: School
) -> None:
    kiem = Browser(app).login("kiem")
    for path in ("/district/dashboard", "/district/ledger.csv", "/district/dashboard/a"):
        assert kiem.get(path).status_code == 404


@pytest.fixture
def district(app: Flask, school: School, second_school: School) -> dict[str, dict[str, str]]:
    """Two schools of one district: kiem is granted both, toan only the first."""
    first, second = _spending(school), {}
    second["paid"] = second_school.to_state(
        "approved", line="SW-IMAS", amount="1.700.000", title="Imas của trường B"
    )
    second_school.act(second["paid"], "pay", "mai", data=pay_data(1_700_000))
    a = source_of(school, "th-a", "Trường Tiểu học A")
    b = source_of(second_school, "th-b", "Trường Tiểu học B")
    app.extensions["district_access"] = GrantedSchools(
        {"kiem": [a, b], "toan": [a]}, school.runtime.now
    )
    return {"th-a": first, "th-b": second}


def test_the_district_sees_each_granted_school_and_drills_down_to_a_timeline(
    app: Flask, district: dict[str, dict[str, str]]
) -> None:
    kiem = Browser(app).login("kiem")
    overview = text(kiem.get("/district/dashboard"))
    assert "Trường Tiểu học A" in overview and "Trường Tiểu học B" in overview
    assert "Đã chi 1.700.000 + đang xử lý 0 / " in overview  # school B's bar
    school_b = text(kiem.get("/district/dashboard/th-b"))
    assert 'id="total-spent">' + format_vnd(1_700_000) in school_b
    line = text(kiem.get("/district/dashboard/th-b/lines/SW-IMAS"))
    number = district["th-b"]["paid"]
    assert f"/district/dashboard/th-b/requests/{number}" in line
    timeline = text(kiem.get(f"/district/dashboard/th-b/requests/{number}"))
    assert "Imas của trường B" in timeline
    assert timeline.count("<li>") == 4  # submit, forward, approve, pay
    # the same number in school A is A's own request, not B's
    same = text(kiem.get(f"/district/dashboard/th-a/requests/{number}"))
    assert "Imas của trường B" not in same


def test_the_district_ledger_has_a_school_column_and_only_granted_schools(
    app: Flask, district: dict[str, dict[str, str]]
) -> None:
    kiem = Browser(app).login("kiem")
    rows = list(csv.reader(io.StringIO(text(kiem.get("/district/ledger.csv")).lstrip("\ufeff"))))
    assert rows[0][:3] == ["Mã trường", "Trường", "Số đề xuất"]
    by_school = {(r[0], r[2]) for r in rows[1:-1]}
    assert by_school == {
        ("th-a", district["th-a"]["paid"]),
        ("th-a", district["th-a"]["approved"]),
        ("th-b", district["th-b"]["paid"]),
    }
    assert rows[-1][0] == "Tổng cộng"
    response = kiem.get("/district/ledger.xlsx")
    workbook = response.data
    response.close()
    sheet = load_workbook(io.BytesIO(workbook)).active
    assert sheet is not None
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert cells[0][0] == "Mã trường"
    assert {(r[0], r[2]) for r in cells[1:-1]} == by_school
    toan = Browser(app).login("toan")
    only_a = text(toan.get("/district/ledger.csv"))
    assert "th-b" not in only_a and "Trường Tiểu học B" not in only_a


def test_a_school_not_granted_is_not_found_and_someone_granted_none_is_refused(
    app: Flask, district: dict[str, dict[str, str]]
) -> None:
    toan = Browser(app).login("toan")
    overview = text(toan.get("/district/dashboard"))
    assert "Trường Tiểu học B" not in overview
    number = district["th-b"]["paid"]
    for path in (
        "/district/dashboard/th-b",
        "/district/dashboard/th-b/lines/SW-IMAS",
        f"/district/dashboard/th-b/requests/{number}",
    ):
        assert toan.get(path).status_code == 404, path
    hanh = Browser(app).login("hanh")
    assert hanh.get("/district/dashboard").status_code == 403
    assert hanh.get("/district/ledger.csv").status_code == 403


def test_the_dashboard_pages_only_read(app: Flask, district: dict[str, dict[str, str]]) -> None:
    kiem = Browser(app).login("kiem")
    number = district["th-a"]["paid"]
    for path in (
        "/audit/dashboard",
        "/audit/dashboard/lines/PRINT",
        "/district/dashboard",
        "/district/dashboard/th-a",
        "/district/dashboard/th-a/lines/PRINT",
        f"/district/dashboard/th-a/requests/{number}",
    ):
        page = kiem.get(path)
        assert page.status_code == 200, path
        assert _posting_forms(text(page)) == [], path
        assert kiem.post(path).status_code == 405, path
