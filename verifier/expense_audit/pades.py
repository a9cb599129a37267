"""PAdES signatures on the payment request form, checked offline (pyHanko; the `pdf` extra).

The server (workflow/pades.py, on upload) and `audit-verify --ca-roots DIR` (on a dossier or a
bundle) run this same check. No network: the revocation data is what the signer embedded
(baseline B-LT: the chain and the CRLs or OCSP responses in the document security store, DSS).

1. The file parses and holds exactly one signature, made over the second revision: the first
   revision is the unsigned form (its bytes are checked against the form by the caller).
2. The signing revision only adds the signature: of the form's own objects it touches only the
   keys a signature needs (_MAY_CHANGE); revisions after it may only add validation data (DSS),
   as pyHanko's difference analysis reports it (ModificationLevel.LTA_UPDATES).
3. The signature is intact and its certificate chains to a given trust root, at the signing time
   the signature states, with revocation data for every certificate of the path found in the file
   itself: a certificate revoked before that time, or expired, or without revocation data, fails.

NOTE: the signing time is the one the signer states (no timestamp authority is required); the
server bounds it by the form's creation and the upload, and the log records it.
Importing this module needs pyHanko: `pip install expense-audit[pdf]`.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import SignatureValidationError, ValidationInfoReadingError
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator.errors import PathValidationError

from .errors import DataInvalid

T = TypeVar("T")

# Keys the signing revision may add or change in objects of the form: the catalog gains the
# AcroForm (and, for B-LT, the DSS) and a PDF version, a page gains the signature widget in
# /Annots, the document information gains the signing tool and a modification date.
_MAY_CHANGE = frozenset(
    {"/AcroForm", "/Annots", "/DSS", "/Extensions", "/Perms", "/Version", "/ModDate", "/Producer"}
)
# NOTE: pyHanko logs every failed path validation as a warning with a traceback; a refused upload
# is an expected outcome here and is reported to the person, not in the server's log.
logging.getLogger("pyhanko.sign.validation.generic_cms").setLevel(logging.ERROR)


class SignedFormRefused(DataInvalid):
    """A signed form that is not accepted; the message says why (Vietnamese and English)."""

    code = "signed_form_refused"


@dataclass(frozen=True)
class PadesSignature:
    """What a valid signature binds: the signer's certificate and the time it states."""

    cert_der: bytes
    cert_sha256: str
    pdf_sha256: str
    signing_time: datetime  # aware, UTC
    signer_name: str  # the certificate's common name
    issuer_name: str  # the issuing CA's common name
    ca_revoked_at: datetime | None = None  # a CRL in the file revokes it after the signing time

    @property
    def signing_time_text(self) -> str:
        """The signing time as the log writes times."""
        return self.signing_time.strftime("%Y-%m-%dT%H:%M:%SZ")


def refuse(vi: str, en: str) -> SignedFormRefused:
    """A refusal of the signed PDF with its reason in both languages."""
    return SignedFormRefused(vi, en=en, field="pdf")


