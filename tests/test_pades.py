"""Payment request forms signed in PAdES with a CA certificate on a PKCS#11 token (SoftHSM2)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from asn1crypto import x509 as asn1_x509
from pyhanko.config.pkcs11 import TokenCriteria
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import NameObject
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session
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


def sign_with_token(pdf: bytes, token: Token, cert: Person, authority: Authority) -> bytes:
    with open_pkcs11_session(
        token.module, token_criteria=TokenCriteria(label=token.label), user_pin=token.pin
    ) as session:
        signer = PKCS11Signer(
            session,
            key_label=token.key_label,
            signing_cert=asn1_x509.Certificate.load(cert.der),
            ca_chain=[asn1_x509.Certificate.load(authority.ca.public_bytes(_DER))],
        )
        return pades.sign_form(pdf, signer)


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


def sign_with_file(pdf: bytes, cert: Person, authority: Authority) -> bytes:
    return pades.sign_form(pdf, _file_signer(cert, authority))


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


def test_principal_signs_the_form_with_a_pkcs11_token_and_it_is_accepted(
    school: School, approved: str, token: Token, toan_cert: Person, authority: Authority
) -> None:
    form = the_form(school, approved)
    signed = sign_with_token(form, token, toan_cert, authority)
    checked = pades.check_signed_form(
        signed, form=form, trust_roots=roots(authority), now=school.runtime.now()
    )
    assert checked.cert_der == toan_cert.der
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


def test_signed_form_with_the_registered_certificate_enters_the_log(
    school: School, approved: str, token: Token, toan_cert: Person, authority: Authority
) -> None:
    register(school, "toan", toan_cert)
    form = the_form(school, approved)
    signed = sign_with_token(form, token, toan_cert, authority)
    sha = upload(school, "toan", approved, signed, form, authority)
    with school.runtime.transaction() as session:
        (row,) = school.runtime.certificates(session).signed_forms(approved)
        assert row.pdf_sha256 == sha and row.login == "toan"


def test_form_signed_with_another_persons_certificate_is_refused(
    school: School, approved: str, toan_cert: Person, authority: Authority
) -> None:
    mai_cert = authority.issue("NGUYỄN THỊ MAI")
    register(school, "toan", toan_cert)
    register(school, "mai", mai_cert)
    form = the_form(school, approved)
    signed = sign_with_file(form, mai_cert, authority)
    with pytest.raises(pades.SignedFormRefused, match="người khác"):
        upload(school, "toan", approved, signed, form, authority)


def test_form_changed_before_signing_is_refused(
    school: School, approved: str, toan_cert: Person, authority: Authority
) -> None:
    register(school, "toan", toan_cert)
    form = the_form(school, approved)
    changed = form.replace(b"/Title", b"/Titlf", 1)
    signed = sign_with_file(changed, toan_cert, authority)
    with pytest.raises(pades.SignedFormRefused, match="không phải là giấy đề nghị"):
        upload(school, "toan", approved, signed, form, authority)


def test_form_changed_after_signing_is_refused(
    school: School, approved: str, toan_cert: Person, authority: Authority
) -> None:
    register(school, "toan", toan_cert)
    form = the_form(school, approved)
    signed = sign_with_file(form, toan_cert, authority)
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    writer.root["/PageMode"] = NameObject("/UseOutlines")  # an update appended after signing
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(pades.SignedFormRefused, match="sau khi ký"):
        upload(school, "toan", approved, out.getvalue(), form, authority)


def test_form_signed_with_an_unregistered_certificate_is_refused(
    school: School, approved: str, toan_cert: Person, authority: Authority
) -> None:
    form = the_form(school, approved)
    signed = sign_with_file(form, toan_cert, authority)
    with pytest.raises(pades.SignedFormRefused, match="chưa được đăng ký"):
        upload(school, "toan", approved, signed, form, authority)


def test_form_signed_with_an_expired_certificate_is_refused(
    school: School, approved: str, toan_cert: Person, authority: Authority
) -> None:
    register(school, "toan", toan_cert)
    form = the_form(school, approved)
    signed = sign_with_file(form, toan_cert, authority)
    school.runtime.clock.now += timedelta(days=800)  # type: ignore[attr-defined]
    with pytest.raises(pades.SignedFormRefused, match="hết hạn"):
        upload(school, "toan", approved, signed, form, authority)


def test_form_signed_under_an_untrusted_root_is_refused(
    school: School, approved: str, toan_cert: Person
) -> None:
    stranger = Authority()
    form = the_form(school, approved)
    signed = sign_with_file(form, toan_cert, stranger)
    with pytest.raises(pades.SignedFormRefused):
        upload(school, "toan", approved, signed, form, stranger.__class__())


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
    once = sign_with_file(form, toan_cert, authority)
    twice = pades.sign_form(once, _file_signer(toan_cert, authority), field_name="KySo2")
    with pytest.raises(pades.SignedFormRefused, match="đúng một chữ ký"):
        upload(school, "toan", approved, twice, form, authority)
