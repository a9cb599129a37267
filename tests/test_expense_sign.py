"""expense-sign end to end: a real server, a SoftHSM2 token, a test CA, the request page."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from functools import partial
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask
from werkzeug.serving import make_server

from expense_sign.cli import main as expense_sign
from workflow.demo import DEMO_PASSWORD

from .ca_tools import Authority, Person
from .factories import School
from .smtp_server import free_port
from .softhsm import Token
from .test_pades import sign_with_file
from .web import AuthActions, Browser, text


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch, token: Token) -> None:
    """expense-sign reads the password and the PIN from the environment (no prompt)."""
    monkeypatch.setenv("EXPENSE_SIGN_PASSWORD", DEMO_PASSWORD)
    monkeypatch.setenv("EXPENSE_SIGN_PIN", token.pin)


@pytest.fixture
def trusted(school: School, authority: Authority, tmp_path: Path) -> Path:
    """The school's folder of trust roots holds the test root (EXPENSES_CA_ROOTS)."""
    folder = tmp_path / "ca-roots"
    folder.mkdir()
    (folder / "root.pem").write_bytes(authority.root.public_bytes(Encoding.PEM))
    runtime = school.runtime
    runtime.settings = replace(runtime.settings, ca_roots=folder)
    return folder


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    port = free_port()
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()
    thread.join(10)
    httpd.server_close()


def cli(server: str, token: Token, cert: Path, *command: str, roots: Path, crls: list[Path]) -> int:
    crl_args = [arg for path in crls for arg in ("--crl", str(path))]
    return expense_sign(
        [
            "--url", server, "--login", "toan", "--module", token.module, "--token", token.label,
            "--key-label", token.key_label, "--cert", str(cert),
            "--chain", str(cert.with_name("issuing-ca.pem")), "--ca-roots", str(roots),
            *crl_args, *command,
        ]
    )  # fmt: skip


def test_principal_registers_signs_with_expense_sign_and_accountant_sees_the_signature(
    school: School,
    app: Flask,
    auth: AuthActions,
    server: str,
    token: Token,
    toan_cert: Person,
    authority: Authority,
    trusted: Path,
    secrets: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cert_file = tmp_path / "toan.cer"
    cert_file.write_bytes(toan_cert.der)
    cert_file.with_name("issuing-ca.pem").write_bytes(authority.ca.public_bytes(Encoding.PEM))
    # The admin starts the registration with the certificate file; the page shows the code.
    admin = auth.login("admin")
    admin.get("/admin/users")
    page = text(
        admin.post(
            "/admin/users/toan/certificate",
            {"certificate": (io.BytesIO(toan_cert.der), "toan.cer")},
        )
    )
    nonce = page.split("expense-sign register ")[1].split("<")[0].strip()
    # The principal's token signs the code: the certificate is registered.
    crls = authority.write_crls(tmp_path, school.runtime.now().replace(tzinfo=UTC))
    sign = partial(cli, server, token, cert_file, roots=trusted, crls=crls)
    assert sign("register", nonce) == 0
    assert "NGUYỄN VĂN TOÀN" in capsys.readouterr().out
    number = school.to_state("approved")
    assert sign("list") == 0
    assert number in capsys.readouterr().out
    assert sign("sign") == 0  # B-LT: the CRLs given go into the file
    assert number in capsys.readouterr().out
    assert sign("list") == 0
    assert number not in capsys.readouterr().out  # signed: no longer waiting
    page = text(Browser(app).login("mai").get(f"/requests/{number}"))
    assert "Ký số hợp lệ: Nguyễn Văn Toàn, Test Issuing CA" in page


def test_form_signed_by_another_tool_is_accepted_through_the_request_page(
    school: School, auth: AuthActions, toan_cert: Person, authority: Authority, trusted: Path
) -> None:
    from .test_ca_certificates import register

    register(school, "toan", toan_cert)
    number = school.to_state("approved")
    toan = auth.login("toan")
    form = toan.get(f"/requests/{number}/form.pdf").get_data()
    signed = sign_with_file(form, toan_cert, authority, at=school.runtime.now().replace(tzinfo=UTC))
    toan.get(f"/requests/{number}")
    response = toan.post(
        f"/requests/{number}/signed-form",
        {"pdf": (io.BytesIO(signed), "signed.pdf")},
    )
    assert response.status_code == 302
    response = toan.get(f"/requests/{number}")
    assert "Ký số hợp lệ: Nguyễn Văn Toàn" in text(response)


def test_form_of_another_request_is_refused_with_the_reason_on_the_page(
    school: School, auth: AuthActions, toan_cert: Person, authority: Authority, trusted: Path
) -> None:
    from .test_ca_certificates import register

    register(school, "toan", toan_cert)
    number = school.to_state("approved", amount="900.000")
    other = school.to_state("submitted", amount="900.000")
    toan = auth.login("toan")
    form = toan.get(f"/requests/{other}/form.pdf").get_data()
    signed = sign_with_file(form, toan_cert, authority, at=school.runtime.now().replace(tzinfo=UTC))
    toan.get(f"/requests/{number}")
    response = toan.post(
        f"/requests/{number}/signed-form",
        {"pdf": (io.BytesIO(signed), "signed.pdf")},
    )
    assert response.status_code == 302
    response = toan.get(f"/requests/{number}")
    page = text(response)
    assert "không phải là giấy đề nghị" in page
    assert "Ký số hợp lệ" not in page


def test_certificate_revoked_after_signing_is_shown_and_later_signatures_are_refused(
    school: School, auth: AuthActions, toan_cert: Person, authority: Authority, trusted: Path
) -> None:
    from .test_ca_certificates import register

    sha = register(school, "toan", toan_cert)
    number = school.to_state("approved")
    toan = auth.login("toan")
    form = toan.get(f"/requests/{number}/form.pdf").get_data()
    before = sign_with_file(form, toan_cert, authority, at=school.runtime.now().replace(tzinfo=UTC))
    toan.get(f"/requests/{number}")
    toan.post(f"/requests/{number}/signed-form", {"pdf": (io.BytesIO(before), "signed.pdf")})
    # The token is lost: the admin revokes the certificate in the log.
    admin = Browser(auth.app).login("admin")
    assert "Thu hồi chứng thư số" in text(admin.get("/admin/users"))
    admin.post(f"/admin/certificates/{sha}/revoke", {"reason": "mất token"})
    assert "đã thu hồi" in text(admin.get("/admin/users"))
    page = text(Browser(auth.app).login("mai").get(f"/requests/{number}"))
    assert "Ký số hợp lệ: Nguyễn Văn Toàn, Test Issuing CA" in page
    assert "chứng thư số đã bị thu hồi sau khi ký" in page
    # A form signed after the revocation is refused, with the reason on the page.
    after = sign_with_file(form, toan_cert, authority, at=school.runtime.now().replace(tzinfo=UTC))
    toan.get(f"/requests/{number}")
    toan.post(f"/requests/{number}/signed-form", {"pdf": (io.BytesIO(after), "signed.pdf")})
    assert "đã bị thu hồi trong hệ thống" in text(toan.get(f"/requests/{number}"))
