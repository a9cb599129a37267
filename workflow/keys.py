"""Signing keys: per-user Ed25519 keys encrypted under the user's secret; the institution key."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from expense_audit.canonical import key_fingerprint, key_id

from .errors import InstitutionKeyExists, InstitutionKeyMissing, SecretTooWeak, WrongSecret
from .passwords import is_common_password

DEFAULT_SCRYPT_N = 2**15  # ~32 MiB and ~0.1 s per unlock on a small server
MIN_SECRET_LENGTH = 10
MAX_FAILED_SIGNATURES = 5  # wrong secrets in a row before a server-held key locks
INSTITUTION_ACTOR = "institution"
PEPPER_FILE = "signing.pepper"


class Signer(Protocol):
    """Anything that can sign an event: an unlocked user key or the institution key."""

    @property
    def key_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True)
class UnlockedKey:
    """A private key held in memory only for the signing step."""

    key_id: str
    private: Ed25519PrivateKey

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes_raw()


@dataclass(frozen=True)
class SealedKey:
    """A new key pair, its private half encrypted under the owner's secret."""

    key_id: str
    public_raw: bytes
    encrypted_private: bytes
    kdf: dict[str, Any]


def _derive(secret: str, kdf: dict[str, Any], pepper: bytes | None) -> bytes:
    material = secret.encode("utf-8")
    if kdf.get("peppered"):
        # NOTE: the pepper lives beside the institution key, never in the database: a stolen
        # database alone gives nothing to try secrets against.
        if pepper is None:
            raise InstitutionKeyMissing("The signing pepper is not loaded.")
        material = hmac.new(pepper, material, hashlib.sha256).digest()
    return Scrypt(
        salt=bytes.fromhex(kdf["salt"]),
        length=32,
        n=int(kdf["n"]),
        r=int(kdf["r"]),
        p=int(kdf["p"]),
    ).derive(material)


def check_secret_policy(secret: str) -> None:
    """A server-held signing secret: long, not only digits, not a common password."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise SecretTooWeak(
            f"Mã ký phải có ít nhất {MIN_SECRET_LENGTH} ký tự.",
            en=f"The signing secret needs at least {MIN_SECRET_LENGTH} characters.",
            reason="too_short",
        )
    if secret.isdigit():
        raise SecretTooWeak(
            "Mã ký không được chỉ gồm chữ số: hãy dùng một cụm vài từ.",
            en="A signing secret cannot be only digits: use a few words.",
            reason="digits",
        )
    if is_common_password(secret):
        raise SecretTooWeak(
            "Mã ký này nằm trong danh sách mật khẩu phổ biến: hãy chọn mã khác.",
            en="This secret is on the list of common passwords: choose another.",
            reason="common",
        )


def seal_new_key(
    secret: str, *, scrypt_n: int = DEFAULT_SCRYPT_N, pepper: bytes | None = None
) -> SealedKey:
    """Create a key pair and encrypt the private key with AES-GCM under scrypt(secret)."""
    check_secret_policy(secret)
    private = Ed25519PrivateKey.generate()
    public_raw = private.public_key().public_bytes_raw()
    kid = key_id(public_raw)
    kdf: dict[str, Any] = {
        "alg": "scrypt",
        "n": scrypt_n,
        "r": 8,
        "p": 1,
        "salt": os.urandom(16).hex(),
        "peppered": pepper is not None,
    }
    nonce = os.urandom(12)
    ciphertext = AESGCM(_derive(secret, kdf, pepper)).encrypt(
        nonce, private.private_bytes_raw(), kid.encode()
    )
    return SealedKey(kid, public_raw, nonce + ciphertext, kdf)


def unlock(
    key_id_: str,
    encrypted_private: bytes,
    kdf: dict[str, Any],
    secret: str,
    *,
    pepper: bytes | None = None,
) -> UnlockedKey:
    """Decrypt a private key with the owner's secret; a wrong secret raises WrongSecret."""
    try:
        raw = AESGCM(_derive(secret, kdf, pepper)).decrypt(
            encrypted_private[:12], encrypted_private[12:], key_id_.encode()
        )
    except (InvalidTag, ValueError):
        raise WrongSecret(
            "Mã ký không đúng. Không có gì được ghi.",
            en="Wrong signing secret. Nothing was recorded.",
            reason="wrong",
        ) from None
    return UnlockedKey(key_id_, Ed25519PrivateKey.from_private_bytes(raw))


@dataclass(frozen=True)
class InstitutionKey:
    """The school's key: signs key registrations, role grants and checkpoints."""

    private: Ed25519PrivateKey

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes_raw()

    @property
    def key_id(self) -> str:
        return key_id(self.public_raw)

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.public_raw)

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)

    @classmethod
    def create(cls, directory: str | Path, *, passphrase: str | None = None) -> InstitutionKey:
        """Generate the institution key under ``directory`` (private file mode 0600)."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "institution.key"
        if path.exists():
            raise InstitutionKeyExists(f"{path} already exists; refusing to overwrite it.")
        private = Ed25519PrivateKey.generate()
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase.encode())
            if passphrase
            else serialization.NoEncryption()
        )
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        key = cls(private)
        (folder / "institution.pub").write_text(
            f"{key.public_raw.hex()}\nfingerprint {key.fingerprint}\n", encoding="utf-8"
        )
        return key

    @classmethod
    def from_directory(
        cls, directory: str | Path, *, passphrase: str | None = None
    ) -> InstitutionKey:
        """Load the institution key; missing, unreadable or wrongly encrypted is an error."""
        path = Path(directory) / "institution.key"
        try:
            pem = path.read_bytes()
        except OSError:
            raise InstitutionKeyMissing(
                f"Institution key {path} not found: run `flask --app wsgi keys init-institution`."
            ) from None
        try:
            private = serialization.load_pem_private_key(
                pem, passphrase.encode() if passphrase else None
            )
        except (TypeError, ValueError) as exc:
            raise InstitutionKeyMissing(f"Cannot read {path}: {exc}") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise InstitutionKeyMissing(f"{path} is not an Ed25519 key.")
        return cls(private)

    @staticmethod
    def readable_by_others(directory: str | Path) -> bool:
        """True when the private key file can be read by group or others."""
        path = Path(directory) / "institution.key"
        return path.exists() and bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def load_pepper(directory: str | Path, *, create: bool = False) -> bytes | None:
    """The signing pepper kept beside the institution key (32 random bytes, file mode 0600)."""
    path = Path(directory) / PEPPER_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if not create:
            return None
    path.parent.mkdir(parents=True, exist_ok=True)
    pepper = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pepper)
    return pepper


def require_loaded(institution: InstitutionKey | None) -> InstitutionKey:
    """The institution key, or InstitutionKeyMissing: signing fails closed without it."""
    if institution is None:
        raise InstitutionKeyMissing("The institution key is not loaded.")
    return institution
