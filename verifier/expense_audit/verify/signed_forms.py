"""The PAdES-signed forms a bundle or a dossier carries, checked against the log's `form.sign`.

Each file sits under signed-forms/<sha256>.pdf. Without anything optional:

1. its bytes hash to its name and to the pdf_sha256 of a `form.sign` event (else it is not the
   file the log recorded: a named problem);
2. a `form.sign` of the bundle or the dossier whose PDF is absent is listed (when the bundle says
   it was made with its files).

With the `pdf` extra (pyHanko) and trust roots (--ca-roots DIR), also, offline:

3. the PAdES signature is valid at its signing time with the revocation data in the file
   (expense_audit.pades.check_pades), by the certificate the event names, at the time it names,
   over a first revision that hashes to the event's form_sha256.

Without the extra, or without roots, the report says the PDF signatures were not validated.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..certificates import der_from_upload
from ..errors import WorkflowError
from .format import SIGNED_FORM_NAME
from .report import Kind

NO_EXTRA = (
    "the PDF signatures were NOT validated: install the pdf extra "
    "(pip install 'expense-audit[pdf]') and give --ca-roots DIR"
)
NO_ROOTS = "the PDF signatures were NOT validated: give the trust roots with --ca-roots DIR"

Problem = tuple[int | None, str, str, str | None]  # seq, kind, detail, request


def pdf_extra_installed() -> bool:
    """Whether pyHanko (the `pdf` extra) can be imported."""
    try:
        return importlib.util.find_spec("pyhanko") is not None
    except (ImportError, ValueError):  # blocked in sys.modules
        return False


def read_roots(folder: str | Path) -> list[bytes]:
    """The trust roots in a folder: every .pem, .crt, .cer or .der certificate, as DER."""
    path = Path(folder)
    if not path.is_dir():
        raise WorkflowError(f"--ca-roots {folder}: not a folder")
    roots = [
        der_from_upload(item.read_bytes())
        for item in sorted(path.iterdir())
        if item.suffix.lower() in (".pem", ".crt", ".cer", ".der")
    ]
    if not roots:
        raise WorkflowError(f"--ca-roots {folder}: no certificate (.pem, .crt, .cer, .der) in it")
    return roots


@dataclass
class SignedFormsResult:
    """What the check found: problems, and one line on whether signatures were validated."""

    present: int = 0
    validated: int = 0
    status: str = ""
    problems: list[Problem] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"present": self.present, "validated": self.validated, "status": self.status}


def check_signed_forms(
    pdfs: Mapping[str, bytes],
    records: Sequence[Mapping[str, Any]],
    *,
    ca_roots: Sequence[bytes] | None,
    required: bool,
    required_after: int = 0,
) -> SignedFormsResult:
    """Check the signed PDFs (member name -> bytes) against the log's form.sign records.

    ``required``: every record after event ``required_after`` (a delta's start) must have its PDF.
    """
    result = SignedFormsResult()
    by_hash = {str(r["pdf_sha256"]): r for r in records}
    present: dict[str, bytes] = {}
    # 1. Each file is the one an event recorded.
    for name, data in sorted(pdfs.items()):
        match = SIGNED_FORM_NAME.fullmatch(name)
        actual = hashlib.sha256(data).hexdigest()
        record = by_hash.get(match[1]) if match else None
        if match is None or actual != match[1]:
            result.problems.append(
                (
                    record["seq"] if record else None,
                    Kind.SIGNED_PDF_MISMATCH,
                    f"{name} hashes to {actual}: it is not the signed PDF the log recorded",
                    str(record["request"]) if record else None,
                )
            )
        elif record is None:
            result.problems.append(
                (
                    None,
                    Kind.SIGNED_PDF_MISMATCH,
                    f"{name}: no form.sign event records this PDF",
                    None,
                )
            )
        else:
            present[actual] = data
    result.present = len(present)
    # 2. Every recorded PDF is here, when the files were asked for.
    if required:
        for sha, record in sorted(by_hash.items()):
            if sha not in present and int(record["seq"]) > required_after:
                result.problems.append(
                    (
                        record["seq"],
                        Kind.SIGNED_PDF_MISSING,
                        f"signed-forms/{sha}.pdf (form of {record['request']}) is recorded but "
                        "not here",
                        str(record["request"]),
                    )
                )
    if not present:
        result.status = "no signed PDF to check" if not by_hash else "no signed PDF here"
        return result
    # 3. The signatures themselves, when pyHanko and the roots are there.
    if not pdf_extra_installed():
        result.status = NO_EXTRA
        return result
    if not ca_roots:
        result.status = NO_ROOTS
        return result
    for sha, data in present.items():
        problem = _check_signature(data, by_hash[sha], ca_roots)
        if problem is None:
            result.validated += 1
        else:
            result.problems.append(
                (
                    by_hash[sha]["seq"],
                    Kind.SIGNED_PDF_INVALID,
                    problem,
                    str(by_hash[sha]["request"]),
                )
            )
    result.status = (
        f"{result.validated} of {len(present)} PDF signature(s) validated against --ca-roots"
    )
    return result


def _check_signature(pdf: bytes, record: Mapping[str, Any], roots: Sequence[bytes]) -> str | None:
    """The problem with one signed PDF, or None."""
    from ..pades import SignedFormRefused, check_pades, form_prefix_sha256  # the pdf extra

    name = f"signed-forms/{record['pdf_sha256']}.pdf"
    try:
        signature = check_pades(pdf, trust_roots=roots)
    except SignedFormRefused as exc:
        return f"{name}: {exc.message_en}"
    if signature.cert_sha256 != record["certificate"]:
        return (
            f"{name}: signed with certificate {signature.cert_sha256[:16]}, the event names "
            f"{str(record['certificate'])[:16]}"
        )
    if signature.signing_time_text != record["signing_time"]:
        return (
            f"{name}: signed at {signature.signing_time_text}, the event says "
            f"{record['signing_time']}"
        )
    if record.get("form_sha256") and not form_prefix_sha256(pdf, str(record["form_sha256"])):
        return f"{name}: its first revision is not the form whose sha256 the event records"
    return None