def outside_any_loop(call: Callable[[], T]) -> T:
    """Run ``call`` in a thread of its own.

    NOTE: pyHanko's synchronous API wraps its async one in asyncio.run(), which refuses to run
    where an event loop is already running in the thread (an async server, or a test process that
    drives a browser); a fresh thread never has one.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


def _common_name(name: Any) -> str:
    native = name.native
    return str(native.get("common_name") or name.human_friendly)


def check_pades(pdf: bytes, *, trust_roots: Sequence[bytes]) -> PadesSignature:
    """Check the one PAdES signature of ``pdf`` offline (see the module docstring)."""
    try:
        return _check(pdf, trust_roots)
    except (PdfError, KeyError, TypeError, AttributeError, IndexError) as exc:
        # NOTE: a hostile file can break pyHanko's reading anywhere; that is a refusal too.
        raise refuse("Không đọc được tệp PDF.", f"The PDF cannot be read: {exc}") from exc


def _check(pdf: bytes, trust_roots: Sequence[bytes]) -> PadesSignature:
    # 1. One signature, over the second revision.
    try:
        reader = PdfFileReader(io.BytesIO(pdf))
        embedded = reader.embedded_signatures
    except Exception as exc:  # noqa: BLE001 - any parse failure of hostile input is a refusal
        raise refuse("Không đọc được tệp PDF.", "The PDF cannot be read.") from exc
    if len(embedded) != 1:
        raise refuse(
            f"Tệp phải có đúng một chữ ký số, tìm thấy {len(embedded)}.",
            f"The file must hold exactly one signature, found {len(embedded)}.",
        )
    signature = embedded[0]
    if signature.signed_revision != 1:
        raise refuse(
            "Tệp phải gồm đúng giấy đề nghị và một lần ký.",
            "The file must hold exactly the form and one signing revision.",
        )
    # 2. The signing revision adds the signature only.
    _only_signature_added(reader)
    claimed = signature.self_reported_timestamp
    if claimed is None:
        raise refuse(
            "Chữ ký số không ghi thời điểm ký.", "The signature does not state its signing time."
        )
    moment = claimed.astimezone(UTC)
    # 3. Intact, trusted at the signing time, with the embedded revocation data only.
    roots = [asn1_x509.Certificate.load(der) for der in trust_roots]
    try:
        context = DocumentSecurityStore.read_dss(reader).as_validation_context(
            {"trust_roots": roots, "allow_fetching": False, "moment": moment}
            # NOTE: revocation data fetched after signing (Acrobat's "add verification
            # information", a later CRL) speaks for the signing time too: a CRL lists every
            # revocation with its date.
            | {"revocation_mode": "require", "retroactive_revinfo": True}
        )
    except (ValidationInfoReadingError, ValueError):  # no DSS, or one without revocation data
        context = None
    if context is None:
        raise _no_revocation_data()
    try:
        status = outside_any_loop(
            lambda: validate_pdf_signature(signature, signer_validation_context=context)
        )
    except (SignatureValidationError, PathValidationError, ValueError) as exc:
        raise refuse("Chữ ký số không hợp lệ.", f"The signature is not valid: {exc}") from exc
    if not status.intact or not status.valid:
        raise refuse(
            "Chữ ký số không khớp với nội dung tệp.", "The signature does not match the file."
        )
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE and not (
        status.coverage == SignatureCoverageLevel.ENTIRE_REVISION
        and status.modification_level is not None
        and status.modification_level <= ModificationLevel.LTA_UPDATES
    ):
        raise refuse(
            "Tệp đã bị thay đổi sau khi ký (có phần sửa thêm vào sau chữ ký).",
            "The file was changed after it was signed (an update appended after the signature).",
        )
    cert = signature.signer_cert
    if not status.trusted:
        raise _untrusted(status, cert, moment)
    cert_der = cert.dump()
    return PadesSignature(
        cert_der=cert_der,
        cert_sha256=hashlib.sha256(cert_der).hexdigest(),
        pdf_sha256=hashlib.sha256(pdf).hexdigest(),
        signing_time=moment,
        signer_name=_common_name(cert.subject),
        issuer_name=_common_name(cert.issuer),
        ca_revoked_at=_revoked_after(context.crls, cert, moment),
    )


def _revoked_after(crls: Sequence[Any], cert: Any, moment: datetime) -> datetime | None:
    """The earliest revocation of ``cert`` after ``moment`` that a CRL in the file lists."""
    found: list[datetime] = []
    for crl in crls:
        tbs = crl["tbs_cert_list"]
        if tbs["issuer"] != cert.issuer:
            continue
        for entry in tbs["revoked_certificates"]:
            when = entry["revocation_date"].native
            if entry["user_certificate"].native == cert.serial_number and when > moment:
                found.append(when.astimezone(UTC))
    return min(found, default=None)


def _no_revocation_data() -> SignedFormRefused:
    return refuse(
        "Tệp đã ký không kèm dữ liệu thu hồi (CRL/OCSP) của chứng thư số: hãy ký theo chuẩn "
        "PAdES B-LT (nhúng thông tin kiểm tra, LTV).",
        "The signed file carries no revocation data (CRL/OCSP) for the certificate: sign in "
        "PAdES baseline B-LT (embed the validation information, LTV).",
    )


def _untrusted(status: Any, cert: Any, moment: datetime) -> SignedFormRefused:
    """The reason a signature is not trusted, from pyHanko's AdES sub-indication."""
    indication = str(getattr(status.trust_problem_indic, "name", ""))
    at = moment.strftime("%d/%m/%Y %H:%M UTC")
    revoked = status.revocation_details
    if revoked is not None or "REVOKED" in indication:
        when = revoked.revocation_date.strftime("%d/%m/%Y") if revoked is not None else "?"
        return refuse(
            f"Chứng thư số đã bị thu hồi ngày {when}, trước thời điểm ký ({at}).",
            f"The certificate was revoked on {when}, before the signing time ({at}).",
        )
    if not cert.not_valid_before <= moment <= cert.not_valid_after:
        return refuse(
            f"Chứng thư số đã hết hạn hoặc chưa có hiệu lực vào thời điểm ký ({at}).",
            f"The certificate had expired or was not yet valid at the signing time ({at}).",
        )
    if "REVINFO" in indication or "TRY_LATER" in indication or "NO_POE" in indication:
        return _no_revocation_data()
    return refuse(
        "Chứng thư số không thuộc tổ chức chứng thực được cấu hình, hoặc thiếu dữ liệu thu hồi "
        "(CRL/OCSP) của chuỗi chứng thư.",
        "The certificate does not chain to a configured trust root, or the chain lacks "
        f"revocation data (CRL/OCSP) ({indication or 'untrusted'}).",
    )


def _only_signature_added(reader: PdfFileReader) -> None:
    """The signing revision adds objects; of the form's own it touches only _MAY_CHANGE keys.

    pyHanko's diff policy would say this, but it cannot review against a first revision without an
    AcroForm (fpdf2 writes none), so the rule is written out here.
    """
    before = reader.get_historical_resolver(0)
    for ref in reader.xrefs.explicit_refs_in_revision(1):
        if reader.xrefs.get_introducing_revision(ref) != 0:
            continue  # a new object (the signature, its field, its appearance)
        old = before(ref)
        new = reader.get_historical_resolver(1)(ref)
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
        return [_plain(v) for v in list.__iter__(value)]
    return value


def _changed() -> SignedFormRefused:
    return refuse(
        "Lần ký đã sửa nội dung giấy đề nghị, không chỉ thêm chữ ký.",
        "The signing revision changed the form's content, not only added a signature.",
    )


def form_prefix_sha256(pdf: bytes, form_sha256: str) -> bool:
    """Whether the PDF's first revision (a prefix ending at an %%EOF) hashes to ``form_sha256``.

    The verifier has the log's hash of the form, not the form: it tries each prefix that ends a
    revision (the %%EOF marker and its end of line).
    """
    start = 0
    while (found := pdf.find(b"%%EOF", start)) >= 0:
        end = found + len(b"%%EOF")
        for tail in (b"", b"\n", b"\r\n", b"\r"):
            if (
                pdf[end : end + len(tail)] == tail
                and hashlib.sha256(pdf[: end + len(tail)]).hexdigest() == form_sha256
            ):
                return True
        start = end
    return False
