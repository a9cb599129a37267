"""Attacks on the web app: each test is named after what the attacker tries."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from workflow.demo import DEMO_PASSWORD
from workflow.models import LoginAttempt
from workflow.runtime import Runtime

from .factories import School, pay_data
from .web import Browser, text

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200


def _node(runtime: Runtime, tmp_path: Path, **config: Any) -> Flask:
    """One more app node (its own engine and memory) on the same database."""
    from webapp import create_app

    return create_app(
        {
            "SETTINGS": runtime.settings,
            "CLOCK": runtime.clock,
            "TESTING": True,
            "ATTACHMENTS_DIR": str(tmp_path / "attachments"),
            "LOGIN_TRIES_PER_MINUTE": 10000,
            "LOGIN_WINDOW_MINUTES": 24 * 60,
            **config,
        }
    )


@pytest.fixture
def nodes(runtime: Runtime, school: School, tmp_path: Path) -> Iterator[list[Flask]]:
    apps = [_node(runtime, tmp_path), _node(runtime, tmp_path)]
    yield apps
    for app in apps:
        app.extensions["runtime"].dispose()


# --- open redirect ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/%09/evil.example",
        "/%0A/evil.example",
        "/%0D%0A/evil.example",
        "/\\evil.example",
        "//evil.example",
        "https://evil.example/",
        "/%5C/evil.example",
    ],
)
def test_next_parameter_cannot_send_a_signed_in_user_to_another_site(
    app: Flask, target: str
) -> None:
    browser = Browser(app)
    browser.get("/login")
    response = browser.post(f"/login?next={target}", {"login": "hanh", "password": "demo-2024"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/", response.headers["Location"]


def test_next_parameter_on_this_site_is_followed(app: Flask) -> None:
    browser = Browser(app)
    browser.get("/login")
    response = browser.post(
        "/login?next=/ledger?page=2", {"login": "hanh", "password": "demo-2024"}
    )
    assert response.headers["Location"] == "/ledger?page=2"


# --- sessions -------------------------------------------------------------------------------------


def test_cookie_replayed_after_logout_is_refused(app: Flask) -> None:
    hanh = Browser(app).login("hanh")
    stolen = hanh.client.get_cookie("session")
    assert stolen is not None
    hanh.get("/requests/mine")
    assert hanh.post("/logout").status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", stolen.value)
    response = thief.get("/requests/mine")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_password_change_signs_out_the_other_sessions(app: Flask) -> None:
    phone = Browser(app).login("hanh")
    laptop = Browser(app).login("hanh")
    laptop.get("/password")
    changed = laptop.post(
        "/password",
        {"current": "demo-2024", "new": "ba con meo trang", "confirm": "ba con meo trang"},
    )
    assert changed.status_code == 302
    assert laptop.get("/requests/mine").status_code == 200
    assert phone.get("/requests/mine").status_code == 302
    assert Browser(app).login("hanh", "ba con meo trang")


def test_csrf_token_from_before_login_is_useless_after_it(app: Flask) -> None:
    browser = Browser(app)
    browser.get("/login")
    planted = browser.token
    browser.post("/login", {"login": "hanh", "password": "demo-2024"})
    response = browser.client.post("/language", data={"csrf_token": planted, "language": "en"})
    assert response.status_code == 400


def test_session_older_than_its_absolute_lifetime_is_signed_out(app: Flask) -> None:
    hanh = Browser(app).login("hanh")
    assert hanh.get("/requests/mine").status_code == 200
    with hanh.client.session_transaction() as session:
        session["signed_in_at"] -= app.config["SESSION_ABSOLUTE_LIFETIME"] + 1
    assert hanh.get("/requests/mine").status_code == 302


def test_idle_session_cookie_expires_on_the_server(app: Flask) -> None:
    hanh = Browser(app).login("hanh")
    cookie = hanh.client.get_cookie("session")
    assert cookie is not None and cookie.expires is not None
    # the signed timestamp is older than the idle limit (a negative limit: no waiting in a test)
    app.config["PERMANENT_SESSION_LIFETIME"] = -1
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    assert thief.get("/requests/mine").status_code == 302


def test_stolen_cookie_with_forged_x_forwarded_for_is_refused(app: Flask) -> None:
    app.config["SESSION_BINDS_ADDRESS"] = True
    victim = Browser(app)
    victim.client.environ_base.update(REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Phone")
    victim.login("hanh")
    stolen = victim.client.get_cookie("session")
    assert stolen is not None
    thief = app.test_client()
    thief.environ_base.update(
        REMOTE_ADDR="198.51.100.66", HTTP_USER_AGENT="Phone", HTTP_X_FORWARDED_FOR="203.0.113.7"
    )
    thief.set_cookie("session", stolen.value)
    assert thief.get("/requests/mine").status_code == 302


def test_phone_moving_from_wifi_to_4g_stays_signed_in(app: Flask) -> None:
    phone = Browser(app)
    phone.client.environ_base.update(REMOTE_ADDR="192.168.1.23", HTTP_USER_AGENT="Phone")
    phone.login("hanh")
    phone.client.environ_base.update(REMOTE_ADDR="100.64.7.9")  # the carrier's shared address
    assert phone.get("/requests/mine").status_code == 200


def test_stolen_cookie_in_another_browser_is_refused(app: Flask) -> None:
    victim = Browser(app)
    victim.client.environ_base.update(HTTP_USER_AGENT="Phone")
    victim.login("hanh")
    stolen = victim.client.get_cookie("session")
    assert stolen is not None
    thief = app.test_client()
    thief.environ_base.update(HTTP_USER_AGENT="Laptop")
    thief.set_cookie("session", stolen.value)
    assert thief.get("/requests/mine").status_code == 302


# --- production -----------------------------------------------------------------------------------


def test_production_cookies_are_secure_and_pages_ask_for_https(
    tmp_path: Path, runtime: Runtime
) -> None:
    # NOTE: the throw-away PostgreSQL cluster runs fsync=off for speed, which production refuses
    # (tests/test_schema.py covers that refusal); this test is about cookies and HSTS.
    app = _node(
        runtime, tmp_path, ENV="production", SECRET_KEY="s" * 40, REQUIRE_DURABLE_DATABASE=False
    )
    try:
        assert app.config["SESSION_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_SECURE"]
        response = app.test_client().get("/login", base_url="https://chi.th-demo.edu.vn")
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        app.extensions["runtime"].dispose()


def test_documented_production_deployment_starts_from_nothing(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "EXPENSES_ENV": "production",
        "EXPENSES_SECRET_KEY": "k" * 64,
        "EXPENSES_KEYS": str(tmp_path / "keys"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite'}",
    }
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    for command in (["keys", "init-institution"], ["init-db"], ["keys", "fingerprint"]):
        done = subprocess.run(flask + command, cwd=root, env=env, capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stderr[-2000:])
    # and serving without the key is still refused
    (tmp_path / "keys" / "institution.key").rename(tmp_path / "elsewhere.key")
    served = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=root, env=env, capture_output=True, text=True
    )
    assert served.returncode != 0 and "institution key" in served.stderr


# --- sign-in throttling ---------------------------------------------------------------------------


def test_password_guessing_spread_over_two_app_nodes_is_stopped_per_account(
    nodes: list[Flask],
) -> None:
    codes = []
    for attempt in range(12):
        browser = Browser(nodes[attempt % 2])
        browser.client.environ_base["REMOTE_ADDR"] = f"198.51.100.{attempt}"  # a botnet
        codes.append(
            browser.post("/login", {"login": "hanh", "password": f"guess-{attempt}"}).status_code
        )
    assert codes[:10] == [200] * 10 and codes[10:] == [429, 429]
    # the right password does not get through either, until the window has passed
    late = Browser(nodes[0])
    assert late.post("/login", {"login": "hanh", "password": "demo-2024"}).status_code == 429
    # another account is not affected
    assert Browser(nodes[1]).login("nga")


def test_password_spraying_from_one_address_is_stopped(nodes: list[Flask]) -> None:
    nodes[0].config["LOGIN_FAILURES_PER_ADDRESS"] = 5
    nodes[1].config["LOGIN_FAILURES_PER_ADDRESS"] = 5
    codes = [
        Browser(nodes[i % 2]).post("/login", {"login": f"user{i}", "password": "x"}).status_code
        for i in range(6)
    ]
    assert codes == [200] * 5 + [429]


def test_behind_nginx_each_client_counts_on_its_own_address(
    runtime: Runtime, school: School, tmp_path: Path
) -> None:
    app = _node(runtime, tmp_path, TRUSTED_PROXIES=1, LOGIN_FAILURES_PER_ADDRESS=3)
    try:
        for i in range(3):
            browser = Browser(app)
            browser.client.environ_base.update(
                REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9"
            )
            browser.post("/login", {"login": f"nobody{i}", "password": "x"})
        colleague = Browser(app)
        colleague.client.environ_base.update(
            REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.10"
        )
        assert colleague.login("hanh")
        with runtime.transaction() as session:
            addresses = set(session.scalars(select(LoginAttempt.address)))
        assert addresses == {"203.0.113.9", "203.0.113.10"}
    finally:
        app.extensions["runtime"].dispose()


def test_admin_sees_failed_sign_ins(app: Flask) -> None:
    Browser(app).post("/login", {"login": "hieutruong", "password": "ky-demo-2024"})
    admin = Browser(app).login("admin")
    page = text(admin.get("/admin/sign-ins"))
    assert "hieutruong" in page and "Đăng nhập thất bại" in page
    assert Browser(app).login("hanh").get("/admin/sign-ins").status_code == 403


def test_unknown_login_costs_a_password_hash_like_a_known_one(
    monkeypatch: pytest.MonkeyPatch, school: School, runtime: Runtime
) -> None:
    import workflow.signin as signin

    checked: list[str] = []
    real = signin.check_password_hash
    monkeypatch.setattr(signin, "check_password_hash", lambda h, p: checked.append(h) or real(h, p))
    with runtime.transaction() as session:
        # NOTE: the test template re-hashes the demo passwords cheaply; give Hạnh a real one.
        directory = runtime.directory(session)
        hanh = directory.get_user("hanh")
        assert hanh is not None
        directory.set_password(hanh, "mat-khau-that-cua-hanh")
    with runtime.transaction() as session:
        sign_in = signin.SignIn(session)
        assert sign_in.authenticate("khong-co-ai", "demo-2024", address="192.0.2.1") is None
        assert sign_in.authenticate("hanh", "wrong-password", address="192.0.2.1") is None
    assert len(checked) == 2 and checked[0].split("$")[0] == checked[1].split("$")[0]


# --- hostile parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "page=" + "1" * 21,
        "budget_year=" + "1" * 21,
        "page=²",
        "budget_year=²",
        "page=-1",
        "budget_year=%D9%A2%D9%A0%D9%A2%D9%A5",
        "line=%00",
        "page=%00",
    ],
)
def test_hostile_ledger_parameters_get_no_server_error(app: Flask, query: str) -> None:
    mai = Browser(app).login("mai")
    response = mai.get(f"/ledger?{query}")
    assert response.status_code in (200, 400), response.status_code


def test_unicode_digit_as_expected_seq_gets_no_server_error(app: Flask, school: School) -> None:
    number = school.to_state("submitted")
    long = Browser(app).login("long")
    response = long.act(number, "forward", expected_seq="²")
    assert response.status_code in (302, 422)


def test_nul_byte_in_a_login_name_is_a_bad_request(app: Flask) -> None:
    """PostgreSQL cannot store NUL: this used to be a 500 there (run with TEST_DATABASE_URL)."""
    browser = Browser(app)
    response = browser.post("/login", {"login": "hanh\x00", "password": "demo-2024"})
    assert response.status_code == 400
    title = Browser(app).login("hanh")
    title.get("/requests/new")
    response = title.post("/requests/new", {"title": "In\x00 ấn", "line": "PRINT"})
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("paid_on", "message"), [("1900-01-01", "quá xa"), ("2031-01-01", "tương lai")]
)
def test_payment_dated_in_another_century_is_refused(
    school: School, paid_on: str, message: str
) -> None:
    from expense_audit.errors import DataInvalid

    number = school.to_state("approved")
    with pytest.raises(DataInvalid, match=message) as refusal:
        school.act(number, "pay", "mai", data=pay_data(amount=100_000, paid_on=paid_on))
    assert refusal.value.field == "paid_on"
    assert school.request(number).state == "approved"  # type: ignore[union-attr]


# --- uploads ----------------------------------------------------------------------------------------


def _attachment_files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "attachments"
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_uploads_of_a_refused_draft_do_not_stay_on_disk(
    app: Flask, school: School, tmp_path: Path
) -> None:
    hanh = Browser(app).login("hanh")
    hanh.get("/requests/new")
    response = hanh.post(
        "/requests/new",
        {
            "title": "Máy in",
            "line": "PRINT",
            "amount": "không rõ",
            "source": "NSNN-TX",
            "budget_year": "2025",
            "attachments": [(io.BytesIO(JPEG), "bao-gia.jpg")],
        },
        content_type="multipart/form-data",
    )
    assert "Số tiền" in text(response) and school.mails() == []
    assert _attachment_files(tmp_path) == []


def test_filling_the_disk_with_attachments_stops_at_the_quota(app: Flask, tmp_path: Path) -> None:
    app.config["UPLOAD_QUOTA_MB"] = 1
    hanh = Browser(app).login("hanh")
    statuses = []
    for i in range(4):
        hanh.get("/requests/new")
        photo = b"\xff\xd8\xff\xe0" + bytes([i]) * (400 * 1024)
        statuses.append(
            hanh.post(
                "/requests/new",
                {
                    "title": f"Ảnh {i}",
                    "line": "PRINT",
                    "amount": "100.000",
                    "source": "NSNN-TX",
                    "budget_year": "2025",
                    "attachments": [(io.BytesIO(photo), f"anh-{i}.jpg")],
                },
                content_type="multipart/form-data",
            )
        )
    assert [r.status_code for r in statuses[:2]] == [302, 302]
    assert "1 MB" in text(statuses[2]) and "1 MB" in text(statuses[3])
    assert len(_attachment_files(tmp_path)) == 2


# --- passwords --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password", ["12345678", "password1", "iloveyou", "qwertyuiop", "abc12345"]
)
def test_admin_cannot_give_an_account_a_common_password(app: Flask, password: str) -> None:
    admin = Browser(app).login("admin")
    admin.get("/admin/users")
    response = admin.post(
        "/admin/users",
        {
            "login": "lan",
            "name": "Phạm Thị Lan",
            "email": "lan@th-demo.edu.vn",
            "language": "vi",
            "password": password,
            "roles": ["reviewer"],
        },
    )
    assert "Mật khẩu" in text(response)
    assert Browser(app).post("/login", {"login": "lan", "password": password}).status_code == 200


@pytest.mark.parametrize(
    "background", ["/sw.js", "/static/app.js", "/manifest.webmanifest", "/favicon.ico", "/healthz"]
)
def test_a_background_fetch_answered_after_signing_in_does_not_sign_the_phone_out(
    app: Flask, background: str
) -> None:
    phone = Browser(app)
    phone.get("/login")
    before = phone.client.get_cookie("session")
    assert before is not None
    phone.post("/login", {"login": "hanh", "password": DEMO_PASSWORD})
    # The service worker (or a script) asked for a file before the sign-in left; its answer
    # comes back last, carrying whatever cookie the server put on it.
    late = app.test_client()
    late.set_cookie("session", before.value)
    answer = late.get(background)
    answer.close()
    assert answer.status_code == 200
    assert not [c for c in answer.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert "Đăng xuất" in text(phone.get("/", follow_redirects=True))
