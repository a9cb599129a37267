"""PAdES signatures on the payment request form (pyHanko): signing, and checking an upload.

An uploaded signed PDF is accepted only when, in this order:

1. its first revision is byte for byte the form the app generates for the request now;
2. it holds exactly one signature, over the whole file (nothing appended after signing), and the
   signing revision changes nothing of the form but what a signature needs (the catalog's
   AcroForm, the page's Annots);
3. the signature is cryptographically intact and its certificate chains to a configured trust
   root, valid at the time of the check (no network: revocation is not fetched);
4. the signer's certificate is the one registered in the log for the person uploading it, and
   was within its validity at the signing time.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from expense_audit.errors import DataInvalid

T = TypeVar("T")

FIELD = "KySo"  # one signature field per signer is added on signing


class SignedFormRefused(DataInvalid):
    """An uploaded signed form that is not accepted; the message says why."""

    code = "signed_form_refused"


@dataclass(frozen=True)
class CheckedForm:
    """What a verified upload binds: the signer's certificate and the time it claims."""

    cert_der: bytes
    cert_sha256: str
    pdf_sha256: str
    form_sha256: str
    signing_time: str


def _refuse(vi: str, en: str) -> SignedFormRefused:
    return SignedFormRefused(vi, en=en, field="pdf")


def outside_any_loop(call: Callable[[], T]) -> T:
    """Run ``call`` in a thread of its own.

    NOTE: pyHanko's synchronous API wraps its async one in asyncio.run(), which refuses to run
    where an event loop is already running in the thread (an async server, or a test process that
    drives a browser); a fresh thread never has one.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


def sign_form(pdf: bytes, signer: signers.Signer, *, field_name: str = FIELD) -> bytes:
    """Sign ``pdf`` in PAdES (baseline B-B) with ``signer`` (a PKCS#11 token or a key file)."""
    out = io.BytesIO()
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    outside_any_loop(lambda: signers.PdfSigner(meta, signer=signer).sign_pdf(writer, output=out))
    return out.getvalue()


# Keys the signing revision may add or change in objects of the form: the catalog gains the
# AcroForm (and, for B-LT, the DSS) and a PDF version, a page gains the signature widget in
# /Annots, the document information gains the signing tool and a modification date.
_MAY_CHANGE = frozenset(
    {"/AcroForm", "/Annots", "/DSS", "/Extensions", "/Perms", "/Version", "/ModDate", "/Producer"}
)


def _only_signature_added(reader: PdfFileReader) -> None:
    """The signing revision adds objects; of the form's own it touches only _MAY_CHANGE keys.

    pyHanko's diff policy would say this, but it cannot review against a first revision without an
    AcroForm (fpdf2 writes none), so the rule is written out here.
    """
    if reader.xrefs.total_revisions != 2:
        raise _refuse(
            "Tệp phải gồm đúng giấy đề nghị và một lần ký.",
            "The file must hold exactly the form and one signing revision.",
        )
    before = reader.get_historical_resolver(0)
    for ref in reader.xrefs.explicit_refs_in_revision(1):
        if reader.xrefs.get_introducing_revision(ref) != 0:
            continue  # a new object (the signature, its field, its appearance)
        old, new = before(ref), reader.get_object(ref)  # type: ignore[no-untyped-call]
        if isinstance(old, generic.StreamObject) or not isinstance(old, generic.DictionaryObject):
            raise _changed()
        if not isinstance(new, generic.DictionaryObject) or isinstance(new, generic.StreamObject):
            raise _changed()
        for key in set(old) | set(new):
            if key in _MAY_CHANGE:
                continue
            if (
                key not in old
                or key not in new
                or _plain(old.raw_get(key)) != _plain(new.raw_get(key))
            ):
                raise _changed()


def _plain(value: object) -> object:
    """An object as comparable data: references by number, not resolved."""
    if isinstance(value, generic.IndirectObject):
        return ("ref", value.idnum, value.generation)
    if isinstance(value, generic.DictionaryObject):
        return {k: _plain(value.raw_get(k)) for k in value}
    if isinstance(value, generic.ArrayObject):
        return (
            [_plain(v) for v in value.raw_iter()]
            if hasattr(value, "raw_iter")
            else [_plain(v) for v in list.__iter__(value)]
        )
    return value


def _changed() -> SignedFormRefused:
    return _refuse(
        "Lần ký đã sửa nội dung giấy đề nghị, không chỉ thêm chữ ký.",
        "The signing revision changed the form's content, not only added a signature.",
    )


def check_signed_form(
    pdf: bytes, *, form: bytes, trust_roots: Sequence[bytes], now: datetime
) -> CheckedForm:
    """Check an uploaded signed form against the generated ``form``; SignedFormRefused if not."""
    # 1. The first revision is the form the app generated, byte for byte.
    if not pdf.startswith(form) or len(pdf) == len(form):
        raise _refuse(
            "Tệp không phải là giấy đề nghị do hệ thống tạo cho đề xuất này (hoặc đã bị sửa): "
            "hãy tải lại mẫu và ký lại.",
            "The file is not the form the app generated for this request (or it was changed): "
            "download the form again and sign it.",
        )
    try:
        reader = PdfFileReader(io.BytesIO(pdf))
        embedded = reader.embedded_signatures
    except Exception as exc:  # noqa: BLE001 - any parse failure of hostile input is a refusal
        raise _refuse("Không đọc được tệp PDF.", "The PDF cannot be read.") from exc
    # 2. One signature over the whole file, changing nothing but its own field.
    if len(embedded) != 1:
        raise _refuse(
            f"Tệp phải có đúng một chữ ký số, tìm thấy {len(embedded)}.",
            f"The file must hold exactly one signature, found {len(embedded)}.",
        )
    signature = embedded[0]
    if now.tzinfo is None:  # the app's clock is naive UTC
        now = now.replace(tzinfo=UTC)
    roots = [asn1_x509.Certificate.load(der) for der in trust_roots]
    context = ValidationContext(
        trust_roots=roots, allow_fetching=False, moment=now, revocation_mode="soft-fail"
    )
    try:
        status = outside_any_loop(
            lambda: validate_pdf_signature(signature, signer_validation_context=context)
        )
    except (SignatureValidationError, ValueError) as exc:
        raise _refuse("Chữ ký số không hợp lệ.", f"The signature is not valid: {exc}") from exc
    if not status.intact or not status.valid:
        raise _refuse(
            "Chữ ký số không khớp với nội dung tệp.", "The signature does not match the file."
        )
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        raise _refuse("Tệp đã bị thay đổi sau khi ký.", "The file was changed after it was signed.")
    _only_signature_added(reader)
    # 3. The certificate chains to a configured root.
    if not status.trusted:
        raise _refuse(
            "Chứng thư số không thuộc tổ chức chứng thực được cấu hình, hoặc đã hết hạn.",
            "The certificate does not chain to a configured trust root, or it has expired.",
        )
    cert_der = signature.signer_cert.dump()
    signing_time = status.signer_reported_dt or now
    return CheckedForm(
        cert_der=cert_der,
        cert_sha256=hashlib.sha256(cert_der).hexdigest(),
        pdf_sha256=hashlib.sha256(pdf).hexdigest(),
        form_sha256=hashlib.sha256(form).hexdigest(),
        signing_time=signing_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
