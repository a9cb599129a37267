"""A person's CA certificate (chữ ký số) bound to them in the log, and its proof of possession.

The server (workflow/certificates.py) and the verifier use these same functions: what a
certificate's facts are, the message the person signs to prove they hold its private key, and
how that signature is checked. Only `cryptography` is used; PAdES checks of signed PDFs need the
optional pyHanko and live on the server side.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from .canonical import canonical_json
from .errors import DataInvalid

POSSESSION_DOMAIN = b"expense-audit/cert-possession\n"


@dataclass(frozen=True)
class CertificateFacts:
    """What the log records about a certificate (times in UTC, ISO 8601 with Z)."""

    sha256: str
    subject: str
    serial: str  # hex, lower case, as CAs print it
    issuer: str
    not_before: str
    not_after: str

    def as_data(self) -> dict[str, str]:
        """The fields as they go into the `cert.register` event."""
        return {
            "sha256": self.sha256,
            "subject": self.subject,
            "serial": self.serial,
            "issuer": self.issuer,
            "not_before": self.not_before,
            "not_after": self.not_after,
        }


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_der(der: bytes) -> x509.Certificate:
    """Parse a DER certificate (DataInvalid if it is not one)."""
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise DataInvalid(
            "Tệp không phải là chứng thư số (DER/PEM).",
            en="The file is not a certificate (DER or PEM).",
            field="certificate",
        ) from exc


def der_from_upload(raw: bytes) -> bytes:
    """A certificate file as people have it (PEM or DER) to DER."""
    if b"-----BEGIN CERTIFICATE-----" in raw:
        try:
            return x509.load_pem_x509_certificate(raw).public_bytes(Encoding.DER)
        except ValueError as exc:
            raise DataInvalid(
                "Tệp không phải là chứng thư số (DER/PEM).",
                en="The file is not a certificate (DER or PEM).",
                field="certificate",
            ) from exc
    load_der(raw)
    return raw


def facts_of(der: bytes) -> CertificateFacts:
    """Subject, serial, issuer, validity and SHA-256 of a DER certificate."""
    cert = load_der(der)
    return CertificateFacts(
        sha256=hashlib.sha256(der).hexdigest(),
        subject=cert.subject.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        issuer=cert.issuer.rfc4514_string(),
        not_before=_utc(cert.not_valid_before_utc),
        not_after=_utc(cert.not_valid_after_utc),
    )


def possession_message(*, origin: str, owner: str, sha256: str, nonce: str, by: str) -> bytes:
    """What the person signs with the certificate's key to prove they hold it."""
    body: dict[str, Any] = {
        "origin": origin,
        "owner": owner,
        "certificate": sha256,
        "nonce": nonce,
        "by": by,
    }
    return POSSESSION_DOMAIN + canonical_json(body)


def check_possession(der: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` over ``message`` verifies with the certificate's public key.

    RSA (PKCS#1 v1.5, SHA-256: what Vietnamese CA tokens hold) and ECDSA (SHA-256, DER signature).
    """
    public = load_der(der).public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def b64(data: bytes) -> str:
    """Standard base64 (the certificate and the proof in the log)."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    """Inverse of b64 (DataInvalid if malformed)."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise DataInvalid(
            "Dữ liệu base64 không hợp lệ.", en="Invalid base64 data.", field="base64"
        ) from exc
