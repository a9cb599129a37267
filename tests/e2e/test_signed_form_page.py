"""In Chromium: the principal uploads the form signed with another tool on the request page, and
the accountant sees "Ký số hợp lệ: <name>, <CA>" there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from playwright.sync_api import expect

from ..ca_tools import Authority, Person
from ..factories import School
from ..test_ca_certificates import register
from ..test_pades import sign_with_file


def test_accountant_sees_the_valid_digital_signature_on_the_request_page(
    school: School,
    phone: Callable[[str], Any],
    toan_cert: Person,
    authority: Authority,
    tmp_path: Path,
) -> None:
    roots = tmp_path / "ca-roots"
    roots.mkdir()
    (roots / "root.pem").write_bytes(authority.root.public_bytes(Encoding.PEM))
    school.runtime.settings = replace(school.runtime.settings, ca_roots=roots)
    register(school, "toan", toan_cert)
    number = school.to_state("approved")
    toan = phone("toan")
    toan.goto(f"/requests/{number}")
    # The form as the principal downloads it from the page, signed by pyHanko (another tool).
    form = toan.context.request.get(f"/requests/{number}/form.pdf").body()
    signed = tmp_path / "de-nghi-da-ky.pdf"
    signed.write_bytes(
        sign_with_file(form, toan_cert, authority, at=school.runtime.now().replace(tzinfo=UTC))
    )
    toan.set_input_files("input[name=pdf]", str(signed))
    toan.get_by_role("button", name="Tải lên giấy đề nghị đã ký").click()
    expect(toan.locator("#signed-forms")).to_contain_text("Ký số hợp lệ: Nguyễn Văn Toàn")
    mai = phone("mai")
    mai.goto(f"/requests/{number}")
    expect(mai.locator("#signed-forms")).to_contain_text(
        "Ký số hợp lệ: Nguyễn Văn Toàn, Test Issuing CA"
    )
