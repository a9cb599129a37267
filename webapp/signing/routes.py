"""CA signatures (chữ ký số): finishing a certificate registration, uploading signed forms.

`expense-sign` (expense_sign/cli.py) talks to these endpoints with the person's own session; a
browser can upload a form signed with any other tool through the request page.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import abort, flash, jsonify, redirect, request, send_file, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from expense_audit.errors import WorkflowError

from ..context import db, login_required, me, reads_first, runtime, visible_request
from ..errors import message_for
from ..requests.routes import form_bytes
from ..uploads import path_for
from . import bp

MAX_SIGNED_PDF = 10 * 1024 * 1024


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def _refused(error: WorkflowError, number: str | None = None) -> Response | tuple[Response, int]:
    db().rollback()
    if _wants_json() or number is None:
        return jsonify(error=message_for(error), code=error.code), 422
    flash(message_for(error), "error")
    return redirect(url_for("requests.detail", number=number))


@bp.get("/certificate/<nonce>")
@login_required
def challenge(nonce: str) -> Response | tuple[Response, int]:
    """What the person's token signs to finish a registration the admin started (JSON)."""
    try:
        started = runtime().certificates(db()).challenge(me(), nonce)
    except WorkflowError as error:
        return _refused(error)
    return jsonify(nonce=nonce, message=base64.b64encode(started.message).decode())


@bp.post("/certificate/<nonce>")
@reads_first
@login_required
def prove(nonce: str) -> Response | tuple[Response, int]:
    """The token's signature over the challenge: the certificate enters the log (JSON)."""
    body: Any = request.get_json(silent=True) or {}
    try:
        signature = base64.b64decode(str(body.get("signature", "")), validate=True)
    except (binascii.Error, ValueError):
        return jsonify(error=_("The signature is not base64.")), 400
    try:
        cert = runtime().certificates(db()).complete(me(), nonce, signature)
        db().commit()
    except WorkflowError as error:
        return _refused(error)
    return jsonify(sha256=cert.sha256, subject=cert.subject, issuer=cert.issuer)


@bp.get("/signing/forms")
@login_required
def waiting() -> Response:
    """Forms waiting for the signed-in person's CA signature (JSON, for expense-sign)."""
    rt = runtime()
    numbers = rt.certificates(db()).waiting_forms(me().login)
    return jsonify(
        now=rt.now().strftime("%Y-%m-%dT%H:%M:%SZ"),  # the signing time expense-sign uses
        forms=[
            {
                "number": n,
                "form": url_for("requests.form_pdf", number=n, _external=True),
                "upload": url_for("signing.upload", number=n, _external=True),
            }
            for n in numbers
        ],
    )


@bp.post("/requests/<reqno:number>/signed-form")
@reads_first
@login_required
def upload(number: str) -> Response | tuple[Response, int]:
    """Accept the form signed with the person's registered CA certificate (PAdES)."""
    current = visible_request(number)
    if current.projection is None:
        abort(404)
    file = request.files.get("pdf")
    pdf = file.stream.read(MAX_SIGNED_PDF + 1) if file else b""
    if not pdf or len(pdf) > MAX_SIGNED_PDF:
        return jsonify(error=_("Choose the signed PDF (at most 10 MB).")), 400
    rt = runtime()
    registry = rt.certificates(db())
    try:
        row = registry.accept_signed_form(
            me(), number, pdf, form=form_bytes(current), trust_roots=rt.trust_roots()
        )
        db().commit()
    except WorkflowError as error:
        return _refused(error, number)
    path = path_for(row.pdf_sha256)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pdf)
    if _wants_json():
        return jsonify(pdf_sha256=row.pdf_sha256, seq=row.seq)
    flash(_("The signed form was accepted and entered in the log."), "success")
    return redirect(url_for("requests.detail", number=number))


@bp.get("/requests/<reqno:number>/signed/<sha256>.pdf")
@login_required
def signed_pdf(number: str, sha256: str) -> Response:
    """A signed form of the request, as uploaded (stored by sha256)."""
    visible_request(number)
    forms = runtime().certificates(db()).signed_forms(number)
    if not any(f.pdf_sha256 == sha256 for f in forms):
        abort(404)
    name = "de-nghi-thanh-toan-da-ky-" + number.replace("/", "-") + ".pdf"
    return send_file(path_for(sha256), mimetype="application/pdf", download_name=name)
