"""Payment request forms signed in PAdES with a CA certificate on a PKCS#11 token (SoftHSM2)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko.config.pkcs11 import TokenCriteria
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import NameObject
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from workflow import pades
from workflow.payment_form import gather, render

from .ca_tools import Authority, Person
from .factories import School, pay_data
from .softhsm import Token
from .test_ca_certificates import register


def the_form(school: School, number: str) -> bytes:
    runtime = school.runtime
    with runtime.transaction() as session:
        form = gather(
            session,
            number,
            catalogue=runtime.definitions.catalogue("2024-2025"),
            fingerprint=runtime.institution.fingerprint,
            base_url=runtime.settings.base_url,
        )
    return render(form)


def now_utc(school: School) -> datetime:
    """The school's clock (naive UTC) as an aware time: the signing time of the tests."""
    return school.runtime.now().replace(tzinfo=UTC)


def blt(authority: Authority, at: datetime) -> ValidationContext:
    """What a signer downloads at ``at``: the CA chain and both CRLs (baseline B-LT)."""
    return pades.signing_context(
        trust_roots=roots(authority),
        chain=[authority.ca.public_bytes(_DER)],
        crls=authority.crls(at),
        moment=at,
    )


def sign_with_token(
    pdf: bytes, token: Token, cert: Person, authority: Authority, *, at: datetime
) -> bytes:
    with open_pkcs11_session(
        token.module, token_criteria=TokenCriteria(label=token.label), user_pin=token.pin
    ) as session:
        signer = PKCS11Signer(
            session,
            key_label=token.key_label,
            signing_cert=asn1_x509.Certificate.load(cert.der),
            ca_chain=[asn1_x509.Certificate.load(authority.ca.public_bytes(_DER))],
        )
        return pades.sign_form(pdf, signer, validation_context=blt(authority, at), signing_time=at)


def _file_signer(cert: Person, authority: Authority) -> signers.SimpleSigner:
    """Another tool: pyHanko with the key in memory (the way a desktop signer would)."""
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat
    from pyhanko.keys import load_private_key_from_pemder_data

    pem = cert.key.private_bytes(_PEM, PrivateFormat.PKCS8, NoEncryption())
    return signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(cert.der),
        signing_key=load_private_key_from_pemder_data(pem, passphrase=None),
        cert_registry=SimpleCertificateStore.from_certs(
            [asn1_x509.Certificate.load(authority.ca.public_bytes(_DER))]
        ),
    )


def sign_with_file(pdf: bytes, cert: Person, authority: Authority, *, at: datetime) -> bytes:
    """B-LT with pyHanko directly (another tool than expense-sign), the key in a file."""
    return pades.sign_form(
        pdf, _file_signer(cert, authority), validation_context=blt(authority, at), signing_time=at
    )


def add_revocation_data(signed: bytes, authority: Authority, at: datetime) -> bytes:
    """What Acrobat's "add verification information" does: the DSS in a revision of its own."""
    reader = PdfFileReader(io.BytesIO(signed))
    out = io.BytesIO(signed)
    DocumentSecurityStore.add_dss(
        out,
        reader.embedded_signatures[0].pkcs7_content,
        certs=[asn1_x509.Certificate.load(authority.ca.public_bytes(_DER))],
        crls=[asn1_crl.CertificateList.load(der) for der in authority.crls(at)],
    )
    return out.getvalue()


from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

_DER, _PEM = Encoding.DER, Encoding.PEM


def roots(authority: Authority) -> list[bytes]:
    return [authority.root.public_bytes(_DER)]


@pytest.fixture
def approved(school: School) -> str:
    return school.to_state("approved")


def test_form_renders_to_the_same_bytes_until_the_next_step(school: School, approved: str) -> None:
    first = the_form(school, approved)
    assert the_form(school, approved) == first
    school.act(approved, "pay", "mai", data=pay_data())
    assert the_form(school, approved) != first


def test_principal_signs_the_form_with_a_pkcs11_token_in_baseline_b_lt_and_it_is_accepted(
    school: School, approved: str, token: Token, toan_cert: Person, authority: Authority
) -> None:
    form = the_form(school, approved)
    at = now_utc(school)
    signed = sign_with_token(form, token, toan_cert, authority, at=at)
    reader = PdfFileReader(io.BytesIO(signed))
    assert reader.xrefs.total_revisions == 2  # the form, then the signature with its DSS
    dss = DocumentSecurityStore.read_dss(reader)
    assert len(dss.crls) == 2  # the issuing CA's and the root's CRL: checkable without network
    checked = pades.check_signed_form(
        signed, form=form, trust_roots=roots(authority), now=school.runtime.now()
    )
    assert checked.cert_der == toan_cert.der
    assert checked.signer_name == "NGUYỄN VĂN TOÀN" and checked.issuer_name == "Test Issuing CA"
    assert checked.signing_time == at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert signed.startswith(form)


