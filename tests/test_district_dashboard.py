"""The district dashboard in the multi-school deployment (PostgreSQL): a district account reads the
schools it is granted, through their read-only sessions, and nothing of a school not granted."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest
from flask import Flask

from expense_audit.money import format_vnd
from workflow.tenancy import District

from .district import INSPECTOR_PASSWORD, SchoolBrowser, deployment, district_app, needs_postgres
from .factories import School, pay_data

pytestmark = needs_postgres


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Iterator[District]:
    """alpha and beta; the inspector is granted beta, the finance officer both."""
    with deployment(tmp_path_factory.mktemp("district")) as made:
        made.create_user(
            login="thanhtra",
            name="Thanh tra",
            role="district_inspector",
            password=INSPECTOR_PASSWORD,
        )
        made.create_user(
            login="taichinh", name="Tài chính", role="district_finance", password=INSPECTOR_PASSWORD
        )
        made.grant("thanhtra", "beta")
        made.grant("taichinh", "alpha")
        made.grant("taichinh", "beta")
        yield made


@pytest.fixture(scope="module")
def app(district: District, tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return district_app(district, tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def paid(district: District) -> dict[str, str]:
    """One paid request in each school: alpha 1.800.000 on SW-ASSET, beta 1.700.000 on SW-IMAS."""
    numbers = {}
    for code, line, amount in (("alpha", "SW-ASSET", 1_800_000), ("beta", "SW-IMAS", 1_700_000)):
        school = School(district.runtime(code))
        number = school.to_state(
            "approved", line=line, amount=format_vnd(amount), title=f"Phần mềm của {code}"
        )
        school.act(number, "pay", "mai", data=pay_data(amount))
        numbers[code] = number
    return numbers


def _signed_in(app: Flask, login: str) -> SchoolBrowser:
    browser = SchoolBrowser(app, "/district")
    browser.get("/login")
    assert (
        browser.post("/login", {"login": login, "password": INSPECTOR_PASSWORD}).status_code == 302
    )
    return browser


def test_the_inspector_reads_the_granted_school_down_to_a_timeline(
    app: Flask, paid: dict[str, str]
) -> None:
    browser = _signed_in(app, "thanhtra")
    assert "/district/dashboard" in browser.get("/").get_data(as_text=True)
    overview = browser.get("/dashboard").get_data(as_text=True)
    assert "Trường Tiểu học Beta" in overview and "Trường Tiểu học Alpha" not in overview
    assert "Đã chi 1.700.000 + đang xử lý 0 / " in overview
    school = browser.get("/dashboard/beta").get_data(as_text=True)
    assert 'id="total-spent">' + format_vnd(1_700_000) in school
    line = browser.get("/dashboard/beta/lines/SW-IMAS").get_data(as_text=True)
    assert f"/district/dashboard/beta/requests/{paid['beta']}" in line
    timeline = browser.get(f"/dashboard/beta/requests/{paid['beta']}").get_data(as_text=True)
    assert "Phần mềm của beta" in timeline and timeline.count("<li>") == 4
    for path in ("/dashboard/alpha", f"/dashboard/alpha/requests/{paid['alpha']}"):
        assert browser.get(path).status_code == 404, path
    rows = list(csv.reader(io.StringIO(browser.get("/ledger.csv").get_data(as_text=True))))
    assert {r[0] for r in rows[1:-1]} == {"beta"}


def test_the_finance_officer_exports_both_schools_ledgers_with_a_school_column(
    app: Flask, paid: dict[str, str]
) -> None:
    browser = _signed_in(app, "taichinh")
    text = browser.get("/ledger.csv").get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["Mã trường", "Trường", "Số đề xuất"]
    assert {(r[0], r[2]) for r in rows[1:-1]} == {("alpha", paid["alpha"]), ("beta", paid["beta"])}


def test_without_a_district_session_the_dashboard_is_refused(app: Flask) -> None:
    anonymous = SchoolBrowser(app, "/district")
    assert anonymous.get("/dashboard").status_code == 403
    assert anonymous.get("/ledger.csv").status_code == 403


def test_the_last_verification_of_a_school_shows_once_it_is_verified(
    app: Flask, district: District, paid: dict[str, str]
) -> None:
    browser = _signed_in(app, "thanhtra")
    before = browser.get("/dashboard/beta").get_data(as_text=True)
    assert "chưa kiểm tra lần nào" in before  # never verified
    runtime = district.runtime("beta")
    from workflow.livecheck import verify_live

    with runtime.transaction() as session:
        report = verify_live(
            session, institution=runtime.institution, now=runtime.now(), source="cli"
        )
    assert report.valid
    after = browser.get("/dashboard/beta").get_data(as_text=True)
    assert "✓ hợp lệ" in after
