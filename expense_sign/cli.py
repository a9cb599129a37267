"""expense-sign: the desktop command that signs forms with the person's PKCS#11 token.

    expense-sign --url https://truong.example.vn --login toan list
    expense-sign ... sign                 # every form waiting for you: sign on the token, upload
    expense-sign ... register CODE        # finish the certificate registration the admin started

The token is any PKCS#11 module (the CA's driver for a VNPT/Viettel USB token, or SoftHSM2);
the password and the PIN are asked for, or read from EXPENSE_SIGN_PASSWORD / EXPENSE_SIGN_PIN.
It talks to the app with the person's own session (login and password), like the browser.

Signatures are PAdES baseline B-LT: the certificate chain and its revocation data go into the
file, so the school and an auditor check it later without network. The revocation data is
fetched from the addresses the certificates name (the CA's CRL and OCSP service), or taken from
the CRL files given with --crl. The trust roots are the school's (--ca-roots, the same folder as
the server's EXPENSES_CA_ROOTS). The signing time is the server's clock, as the form list gives it.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import http.cookiejar
import json
import os
import re
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asn1crypto import x509 as asn1_x509
from pyhanko.config.pkcs11 import TokenCriteria
from pyhanko.sign.general import SigningError
from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session

from expense_audit.certificates import der_from_upload
from workflow.pades import sign_form, signing_context

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


class SignError(Exception):
    """A refusal from the app or a failure on the token, printed as is."""


class AppSession:
    """The person's session with the app: cookies and the CSRF token, like a browser."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.csrf = ""
        self.last_url = ""

    def _open(self, request: urllib.request.Request) -> bytes:
        try:
            with self.opener.open(request, timeout=60) as response:  # noqa: S310 - the app's URL
                self.last_url = str(response.geturl())
                return bytes(response.read())
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                message = json.loads(body).get("error", "")
            except ValueError:
                message = ""
            raise SignError(f"{error.code} {message or error.reason}") from error

    def get(self, path: str, *, json_reply: bool = False) -> bytes:
        url = path if path.startswith("http") else self.base + path
        headers = {"Accept": "application/json"} if json_reply else {}
        return self._open(urllib.request.Request(url, headers=headers))  # noqa: S310

    def _token_from(self, html: bytes) -> str:
        found = re.search(rb'name="csrf[-_]token" (?:content|value)="([^"]+)"', html)
        if found is None:
            raise SignError("no CSRF token on the page: is this the expense app?")
        return found.group(1).decode()

    def login(self, login: str, password: str) -> None:
        token = self._token_from(self.get("/login"))
        form = urllib.parse.urlencode({"login": login, "password": password, "csrf_token": token})
        self._open(
            urllib.request.Request(  # noqa: S310
                self.base + "/login", data=form.encode(), method="POST"
            )
        )
        page = self.get("/account")
        if urllib.parse.urlsplit(self.last_url).path.endswith("/login"):
            raise SignError("sai tên đăng nhập hoặc mật khẩu / wrong login or password")
        self.csrf = self._token_from(page)

    def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310
            self.base + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "X-CSRFToken": self.csrf,
            },
        )
        return dict(json.loads(self._open(request)))

    def upload(self, url: str, pdf: bytes, name: str) -> dict[str, Any]:
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="pdf"; filename="{name}"\r\n'
                "Content-Type: application/pdf\r\n\r\n"
            ).encode()
            + pdf
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(  # noqa: S310
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Accept": "application/json",
                "X-CSRFToken": self.csrf,
            },
        )
        return dict(json.loads(self._open(request)))


