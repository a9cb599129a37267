"""A test certification authority made with cryptography's x509 builder (root, issuing CA, people).

It stands in for the national root and VNPT-CA / Viettel-CA: a root, an issuing CA under it,
personal RSA certificates, and the CRLs both CAs publish (PAdES B-LT embeds them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from expense_audit.certificates import possession_message

BASE = datetime(2024, 6, 1, tzinfo=UTC)


def _name(common: str, org: str = "Test CA Việt Nam") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Person:
    """A personal certificate and its private key (the key goes into SoftHSM2 for tokens)."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(Encoding.DER)

    def sign(self, message: bytes) -> bytes:
        """What the token does for a possession proof (RSA PKCS#1 v1.5, SHA-256)."""
        return self.key.sign(message, padding.PKCS1v15(), hashes.SHA256())


@dataclass
class Authority:
    """A root and an issuing CA; issue() makes personal signing certificates."""

    root_key: rsa.RSAPrivateKey = field(default_factory=_key)
    ca_key: rsa.RSAPrivateKey = field(default_factory=_key)
    root: x509.Certificate = field(init=False)
    ca: x509.Certificate = field(init=False)
    revoked: dict[int, datetime] = field(default_factory=dict)  # serial -> revocation date

    def __post_init__(self) -> None:
        root_name = _name("Test Root CA")
        self.root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(self.root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(BASE - timedelta(days=3650))
            .not_valid_after(BASE + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.root_key.public_key()),
                critical=False,
            )
            .sign(self.root_key, hashes.SHA256())
        )
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(_name("Test Issuing CA"))
            .issuer_name(root_name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(BASE - timedelta(days=1000))
            .not_valid_after(BASE + timedelta(days=3000))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.root_key.public_key()),
                critical=False,
            )
            .sign(self.root_key, hashes.SHA256())
        )

    def issue(
        self,
        name: str,
        *,
        not_before: datetime = BASE,
        days: int = 730,
        key: rsa.RSAPrivateKey | None = None,
    ) -> Person:
        """A personal signing certificate (digitalSignature, nonRepudiation)."""
        key = key or _key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name, org="Trường Tiểu học Demo"))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, True, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        return Person(cert, key)

    def revoke(self, person: Person, at: datetime) -> None:
        """The CA revokes a personal certificate from ``at`` on (the CRLs made later list it)."""
        self.revoked[person.cert.serial_number] = at

    def crl(self, now: datetime) -> x509.CertificateRevocationList:
        """The issuing CA's CRL at ``now``, listing the serials revoked by then."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca.subject)
            .last_update(now - timedelta(hours=1))
            .next_update(now + timedelta(days=7))
        )
        for serial, at in self.revoked.items():
            if at <= now:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(serial)
                    .revocation_date(at)
                    .build()
                )
        return builder.sign(self.ca_key, hashes.SHA256())

    def root_crl(self, now: datetime) -> x509.CertificateRevocationList:
        """The root's CRL (the issuing CA is not revoked): B-LT needs one for each CA below it."""
        return (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.root.subject)
            .last_update(now - timedelta(hours=1))
            .next_update(now + timedelta(days=30))
            .sign(self.root_key, hashes.SHA256())
        )

    def crls(self, now: datetime) -> list[bytes]:
        """Both CRLs as the CAs publish them (DER), as a signer downloads them at ``now``."""
        return [c.public_bytes(Encoding.DER) for c in (self.crl(now), self.root_crl(now))]

    def write_crls(self, folder: Path, now: datetime) -> list[Path]:
        """The CRL files a signer without network is given (expense-sign --crl)."""
        paths = []
        for name, der in zip(("issuing-ca.crl", "root.crl"), self.crls(now), strict=True):
            paths.append(folder / name)
            paths[-1].write_bytes(der)
        return paths


def proof_for(origin: str, owner: str, sha256: str, nonce: str, by: str, person: Person) -> bytes:
    """Sign a registration's possession message with the person's key."""
    return person.sign(
        possession_message(origin=origin, owner=owner, sha256=sha256, nonce=nonce, by=by)
    )
