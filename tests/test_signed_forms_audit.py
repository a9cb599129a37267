"""The auditor's side of signed forms: the PDFs travel in the bundle and the dossier, and
audit-verify checks each against the log (and its PAdES signature, given the CA roots)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from expense_audit.verify import verify_bundle
from expense_audit.verify.dossier import verify_dossier
from expense_audit.verify.report import Kind
from expense_audit.verify.signed_forms import NO_ROOTS
from workflow.bundle import attachment_path, export_bundle
from workflow.dossier import write_dossier

from .ca_tools import Authority, Person
from .factories import School, pay_data
from .test_ca_certificates import register
from .test_dossier import QUOTE, QUOTE_BYTES
from .test_pades import now_utc, revoke_in_log, roots, sign_with_file, the_form, upload


@dataclass
class Signed:
    number: str
    pdf: bytes
    sha256: str
    store: Path


@pytest.fixture
def signed(school: School, toan_cert: Person, authority: Authority, tmp_path: Path) -> Signed:
    """A paid request whose form the principal signed (B-LT), stored like the web layer does."""
    register(school, "toan", toan_cert)
    number = school.to_state("approved", attachments=[QUOTE])
    form = the_form(school, number)
    pdf = sign_with_file(form, toan_cert, authority, at=now_utc(school))
    sha = upload(school, "toan", number, pdf, form, authority)
    store = tmp_path / "uploads"
    for digest, data in ((sha, pdf), (QUOTE["sha256"], QUOTE_BYTES)):
        path = attachment_path(store, digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    school.act(number, "pay", "mai", data=pay_data())
    return Signed(number, pdf, sha, store)


def _bundle(school: School, target: Path, store: Path) -> Path:
    runtime = school.runtime
    with runtime.transaction() as session:
        export_bundle(
            session,
            target,
            institution=runtime.institution,
            now=runtime.now(),
            attachments_dir=store,
        )
    return target


def _dossier(school: School, number: str, target: Path, store: Path) -> Path:
    runtime = school.runtime
    with runtime.transaction() as session:
        write_dossier(
            session,
            number,
            target,
            form_pdf=the_form(school, number),
            institution=runtime.institution,
            now=runtime.now(),
            attachments_dir=store,
        )
    return target


def _swap(source: Path, target: Path, name: str, data: bytes) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            new.writestr(item.filename, data if item.filename == name else old.read(item))
    return target


def _roots_folder(authority: Authority, tmp_path: Path) -> Path:
    folder = tmp_path / "ca-roots"
    folder.mkdir(exist_ok=True)
    (folder / "root.pem").write_bytes(authority.root.public_bytes(Encoding.PEM))
    return folder


def test_bundle_carries_the_signed_form_and_its_pades_signature_validates_offline(
    school: School, signed: Signed, authority: Authority, tmp_path: Path
) -> None:
    bundle = _bundle(school, tmp_path / "b.zip", signed.store)
    with zipfile.ZipFile(bundle) as archive:
        assert archive.read(f"signed-forms/{signed.sha256}.pdf") == signed.pdf
    report = verify_bundle(
        bundle, institution_key=school.runtime.institution.fingerprint, ca_roots=roots(authority)
    )
    assert report.valid, report.problems
    assert report.signed_pdfs["validated"] == 1
    (form,) = report.people["toan"]["signed_forms"]
    assert form["pdf_sha256"] == signed.sha256


def test_signed_pdf_that_is_not_the_one_in_the_log_is_a_named_problem(
    school: School, signed: Signed, authority: Authority, tmp_path: Path
) -> None:
    bundle = _bundle(school, tmp_path / "b.zip", signed.store)
    forged = signed.pdf.replace(b"/Producer", b"/Producex", 1)
    bad = _swap(bundle, tmp_path / "bad.zip", f"signed-forms/{signed.sha256}.pdf", forged)
    report = verify_bundle(bad, institution_key=school.runtime.institution.fingerprint)
    assert not report.valid
    (problem,) = [p for p in report.problems if p.kind == Kind.SIGNED_PDF_MISMATCH]
    assert (
        signed.sha256 in problem.detail and "not the signed PDF the log recorded" in problem.detail
    )


def test_signed_pdf_whose_signature_fails_under_other_roots_is_a_problem(
    school: School, signed: Signed, tmp_path: Path
) -> None:
    bundle = _bundle(school, tmp_path / "b.zip", signed.store)
    report = verify_bundle(
        bundle, institution_key=school.runtime.institution.fingerprint, ca_roots=roots(Authority())
    )
    (problem,) = [p for p in report.problems if p.kind == Kind.SIGNED_PDF_INVALID]
    assert "configured trust root" in problem.detail


def test_without_ca_roots_the_report_says_the_pdf_signatures_were_not_validated(
    school: School, signed: Signed, tmp_path: Path
) -> None:
    bundle = _bundle(school, tmp_path / "b.zip", signed.store)
    report = verify_bundle(bundle, institution_key=school.runtime.institution.fingerprint)
    assert report.valid, report.problems
    assert NO_ROOTS in report.warnings
    assert report.signed_pdfs["validated"] == 0


def test_without_the_pdf_extra_audit_verify_says_the_signatures_were_not_validated(
    school: School, signed: Signed, authority: Authority, tmp_path: Path
) -> None:
    """pyHanko absent (blocked in a fresh interpreter): the hashes are checked, not the PAdES."""
    bundle = _bundle(school, tmp_path / "b.zip", signed.store)
    code = (
        "import sys\n"
        "sys.modules['pyhanko'] = None\n"
        "from expense_audit.verify.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    fingerprint = school.runtime.institution.fingerprint
    args = [str(bundle), "--institution-key", fingerprint]
    folder = _roots_folder(authority, tmp_path)
    run = subprocess.run(
        [sys.executable, "-c", code, *args, "--ca-roots", str(folder)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "PDF signatures were NOT validated: install the pdf extra" in run.stdout
    # With the extra installed (this environment), the same command validates them.
    run = subprocess.run(
        [sys.executable, "-m", "expense_audit.verify", *args, "--ca-roots", str(folder)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 of 1 PDF signature(s) validated against --ca-roots" in run.stdout


def test_dossier_holds_the_signed_form_and_validates_it(
    school: School, signed: Signed, authority: Authority, tmp_path: Path
) -> None:
    dossier = _dossier(school, signed.number, tmp_path / "d.zip", signed.store)
    with zipfile.ZipFile(dossier) as archive:
        assert archive.read(f"signed-forms/{signed.sha256}.pdf") == signed.pdf
    report = verify_dossier(
        dossier, institution_key=school.runtime.institution.fingerprint, ca_roots=roots(authority)
    )
    assert report.valid, report.problems
    assert report.signed_pdfs == {
        "present": 1,
        "validated": 1,
        "status": "1 of 1 PDF signature(s) validated against --ca-roots",
    }


def test_dossier_made_without_its_signed_form_says_so(
    school: School, signed: Signed, tmp_path: Path
) -> None:
    attachment_path(signed.store, signed.sha256).unlink()
    dossier = _dossier(school, signed.number, tmp_path / "d.zip", signed.store)
    report = verify_dossier(dossier, institution_key=school.runtime.institution.fingerprint)
    # The writer says it could not include it; the verifier does not pretend it was checked.
    assert report.valid and report.signed_pdfs["present"] == 0
    assert any("were not included" in w and signed.sha256 in w for w in report.warnings)


def test_verifier_replays_a_revocation_and_flags_a_form_recorded_after_it(
    school: School, toan_cert: Person, tmp_path: Path
) -> None:
    """A server that skipped the upload check and recorded a form signed after revocation."""
    sha = register(school, "toan", toan_cert)
    number = school.to_state("approved")
    revoke_in_log(school, sha)
    runtime = school.runtime
    with runtime.transaction() as session:
        registry = runtime.certificates(session)
        cert = registry.get(sha)
        assert cert is not None and cert.revoked_at is not None
        registry.record_signed_form(
            number=number,
            login="toan",
            cert=cert,
            form_sha256="a" * 64,
            pdf_sha256="b" * 64,
            signing_time=now_utc(school).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    bundle = _bundle(school, tmp_path / "b.zip", tmp_path / "none")
    report = verify_bundle(bundle, institution_key=runtime.institution.fingerprint)
    (problem,) = [p for p in report.problems if p.kind == Kind.KEY_NOT_VALID]
    assert "revoked at" in problem.detail and problem.request == number
    (listed,) = report.people["toan"]["certificates"]
    assert listed["revoked_by"] == "admin" and listed["revoke_reason"].startswith("mất token")


def test_verifier_flags_a_form_entered_after_the_revocation_that_states_an_earlier_time(
    school: School, toan_cert: Person, tmp_path: Path
) -> None:
    """A server that took a backdated signature from whoever holds the lost token."""
    sha = register(school, "toan", toan_cert)
    number = school.to_state("approved")
    backdated = (now_utc(school) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    revoke_in_log(school, sha)
    runtime = school.runtime
    with runtime.transaction() as session:
        registry = runtime.certificates(session)
        cert = registry.get(sha)
        assert cert is not None and cert.revoked_at is not None and backdated < cert.revoked_at
        registry.record_signed_form(
            number=number,
            login="toan",
            cert=cert,
            form_sha256="a" * 64,
            pdf_sha256="b" * 64,
            signing_time=backdated,
        )
    bundle = _bundle(school, tmp_path / "b.zip", tmp_path / "none")
    report = verify_bundle(bundle, institution_key=runtime.institution.fingerprint)
    (problem,) = [p for p in report.problems if p.kind == Kind.KEY_NOT_VALID]
    assert "already revoked" in problem.detail and backdated in problem.detail