def upload(
    school: School, login: str, number: str, pdf: bytes, form: bytes, authority: Authority
) -> str:
    runtime = school.runtime
    with runtime.transaction() as session:
        user = runtime.directory(session).get_user(login)
        assert user is not None
        row = runtime.certificates(session).accept_signed_form(
            user, number, pdf, form=form, trust_roots=roots(authority)
        )
        return row.pdf_sha256


def revoke_in_log(school: School, sha256: str, *, by: str = "admin") -> None:
    runtime = school.runtime
    with runtime.transaction() as session:
        admin = runtime.directory(session).get_user(by)
        assert admin is not None
        runtime.certificates(session).revoke(sha256, by=admin, reason="mất token / token lost")


def test_signed_form_with_the_registered_certificate_enters_the_log(
    school: School, approved: str, token: Token, toan_cert: Person, authority: Authority
) -> None:
    register(school, "toan", toan_cert)
    form = the_form(school, approved)
    signed = sign_with_token(form, token, toan_cert, authority, at=now_utc(school))
    sha = upload(school, "toan", approved, signed, form, authority)
    with school.runtime.transaction() as session:
        (row,) = school.runtime.certificates(session).signed_forms(approved)
        assert row.pdf_sha256 == sha and row.login == "toan"


def test_form_signed_with_a_certificate_of_someone_else_is_refused(
    school: School, approved: str, toan_cert: Person, authority: Authority
) -> None:
    mai_cert = authority.issue("NGUYỄN THỊ MAI")
    register(school, "toan", toan_cert)
    register(school, "mai", mai_cert)
    form = the_form(school, approved)
    signed = sign_with_file(form, mai_cert, authority, at=now_utc(school))
    with pytest.raises(pades.SignedFormRefused, match="người khác") as refused:
        upload(school, "toan", approved, signed, form, authority)
    assert "someone else's certificate" in refused.value.message_en


def test_form_changed_before_signing_is_refused(
    school: School, approved: str, toan_cert: Person, authority: Authority
) -> None:
    register(school, "toan", toan_cert)
    form = the_form(school, approved)
    changed = form.replace(b"/Title", b"/Titlf", 1)
    signed = sign_with_file(changed, toan_cert, authority, at=now_utc(school))
    with pytest.raises(pades.SignedFormRefused, match="không phải là giấy đề nghị"):
        upload(school, "toan", approved, signed, form, authority)


def test_signed_pdf_that_is_not_the_generated_form_is_refused(
    school: School, approved: str, toan_cert: Person, authority: Authority
) -> None:
    from fpdf import FPDF

    register(school, "toan", toan_cert)
    other = FPDF()
    other.add_page()
    other.set_font("helvetica", size=14)
    other.cell(text="Giay de nghi thanh toan 9.800.000 dong")
    signed = sign_with_file(bytes(other.output()), toan_cert, authority, at=now_utc(school))
    with pytest.raises(pades.SignedFormRefused, match="không phải là giấy đề nghị") as refused:
        upload(school, "toan", approved, signed, the_form(school, approved), authority)
    assert "not the form the app generated" in refused.value.message_en


