"""The payment dossier: one zip per paid request, verified offline without the rest of the log."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from expense_audit.verify.cli import main
from expense_audit.verify.dossier import EVENTS, FORM, MANIFEST, verify_dossier
from workflow.bundle import attachment_path
from workflow.dossier import write_dossier
from workflow.payment_form import gather, render

from .factories import School, pay_data
from .test_paperwork import INVOICE, PAYEE

QUOTE_BYTES = b"%PDF-1.4 bao gia cong ty demo\n"
QUOTE = {"name": "bao-gia-1.pdf", "sha256": hashlib.sha256(QUOTE_BYTES).hexdigest()}


@pytest.fixture
def dossier(school: School, tmp_path: Path) -> Path:
    store = tmp_path / "uploads"
    path = attachment_path(store, QUOTE["sha256"])
    path.parent.mkdir(parents=True)
    path.write_bytes(QUOTE_BYTES)
    number = school.to_state("approved", attachments=[QUOTE], **PAYEE)
    school.act(number, "pay", "mai", data={**pay_data(), **INVOICE})
    school.to_state("submitted", line="WEB", amount="2.400.000")  # another request, left out
    runtime = school.runtime
    target = tmp_path / "dossier.zip"
    with runtime.transaction() as session:
        form = gather(
            session,
            number,
            catalogue=runtime.definitions.catalogue("2024-2025"),
            fingerprint=runtime.institution.fingerprint,
            base_url="https://truong.example.vn",
        )
        write_dossier(
            session,
            number,
            target,
            form_pdf=render(form),
            institution=runtime.institution,
            now=runtime.now(),
            attachments_dir=store,
        )
    return target


def _rewrite(source: Path, target: Path, name: str, data: bytes) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            new.writestr(item.filename, data if item.filename == name else old.read(item))
    return target


def test_dossier_verifies_offline_with_the_institution_key(school: School, dossier: Path) -> None:
    report = verify_dossier(dossier, institution_key=school.runtime.institution.fingerprint)
    assert report.valid, report.problems
    assert report.trusted and report.request == "2024-2025/0001"
    assert report.projection is not None and report.projection["state"] == "paid"
    assert report.projection["invoice_number"] == INVOICE["invoice_number"]
    with zipfile.ZipFile(dossier) as archive:
        names = archive.namelist()
        events = archive.read(EVENTS).decode()
    assert FORM in names and f"attachments/{QUOTE['sha256']}" in names
    assert "2024-2025/0002" not in events  # only this request's steps and its signers' keys


@pytest.mark.parametrize(
    "member", [FORM, f"attachments/{QUOTE['sha256']}", "definitions/expense_approval.toml"]
)
def test_changed_file_in_the_dossier_fails(
    school: School, dossier: Path, tmp_path: Path, member: str
) -> None:
    with zipfile.ZipFile(dossier) as archive:
        original = archive.read(member)
    bad = _rewrite(dossier, tmp_path / "bad.zip", member, original + b"\n")
    report = verify_dossier(bad, institution_key=school.runtime.institution.fingerprint)
    assert not report.valid
    assert any(member in problem and "changed" in problem for problem in report.problems)


def test_changed_manifest_breaks_its_signature(
    school: School, dossier: Path, tmp_path: Path
) -> None:
    with zipfile.ZipFile(dossier) as archive:
        manifest = json.loads(archive.read(MANIFEST))
    manifest["files"][FORM] = "0" * 64
    raw = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode()
    report = verify_dossier(_rewrite(dossier, tmp_path / "bad.zip", MANIFEST, raw))
    assert report.problems == ["the manifest's signature does not verify with its key"]


def test_dossier_signed_by_another_key_is_refused(dossier: Path) -> None:
    report = verify_dossier(dossier, institution_key="ab" * 32)
    assert not report.valid and "not the pinned" in report.problems[0]


def test_audit_verify_reads_a_dossier(
    school: School, dossier: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = school.runtime.institution.fingerprint
    assert main([str(dossier), "--institution-key", key]) == 0
    out = capsys.readouterr().out
    assert "VALID" in out and "state paid" in out
    assert main([str(dossier)]) == 3  # valid, but no key pinned
    capsys.readouterr()
    bad = _rewrite(dossier, tmp_path / "bad.zip", FORM, b"%PDF-1.4 forged")
    assert main([str(bad), "--institution-key", key]) == 1
    assert "changed" in capsys.readouterr().out


def test_event_changed_and_manifest_resigned_fails_the_inclusion_proof(
    school: School, dossier: Path, tmp_path: Path
) -> None:
    """Even whoever holds the institution key cannot slip a changed step past the checkpoint."""
    import base64

    from expense_audit.canonical import sha256_hex
    from expense_audit.verify.dossier import SIGNATURE, manifest_message

    with zipfile.ZipFile(dossier) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    files[EVENTS] = files[EVENTS].replace(
        b'"amount_paid_vnd":1800000', b'"amount_paid_vnd":1700000'
    )
    manifest = json.loads(files[MANIFEST])
    manifest["files"][EVENTS] = sha256_hex(files[EVENTS])
    files[MANIFEST] = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode()
    files[SIGNATURE] = base64.b64encode(
        school.runtime.institution.sign(manifest_message(files[MANIFEST]))
    )
    bad = tmp_path / "resigned.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    report = verify_dossier(bad, institution_key=school.runtime.institution.fingerprint)
    assert not report.valid
    assert any("hash-mismatch" in p or "not included" in p for p in report.problems), (
        report.problems
    )


def test_accountant_downloads_the_dossier_and_it_verifies(
    school: School, auth: object, tmp_path: Path
) -> None:
    from .web import AuthActions

    assert isinstance(auth, AuthActions)
    number = school.to_state("approved")
    school.act(number, "pay", "mai", data=pay_data())
    browser = auth.login("mai")
    assert f"/requests/{number}/dossier.zip" in browser.get(f"/requests/{number}").get_data(
        as_text=True
    )
    response = browser.get(f"/requests/{number}/dossier.zip")
    assert response.status_code == 200
    data = response.data
    response.close()
    path = tmp_path / "downloaded.zip"
    path.write_bytes(data)
    report = verify_dossier(path, institution_key=school.runtime.institution.fingerprint)
    assert report.valid, report.problems
    assert auth.session("hanh").get(f"/requests/{number}/dossier.zip").status_code == 403