class Token:
    """The person's PKCS#11 token: the key (and the certificate) under one label."""

    def __init__(
        self,
        module: str,
        label: str,
        key_label: str,
        pin: str,
        cert: bytes | None,
        chain: Sequence[bytes] = (),
        *,
        roots: Sequence[bytes] = (),
        crls: Sequence[bytes] = (),
    ) -> None:
        self.module, self.label, self.key_label, self.pin = module, label, key_label, pin
        self.cert, self.chain = cert, list(chain)
        self.roots, self.crls = list(roots), list(crls)

    def _session(self) -> Any:
        return open_pkcs11_session(
            self.module, token_criteria=TokenCriteria(label=self.label), user_pin=self.pin
        )

    def sign_pdf(self, pdf: bytes, *, at: datetime | None = None) -> bytes:
        """The form signed in PAdES B-LT on the token, at ``at`` (the server's time)."""
        context = signing_context(
            trust_roots=self.roots,
            chain=self.chain,
            crls=self.crls,
            allow_fetching=not self.crls,
            moment=at,
        )
        with self._session() as session:
            signer = PKCS11Signer(
                session,
                key_label=self.key_label,
                signing_cert=asn1_x509.Certificate.load(self.cert) if self.cert else None,
                ca_chain=[asn1_x509.Certificate.load(der) for der in self.chain] or None,
            )
            try:
                return sign_form(pdf, signer, validation_context=context, signing_time=at)
            except SigningError as error:
                raise SignError(
                    "chứng thư số không kiểm tra được (hết hạn, bị thu hồi, thiếu CRL hoặc "
                    f"không thuộc --ca-roots) / the certificate does not validate: {error}"
                ) from error

    def sign_message(self, message: bytes) -> bytes:
        """The proof of possession: RSA PKCS#1 v1.5 or ECDSA (DER), SHA-256, on the token."""
        import pkcs11
        from pkcs11.util.ec import encode_ecdsa_signature

        with self._session() as session:
            key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=self.key_label)
            if key.key_type == pkcs11.KeyType.EC:
                raw = key.sign(message, mechanism=pkcs11.Mechanism.ECDSA_SHA256)
                return bytes(encode_ecdsa_signature(raw))
            return bytes(key.sign(message, mechanism=pkcs11.Mechanism.SHA256_RSA_PKCS))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="expense-sign", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("EXPENSE_SIGN_URL", ""), required=False)
    parser.add_argument("--login", default=os.environ.get("EXPENSE_SIGN_LOGIN", ""))
    parser.add_argument("--module", default=os.environ.get("EXPENSE_SIGN_MODULE", DEFAULT_MODULE))
    parser.add_argument("--token", default=os.environ.get("EXPENSE_SIGN_TOKEN", ""))
    parser.add_argument("--key-label", default=os.environ.get("EXPENSE_SIGN_KEY", "sign"))
    parser.add_argument("--cert", type=Path, help="the certificate file, if not on the token")
    parser.add_argument(
        "--chain",
        type=Path,
        action="append",
        default=[],
        help="a CA certificate to embed (the issuing CA, if not on the token); repeatable",
    )
    parser.add_argument(
        "--ca-roots",
        type=Path,
        default=os.environ.get("EXPENSES_CA_ROOTS"),
        help="folder of trusted root certificates (PEM/DER), as the school configures them",
    )
    parser.add_argument(
        "--crl",
        type=Path,
        action="append",
        default=[],
        help="a CRL file to embed instead of fetching revocation data (repeatable)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the forms waiting for your signature")
    commands.add_parser("sign", help="sign every waiting form on the token and upload it")
    register = commands.add_parser("register", help="finish a certificate registration")
    register.add_argument("code")
    return parser


def _der(path: Path) -> bytes:
    """A certificate file (PEM or DER) as DER."""
    return der_from_upload(path.read_bytes())


def _roots(folder: Path | None) -> list[bytes]:
    """The trust roots in a folder (every .pem, .crt, .cer, .der file)."""
    if folder is None:
        return []
    if not folder.is_dir():
        raise SignError(f"--ca-roots {folder}: not a folder")
    return [
        _der(path)
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in (".pem", ".crt", ".cer", ".der")
    ]


def _crl_der(path: Path) -> bytes:
    """A CRL file (PEM or DER) as DER."""
    raw = path.read_bytes()
    if b"-----BEGIN" in raw:
        return base64.b64decode(b"".join(raw.strip().splitlines()[1:-1]))
    return raw


def _server_time(reply: dict[str, Any]) -> datetime | None:
    stamp = reply.get("now")
    if not isinstance(stamp, str):
        return None
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _secret(variable: str, prompt: str) -> str:
    return os.environ.get(variable) or getpass.getpass(prompt)


def run(args: argparse.Namespace) -> int:
    """Carry out one command; returns the exit status."""
    if not args.url or not args.login:
        raise SignError("--url and --login are needed (or EXPENSE_SIGN_URL, EXPENSE_SIGN_LOGIN)")
    app = AppSession(args.url)
    app.login(args.login, _secret("EXPENSE_SIGN_PASSWORD", "Mật khẩu / password: "))
    waiting = json.loads(app.get("/signing/forms", json_reply=True))
    forms = waiting["forms"]
    if args.command == "list":
        for form in forms:
            print(form["number"])
        print(f"{len(forms)} giấy đề nghị chờ ký / form(s) waiting")
        return 0
    token = Token(
        args.module,
        args.token,
        args.key_label,
        _secret("EXPENSE_SIGN_PIN", "PIN: "),
        _der(args.cert) if args.cert else None,
        [_der(path) for path in args.chain],
        roots=_roots(args.ca_roots),
        crls=[_crl_der(path) for path in args.crl],
    )
    if args.command == "register":
        challenge = json.loads(app.get(f"/certificate/{args.code}", json_reply=True))
        signature = token.sign_message(base64.b64decode(challenge["message"]))
        done = app.post_json(
            f"/certificate/{args.code}", {"signature": base64.b64encode(signature).decode()}
        )
        print(f"Đã đăng ký / registered: {done['subject']} ({done['issuer']})")
        return 0
    for form in forms:
        signed = token.sign_pdf(app.get(form["form"]), at=_server_time(waiting))
        name = "de-nghi-thanh-toan-" + form["number"].replace("/", "-") + ".pdf"
        done = app.upload(form["upload"], signed, name)
        print(f"{form['number']}: đã ký / signed, sha256 {done['pdf_sha256']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `expense-sign` console script."""
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except SignError as error:
        print(f"expense-sign: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