def _append_revision(signed: bytes, change: Callable[[IncrementalPdfFileWriter], None]) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    change(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_incremental_update_changing_the_amount_after_signing_is_refused(
    school: School, approved: str, toan_cert: Person, authority: Authority
) -> None:
    register(school, "toan", toan_cert)
    form = the_form(school, approved)
    signed = sign_with_file(form, toan_cert, authority, at=now_utc(school))

    def forge_amount(writer: IncrementalPdfFileWriter) -> None:
        page = writer.root["/Pages"]["/Kids"][0].get_object()
        forged = generic.StreamObject(
            stream_data=b"BT /F1 24 Tf 100 700 Td (So tien: 9.800.000 dong) Tj ET"
        )
        page["/Contents"] = writer.add_object(forged)
        writer.update_container(page)

    with pytest.raises(pades.SignedFormRefused, match="sau khi ký") as refused:
        upload(school, "toan", approved, _append_revision(signed, forge_amount), form, authority)
    assert "changed after it was signed" in refused.value.message_en


def test_update_appended_after_signing_is_refused(
    school: School, approved: str, toan_cert: Person, authority: Authority
) -> None:
    register(school, "toan", toan_cert)
    form = the_form(school, approved)
    signed = sign_with_file(form, toan_cert, authority, at=now_utc(school))

    def page_mode(writer: IncrementalPdfFileWriter) -> None:
        writer.root["/PageMode"] = NameObject("/UseOutlines")
        writer.update_root()

    with pytest.raises(pades.SignedFormRefused, match="sau khi ký"):
        upload(school, "toan", approved, _append_revision(signed, page_mode), form, authority)


def test_form_signed_with_an_unregistered_certificate_is_refused(
    school: School, approved: str, toan_cert: Person, authority: Authority
) -> None:
    form = the_form(school, approved)
    signed = sign_with_file(form, toan_cert, authority, at=now_utc(school))
    with pytest.raises(pades.SignedFormRefused, match="chưa được đăng ký"):
        upload(school, "toan", approved, signed, form, authority)


def test_form_signed_with_an_expired_certificate_is_refused(
    school: School, approved: str, authority: Authority
) -> None:
    # Valid when registered, expired a day later when the form is signed (by a tool that does
    # not check, with the revocation data added as Acrobat does).
    start = now_utc(school) - timedelta(days=30)
    short = authority.issue("NGUYỄN VĂN TOÀN", not_before=start, days=31)
    register(school, "toan", short)
    form = the_form(school, approved)
    school.runtime.clock.now += timedelta(days=2)  # type: ignore[attr-defined]
    at = now_utc(school)
    signed = add_revocation_data(
        pades.sign_form(form, _file_signer(short, authority), signing_time=at), authority, at
    )
    with pytest.raises(pades.SignedFormRefused, match="hết hạn") as refused:
        upload(school, "toan", approved, signed, form, authority)
    assert "expired" in refused.value.message_en


def test_certificate_revoked_by_its_ca_before_signing_is_refused(
    school: School, approved: str, authority: Authority
) -> None:
    person = authority.issue("NGUYỄN VĂN TOÀN")
    register(school, "toan", person)
    form = the_form(school, approved)
    at = now_utc(school)
    authority.revoke(person, at - timedelta(hours=2))
    # pyHanko refuses to sign with a revoked certificate; another tool signs, then adds the CRL.
    signed = add_revocation_data(
        pades.sign_form(form, _file_signer(person, authority), signing_time=at), authority, at
    )
    with pytest.raises(pades.SignedFormRefused, match="thu hồi") as refused:
        upload(school, "toan", approved, signed, form, authority)
    assert "revoked" in refused.value.message_en and "before the signing time" in str(
        refused.value.message_en
    )


def test_form_stating_a_time_before_the_revocation_but_uploaded_after_it_is_refused(
    school: School, approved: str, authority: Authority
) -> None:
    """Whoever holds a lost token can state any signing time: after the revocation, none counts."""
    person = authority.issue("NGUYỄN VĂN TOÀN")
    sha = register(school, "toan", person)
    form = the_form(school, approved)
    signed = sign_with_file(form, person, authority, at=now_utc(school))
    school.runtime.clock.now += timedelta(hours=3)  # type: ignore[attr-defined]
    authority.revoke(person, now_utc(school))
    revoke_in_log(school, sha)
    with pytest.raises(pades.SignedFormRefused, match="ký lại bằng chứng thư số mới") as refused:
        upload(school, "toan", approved, signed, form, authority)
    assert "cannot prove the signature came before" in refused.value.message_en
    with school.runtime.transaction() as session:
        assert school.runtime.certificates(session).signed_forms(approved) == []


def test_form_signed_after_the_certificate_was_revoked_in_the_log_is_refused(
    school: School, approved: str, authority: Authority
) -> None:
    person = authority.issue("NGUYỄN VĂN TOÀN")
    sha = register(school, "toan", person)
    revoke_in_log(school, sha)  # the token was lost; the CA's CRL does not list it yet
    form = the_form(school, approved)
    signed = sign_with_file(form, person, authority, at=now_utc(school))
    with pytest.raises(pades.SignedFormRefused, match="thu hồi trong hệ thống") as refused:
        upload(school, "toan", approved, signed, form, authority)
    assert "revoked here" in refused.value.message_en


def test_signature_without_revocation_data_is_refused(
    school: School, approved: str, toan_cert: Person, authority: Authority
) -> None:
    register(school, "toan", toan_cert)
    form = the_form(school, approved)
    bare = pades.sign_form(form, _file_signer(toan_cert, authority), signing_time=now_utc(school))
    with pytest.raises(pades.SignedFormRefused, match="dữ liệu thu hồi") as refused:
        upload(school, "toan", approved, bare, form, authority)
    assert "B-LT" in refused.value.message_en


def test_revocation_data_added_in_a_revision_of_its_own_is_accepted(
    school: School, approved: str, toan_cert: Person, authority: Authority
) -> None:
    register(school, "toan", toan_cert)
    form = the_form(school, approved)
    at = now_utc(school)
    bare = pades.sign_form(form, _file_signer(toan_cert, authority), signing_time=at)
    upload(school, "toan", approved, add_revocation_data(bare, authority, at), form, authority)


def test_signing_time_before_the_form_existed_is_refused(
    school: School, approved: str, toan_cert: Person, authority: Authority
) -> None:
    register(school, "toan", toan_cert)
    form = the_form(school, approved)
    signed = sign_with_file(form, toan_cert, authority, at=now_utc(school) - timedelta(days=1))
    with pytest.raises(pades.SignedFormRefused, match="Thời điểm ký"):
        upload(school, "toan", approved, signed, form, authority)


def test_form_signed_under_an_untrusted_root_is_refused(
    school: School, approved: str, toan_cert: Person
) -> None:
    stranger = Authority()
    impostor = stranger.issue("NGUYỄN VĂN TOÀN")
    register(school, "toan", impostor)
    form = the_form(school, approved)
    signed = sign_with_file(form, impostor, stranger, at=now_utc(school))
    with pytest.raises(pades.SignedFormRefused, match="không thuộc tổ chức chứng thực"):
        upload(school, "toan", approved, signed, form, Authority())


def test_signature_revision_that_also_changes_the_page_is_refused(
    school: School, approved: str, toan_cert: Person, authority: Authority
) -> None:
    register(school, "toan", toan_cert)
    form = the_form(school, approved)
    writer = IncrementalPdfFileWriter(io.BytesIO(form))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    forged = generic.StreamObject(stream_data=b"BT /F1 24 Tf 100 700 Td (9.800.000 dong) Tj ET")
    page["/Contents"] = writer.add_object(forged)  # the amount changes in the signing revision
    writer.update_container(page)
    meta = signers.PdfSignatureMetadata(field_name="KySo", md_algorithm="sha256")
    out = io.BytesIO()
    signer = signers.PdfSigner(meta, signer=_file_signer(toan_cert, authority))
    pades.outside_any_loop(lambda: signer.sign_pdf(writer, output=out))
    with pytest.raises(pades.SignedFormRefused, match="sửa nội dung"):
        upload(school, "toan", approved, out.getvalue(), form, authority)


def test_second_signature_over_other_content_is_refused(
    school: School, approved: str, toan_cert: Person, authority: Authority
) -> None:
    register(school, "toan", toan_cert)
    form = the_form(school, approved)
    at = now_utc(school)
    once = sign_with_file(form, toan_cert, authority, at=at)

    def other_content(writer: IncrementalPdfFileWriter) -> None:
        writer.root["/PageMode"] = NameObject("/UseOutlines")
        writer.update_root()

    changed = _append_revision(once, other_content)
    twice = pades.sign_form(
        changed,
        _file_signer(toan_cert, authority),
        field_name="KySo2",
        validation_context=blt(authority, at),
        signing_time=at,
    )
    with pytest.raises(pades.SignedFormRefused, match="đúng một chữ ký") as refused:
        upload(school, "toan", approved, twice, form, authority)
    assert "exactly one signature" in refused.value.message_en


def test_certificate_the_ca_revoked_after_the_stated_signing_time_is_refused(
    school: School, approved: str, authority: Authority
) -> None:
    person = authority.issue("NGUYỄN VĂN TOÀN")
    register(school, "toan", person)
    form = the_form(school, approved)
    at = now_utc(school)
    bare = pades.sign_form(form, _file_signer(person, authority), signing_time=at)
    authority.revoke(person, at + timedelta(hours=2))
    # The revocation data was added later (Acrobat's LTV): its CRL lists the revocation, made
    # before the upload; the signing time stated two hours earlier proves nothing.
    later = add_revocation_data(bare, authority, at + timedelta(hours=3))
    with pytest.raises(pades.SignedFormRefused, match="Tổ chức chứng thực đã thu hồi") as refused:
        upload(school, "toan", approved, later, form, authority)
    assert "The CA revoked the certificate" in refused.value.message_en
