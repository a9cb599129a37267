"""Signing keys: per-user Ed25519 keys encrypted under the user's secret; the institution key."""

from __future__ import annotations

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

DEFAULT_SCRYPT_N = 2**15  # ~32 MiB and ~0.1 s per unlock on a small server
MIN_SECRET_LENGTH = 6
INSTITUTION_ACTOR = "institution"


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


def _derive(secret: str, kdf: dict[str, Any]) -> bytes:
    return Scrypt(
        salt=bytes.fromhex(kdf["salt"]),
        length=32,
        n=int(kdf["n"]),
        r=int(kdf["r"]),
        p=int(kdf["p"]),
    ).derive(secret.encode("utf-8"))


def seal_new_key(secret: str, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> SealedKey:
    """Create a key pair and encrypt the private key with AES-GCM under scrypt(secret)."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise SecretTooWeak(
            f"Mã ký phải có ít nhất {MIN_SECRET_LENGTH} ký tự.",
            en=f"The signing secret needs at least {MIN_SECRET_LENGTH} characters.",
            reason="too_short",
        )
    private = Ed25519PrivateKey.generate()
    public_raw = private.public_key().public_bytes_raw()
    kid = key_id(public_raw)
    kdf = {"alg": "scrypt", "n": scrypt_n, "r": 8, "p": 1, "salt": os.urandom(16).hex()}
    nonce = os.urandom(12)
    ciphertext = AESGCM(_derive(secret, kdf)).encrypt(
        nonce, private.private_bytes_raw(), kid.encode()
    )
    return SealedKey(kid, public_raw, nonce + ciphertext, kdf)


def unlock(key_id_: str, encrypted_private: bytes, kdf: dict[str, Any], secret: str) -> UnlockedKey:
    """Decrypt a private key with the owner's secret; a wrong secret raises WrongSecret."""
    try:
        raw = AESGCM(_derive(secret, kdf)).decrypt(
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
