"""PAdES signatures on the payment request form (pyHanko): signing in baseline B-LT, checking an upload.

Signing embeds the signing time, the certificate chain and the revocation data (CRLs or OCSP
responses, in the document security store) so that the signature can be checked later without
network. An uploaded signed PDF is accepted only when, in this order:

1. its first revision is byte for byte the form the app generates for the request now;
2. expense_audit.pades.check_pades accepts it: one signature over the second revision, which
   adds only the signature (and validation data); nothing but validation data appended after;
   intact; chained to a configured trust root at the signing time, with the embedded revocation
   data showing every certificate of the path not revoked then, and the certificate not expired;
3. the signing time it states lies between the form's step and the upload.

workflow/certificates.py then checks that the certificate is the one registered in the log for
the person uploading it, and not revoked there (cert.revoke) before the signing time.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.pdf_signer import (
    DSSContentSettings,
    PdfSigningSession,
    SigDSSPlacementPreference,
)
from pyhanko_certvalidator import ValidationContext

from expense_audit.pades import SignedFormRefused, check_pades, outside_any_loop, refuse

__all__ = [
    "FIELD",
    "CheckedForm",
    "SignedFormRefused",
    "check_signed_form",
    "outside_any_loop",
    "sign_form",
    "signing_context",
]

FIELD = "KySo"  # one signature field per signer is added on signing
CLOCK_SKEW = timedelta(minutes=5)  # a signer's clock a little ahead of the server's


@dataclass(frozen=True)
class CheckedForm:
    """What a verified upload binds: the signer's certificate and the time it states."""

    cert_der: bytes
    cert_sha256: str
    pdf_sha256: str
    form_sha256: str
    signing_time: str
    signer_name: str
    issuer_name: str
    ca_revoked_at: str | None = None  # the CA revoked the certificate after the signing time


def signing_context(
    *,
    trust_roots: Sequence[bytes],
    chain: Sequence[bytes] = (),
    crls: Sequence[bytes] = (),
    allow_fetching: bool = False,
    moment: datetime | None = None,
) -> ValidationContext:
    """What the signer validates its certificate with and embeds (DER certificates and CRLs).

    With ``allow_fetching`` pyHanko fetches the CRLs and OCSP responses the certificates name
    (what a desktop with network does); the tests give the test CA's CRLs locally instead.
    """
    return ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(der) for der in trust_roots],
        other_certs=[asn1_x509.Certificate.load(der) for der in chain],
        crls=[asn1_crl.CertificateList.load(der) for der in crls],
        allow_fetching=allow_fetching,
        moment=moment,
        revocation_mode="require",
    )


class _TimedSigner(signers.PdfSigner):
    """A PdfSigner whose signing time is given (pyHanko otherwise reads the computer's clock)."""

    def __init__(self, *args: object, at: datetime | None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.at = at

    def init_signing_session(
        self, pdf_out: BasePdfFileWriter, existing_fields_only: bool = False
    ) -> PdfSigningSession:
        session = super().init_signing_session(pdf_out, existing_fields_only)
        if self.at is not None:
            session.system_time = self.at
        return session


def sign_form(
    pdf: bytes,
    signer: signers.Signer,
    *,
    field_name: str = FIELD,
    validation_context: ValidationContext | None = None,
    signing_time: datetime | None = None,
) -> bytes:
    """Sign ``pdf`` in PAdES with ``signer`` (a PKCS#11 token or a key file).

    With a ``validation_context``: baseline B-LT, the chain and the revocation data in the DSS of
    the signing revision itself (so the file has exactly two revisions); without: B-B.
    """
    out = io.BytesIO()
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        embed_validation_info=validation_context is not None,
        validation_context=validation_context,
        dss_settings=DSSContentSettings(
            placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE, include_vri=False
        ),
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    pdf_signer = _TimedSigner(meta, signer=signer, at=signing_time)
    outside_any_loop(lambda: pdf_signer.sign_pdf(writer, output=out))
    return out.getvalue()


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_signed_form(
    pdf: bytes,
    *,
    form: bytes,
    trust_roots: Sequence[bytes],
    now: datetime,
    form_time: datetime | None = None,
) -> CheckedForm:
    """Check an uploaded signed form against the generated ``form``; SignedFormRefused if not."""
    # 1. The first revision is the form the app generated, byte for byte.
    if not pdf.startswith(form) or len(pdf) == len(form):
        raise refuse(
            "Tệp không phải là giấy đề nghị do hệ thống tạo cho đề xuất này (hoặc đã bị sửa): "
            "hãy tải lại mẫu và ký lại.",
            "The file is not the form the app generated for this request (or it was changed): "
            "download the form again and sign it.",
        )
    # 2. One valid B-LT signature, trusted at its signing time.
    checked = check_pades(pdf, trust_roots=trust_roots)
    # 3. Signed after the form existed, and not after it was uploaded.
    if checked.signing_time > _utc(now) + CLOCK_SKEW or (
        form_time is not None and checked.signing_time < _utc(form_time) - CLOCK_SKEW
    ):
        raise refuse(
            "Thời điểm ký ghi trong chữ ký không hợp lý (trước khi có giấy đề nghị này hoặc sau "
            "lúc tải lên): hãy kiểm tra đồng hồ máy tính và ký lại.",
            "The signing time the signature states is not plausible (before this form existed "
            "or after the upload): check the computer's clock and sign again.",
        )
    return CheckedForm(
        cert_der=checked.cert_der,
        cert_sha256=checked.cert_sha256,
        pdf_sha256=checked.pdf_sha256,
        form_sha256=hashlib.sha256(form).hexdigest(),
        signing_time=checked.signing_time_text,
        signer_name=checked.signer_name,
        issuer_name=checked.issuer_name,
        ca_revoked_at=(
            checked.ca_revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ") if checked.ca_revoked_at else None
        ),
    )
