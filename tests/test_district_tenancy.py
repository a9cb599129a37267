"""Many schools in one PostgreSQL database (issue 16): each school's log, users and pages are its own.

Two schools, alpha and beta, with the same demo people and the same request numbering: whatever a
person of one school guesses (numbers, URLs, cookies), nothing of the other school answers.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from workflow.audit import lock_head
from workflow.bundle import attachment_path
from workflow.db import make_engine
from workflow.models import AuditEvent, Request, User
from workflow.signin import Limits, LoginThrottled
from workflow.tenancy import District, TenancyError

from .district import (
    INSPECTOR_PASSWORD,
    SchoolBrowser,
    deployment,
    district_app,
    needs_postgres,
)
from .factories import SECRET, School

pytestmark = needs_postgres

BETA_TITLE = "Mua máy chiếu phòng họp trường Beta"


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Iterator[District]:
    with deployment(tmp_path_factory.mktemp("district")) as made:
        made.create_user(
            login="thanhtra",
            name="Thanh tra Phòng",
            role="district_inspector",
            password=INSPECTOR_PASSWORD,
        )
        made.grant("thanhtra", "beta")
        yield made


@pytest.fixture(scope="module")
def app(district: District, tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return district_app(district, tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def beta_request(district: District, app: Flask) -> str:
    """A request of beta's, submitted, with a real attachment file on beta's disk."""
    content = b"%PDF-1.4 beta quote"
    import hashlib

    sha = hashlib.sha256(content).hexdigest()
    folder = Path(app.config["ATTACHMENTS_DIR"]) / "beta" / "attachments"
    path = attachment_path(folder, sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    beta = School(district.runtime("beta"))
    number = beta.draft(
        title=BETA_TITLE,
        attachments=[{"name": "bao-gia-beta.pdf", "sha256": sha, "type": "application/pdf"}],
    )
    beta.act(number, "submit", "hanh")
    return number


@pytest.fixture(scope="module")
def alpha_request(district: District) -> str:
    """A request of alpha's (it gets the same number as beta's: each school numbers its own)."""
    alpha = School(district.runtime("alpha"))
    number = alpha.draft(title="Gia hạn phần mềm trường Alpha")
    alpha.act(number, "submit", "hanh")
    return number


def _events(district: District, code: str) -> int:
    with district.runtime(code).transaction() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


# --- the database: one schema per school ----------------------------------------------------


def test_each_school_has_its_own_log_head_and_numbering(
    district: District, alpha_request: str, beta_request: str
) -> None:
    assert alpha_request == beta_request  # the same number, two different requests
    with district.runtime("alpha").transaction() as session:
        alpha_title = session.get(Request, alpha_request).title  # type: ignore[union-attr]
        origin = session.execute(text("SELECT origin FROM log_head")).scalar_one()
    assert alpha_title != BETA_TITLE
    assert origin == "th-alpha.edu.vn/expenses"


def test_raw_sql_of_a_school_session_stays_in_its_schema(
    district: District, beta_request: str
) -> None:
    with district.runtime("alpha").transaction() as session:
        titles = session.execute(text("SELECT title FROM requests")).scalars().all()
    assert BETA_TITLE not in titles


def test_a_connection_without_a_school_finds_no_school_table(district: District) -> None:
    with district.engine.connect() as connection, pytest.raises(DBAPIError, match="audit_events"):
        connection.execute(text("SELECT count(*) FROM audit_events"))


def test_school_b_append_completes_while_school_a_head_is_locked(tmp_path: Path) -> None:
    # NOTE: a lock timeout instead of threads and clocks: alpha's own append is refused at once
    # (its head is locked), beta's goes through on the same pool meanwhile.
    with deployment(tmp_path, connect_args={"options": "-c lock_timeout=300"}) as made:
        alpha, beta = School(made.runtime("alpha")), School(made.runtime("beta"))
        waiting, going = alpha.draft(), beta.draft()
        before = _events(made, "beta"), _events(made, "alpha")
        with alpha.runtime.transaction() as holder:
            lock_head(holder)
            beta.act(going, "submit", "hanh")
            with pytest.raises(OperationalError, match="lock timeout"):
                alpha.act(waiting, "submit", "hanh")
        assert (_events(made, "beta"), _events(made, "alpha")) == (before[0] + 1, before[1])
        assert beta.request(going).state == "submitted"  # type: ignore[union-attr]


def test_two_schools_may_not_share_an_origin_or_a_code(district: District) -> None:
    with pytest.raises(TenancyError, match="origin"):
        district.add_school(
            "gamma",
            name="Gamma",
            origin="th-alpha.edu.vn/expenses",
            admin_login="quantri",
            admin_email="a@th-gamma.edu.vn",
        )
    with pytest.raises(TenancyError, match="exists already"):
        district.add_school(
            "alpha",
            name="Alpha 2",
            origin="th-alpha2.edu.vn/expenses",
            admin_login="quantri",
            admin_email="a@th-alpha2.edu.vn",
        )
    with pytest.raises(TenancyError, match="lower-case"):
        district.new_record('x"; drop schema district; --', name="X", origin="x.vn/e")


# --- the web: a person of alpha reaches nothing of beta --------------------------------------


def test_alpha_user_guessing_beta_request_number_sees_alpha_request_only(
    app: Flask, alpha_request: str, beta_request: str
) -> None:
    browser = SchoolBrowser(app, "/s/alpha").login("toan")
    page = browser.get(f"/requests/{beta_request}").get_data(as_text=True)
    assert BETA_TITLE not in page and "Alpha" in page


def test_alpha_session_is_not_signed_in_at_beta(app: Flask, beta_request: str) -> None:
    alpha = SchoolBrowser(app, "/s/alpha").login("toan")
    beta = alpha.at("/s/beta")
    for path in (f"/requests/{beta_request}", "/ledger.csv", "/audit", "/admin/users"):
        response = beta.get(path)
        assert response.status_code == 302 and "/s/beta/login" in response.headers["Location"]


def test_alpha_session_cookie_copied_into_beta_cookie_is_refused(
    app: Flask, beta_request: str
) -> None:
    alpha = SchoolBrowser(app, "/s/alpha").login("toan")
    stolen = alpha.client.get_cookie("session_alpha", path="/s/alpha/")
    assert stolen is not None
    alpha.client.set_cookie("session_beta", stolen.value, path="/s/beta/")
    response = alpha.at("/s/beta").get(f"/requests/{beta_request}")
    assert response.status_code == 302 and "/s/beta/login" in response.headers["Location"]


def test_alpha_user_cannot_act_on_beta_request(
    district: District, app: Flask, beta_request: str
) -> None:
    before = _events(district, "beta")
    alpha = SchoolBrowser(app, "/s/alpha").login("long")
    beta = alpha.at("/s/beta")
    beta.token = alpha.token  # alpha's CSRF token, replayed at beta
    response = beta.post(f"/requests/{beta_request}/act", {"trigger": "forward", "secret": SECRET})
    assert response.status_code in (302, 400)
    assert _events(district, "beta") == before


def test_alpha_user_cannot_fetch_beta_attachment(
    district: District, app: Flask, alpha_request: str, beta_request: str
) -> None:
    with district.runtime("beta").transaction() as session:
        beta = session.get(Request, beta_request)
        assert beta is not None
        sha = [a["sha256"] for a in beta.attachments if a["name"] == "bao-gia-beta.pdf"][0]
    owner = SchoolBrowser(app, "/s/beta").login("hanh")
    download = owner.get(f"/requests/{beta_request}/attachments/{sha}")
    data = download.get_data()
    download.close()
    assert download.status_code == 200 and data.startswith(b"%PDF")
    alpha = SchoolBrowser(app, "/s/alpha").login("hanh")
    assert alpha.get(f"/requests/{alpha_request}/attachments/{sha}").status_code == 404


def test_alpha_ledger_export_and_bundle_hold_nothing_of_beta(
    app: Flask, alpha_request: str, beta_request: str
) -> None:
    auditor = SchoolBrowser(app, "/s/alpha").login("kiem")
    ledger = auditor.get("/ledger.csv").get_data(as_text=True)
    assert BETA_TITLE not in ledger
    auditor.get("/audit")
    bundle = auditor.post("/audit/bundle.zip")
    data = bundle.get_data()
    bundle.close()
    assert bundle.status_code == 200
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        everything = b"".join(archive.read(name) for name in archive.namelist())
    assert b"th-alpha.edu.vn/expenses" in everything
    assert BETA_TITLE.encode() not in everything and b"th-beta.edu.vn" not in everything


def test_school_pages_links_and_cookies_stay_under_its_prefix(app: Flask) -> None:
    browser = SchoolBrowser(app, "/s/alpha")
    response = browser.get("/login")
    page = response.get_data(as_text=True)
    assert 'href="/s/alpha/static/style.css' in page
    assert '<meta name="app-root" content="/s/alpha">' in page
    worker = browser.get("/sw.js")
    script = worker.get_data(as_text=True)
    assert worker.headers["Service-Worker-Allowed"] == "/s/alpha/"
    assert 'const ROOT = "/s/alpha";' in script and '"/s/alpha/static/offline.html"' in script
    signed_in = browser.login("hanh")
    cookie = signed_in.client.get_cookie("session_alpha", path="/s/alpha/")
    assert cookie is not None and cookie.path == "/s/alpha/"


def test_installed_school_app_stays_in_its_school(app: Flask) -> None:
    """Installed from school A, the app's scope, start page and identity are A's alone: with
    "/" it opened the district page, kept other schools' pages in A's window, and installing
    school B's app replaced A's (one id for every school)."""
    client = app.test_client()
    alpha = client.get("/s/alpha/manifest.webmanifest").get_json(force=True)
    beta = client.get("/s/beta/manifest.webmanifest").get_json(force=True)
    assert (alpha["scope"], alpha["start_url"], alpha["id"]) == ("/s/alpha/",) * 3
    assert beta["id"] == "/s/beta/"


def test_each_school_is_ready_at_its_own_migration_head(app: Flask) -> None:
    client = app.test_client()
    for code in ("alpha", "beta"):
        response = client.get(f"/s/{code}/readyz")
        assert response.status_code == 200, response.get_json()


def test_unknown_school_is_not_found(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/s/nosuch/login").status_code == 404
    assert client.get("/s/ALPHA/login").status_code == 404


def test_school_mail_links_point_under_its_prefix(district: District) -> None:
    assert district.runtime("beta").settings.base_url == "https://pgd.example.vn/s/beta"


# --- the district: granted schools only, read-only -------------------------------------------


def test_district_inspector_sees_granted_schools_only(app: Flask, district: District) -> None:
    browser = SchoolBrowser(app, "/district")
    browser.get("/login")
    response = browser.post("/login", {"login": "thanhtra", "password": INSPECTOR_PASSWORD})
    assert response.status_code == 302
    page = browser.get("/").get_data(as_text=True)
    assert 'data-school="beta"' in page and 'data-school="alpha"' not in page
    assert "Các trường" in page  # Vietnamese by default
    headers = browser.get("/").headers
    assert (
        headers["X-Frame-Options"] == "DENY"
        and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    )
    assert [school.code for school in district.granted_schools("thanhtra")] == ["beta"]


def test_district_view_of_an_ungranted_school_is_not_found(app: Flask) -> None:
    from werkzeug.exceptions import NotFound

    from webapp.district import EPOCH_KEY, SESSION_KEY, granted_school_or_404

    with app.test_request_context("/district/"):
        from flask import session

        session[SESSION_KEY] = "thanhtra"
        session[EPOCH_KEY] = district_epoch(app, "thanhtra")
        assert granted_school_or_404("beta").code == "beta"
        for code in ("alpha", "nosuch"):
            with pytest.raises(NotFound):
                granted_school_or_404(code)


def district_epoch(app: Flask, login: str) -> int:
    user = app.extensions["district"].get_user(login)
    assert user is not None
    return int(user.session_epoch)


def test_district_cookie_replayed_after_sign_out_is_refused(app: Flask) -> None:
    """Signing out ends the session on the server: a copy of the cookie taken before (another
    tab, a shared computer, a thief) opens neither the school list nor the dashboard."""
    browser = SchoolBrowser(app, "/district")
    browser.get("/login")
    browser.post("/login", {"login": "thanhtra", "password": INSPECTOR_PASSWORD})
    assert browser.get("/").status_code == 200
    name, path = app.config["SESSION_COOKIE_NAME"], app.config["SESSION_COOKIE_PATH"] or "/"
    stolen = browser.client.get_cookie(name, path=path)
    assert stolen is not None
    browser.get("/")
    assert browser.post("/logout", {}).status_code == 302
    thief = app.test_client()
    thief.set_cookie(name, stolen.value, path=path)
    for page in ("/district/", "/district/dashboard", "/district/dashboard/beta"):
        response = thief.get(page)
        assert response.status_code in (302, 403, 404), page
        assert "thanhtra" not in response.get_data(as_text=True), page
    assert thief.get("/district/").headers["Location"].startswith("/district/login")
    again = SchoolBrowser(app, "/district")  # signing in again opens a new session
    again.get("/login")
    again.post("/login", {"login": "thanhtra", "password": INSPECTOR_PASSWORD})
    assert again.get("/").status_code == 200


def test_district_session_is_not_a_school_session(app: Flask) -> None:
    browser = SchoolBrowser(app, "/district")
    browser.get("/login")
    browser.post("/login", {"login": "thanhtra", "password": INSPECTOR_PASSWORD})
    response = browser.at("/s/beta").get("/ledger")
    assert response.status_code == 302 and "/s/beta/login" in response.headers["Location"]


def test_district_wrong_password_is_refused(app: Flask) -> None:
    browser = SchoolBrowser(app, "/district")
    browser.get("/login")
    response = browser.post("/login", {"login": "thanhtra", "password": "not-the-password"})
    assert response.status_code == 200
    assert browser.get("/").status_code == 302


def test_district_read_sessions_refuse_any_write(district: District) -> None:
    (beta,) = district.granted_schools("thanhtra")
    with beta.read_sessions() as session:
        assert session.scalar(select(func.count()).select_from(User)) > 0
        with pytest.raises(DBAPIError, match="read-only transaction"):
            session.execute(text("UPDATE users SET active = false"))


def test_district_reads_from_the_replica_engine_it_is_given(district: District) -> None:
    replica = make_engine(district.engine.url.render_as_string(hide_password=False))
    try:
        reading = District(district.settings, engine=district.engine, read_engine=replica)
        (beta,) = reading.granted_schools("thanhtra")
        assert beta.read_sessions.kw["bind"] is replica
        with beta.read_sessions() as session:
            assert session.scalar(text("SELECT origin FROM log_head")) == "th-beta.edu.vn/expenses"
    finally:
        replica.dispose()


def test_ungranted_or_unknown_district_login_sees_no_school(district: District) -> None:
    assert district.granted_schools("nobody") == []
    assert district.authenticate("nobody", INSPECTOR_PASSWORD, address="10.0.0.9") is None


def test_district_password_guessing_is_stopped_per_account(district: District) -> None:
    district.create_user(
        login="taichinh", name="Tài chính", role="district_finance", password=INSPECTOR_PASSWORD
    )
    limits = Limits(per_account=3, per_address=50)
    for _ in range(3):
        guess = district.authenticate("taichinh", "guess", address="10.0.0.7", limits=limits)
        assert guess is None
    with pytest.raises(LoginThrottled):  # even with the right password, from another address
        district.authenticate("taichinh", INSPECTOR_PASSWORD, address="10.0.0.8", limits=limits)


def test_a_schools_metrics_count_its_own_log_only(
    app: Flask, alpha_request: str, beta_request: str
) -> None:
    scraped = app.test_client().get("/s/alpha/metrics")
    assert scraped.status_code == 200
    body = scraped.get_data(as_text=True)
    assert 'origin="th-alpha.edu.vn/expenses"' in body
    assert "th-beta.edu.vn" not in body
