"""The auditor: verification of the live log on demand, timelines, and the audit bundle."""

from __future__ import annotations

import io
import zipfile

from flask import Response, render_template, request, send_file
from flask_wtf import FlaskForm

from expense_audit.checkpoint import verifier_key
from expense_audit.errors import WorkflowError
from workflow import disclosure, queries
from workflow.bundle import export_bundle
from workflow.livecheck import verify_live
from workflow.policy import AUDIT_READERS
from workflow.verifications import latest_verification

from ..context import db, roles_required, runtime
from ..errors import message_for
from ..uploads import temporary_path
from . import bp


def _overview() -> dict[str, object]:
    return {
        "fingerprint": runtime().institution.fingerprint,
        # NOTE: what witnesses and other signed-note tools need to check our checkpoints.
        "verifier_key": verifier_key(runtime().settings.origin, runtime().institution.public_raw),
        "origin": runtime().settings.origin,
        "events": queries.event_count(db()),
        "checkpoint": queries.latest_checkpoint(db()),
        "verified": latest_verification(db(), origin=runtime().settings.origin),
        "requests": queries.recent_requests(db()),
        "form": FlaskForm(),
        "this_year": runtime().now().year,
    }


@bp.get("/audit")
@roles_required(*AUDIT_READERS)
def status() -> str:
    """Trust anchor, latest checkpoint, and the requests whose timelines can be opened."""
    return render_template("audit/status.html", report=None, **_overview())


@bp.post("/audit/verify")
@roles_required(*AUDIT_READERS)
def verify() -> str:
    """Verify the live log now: signatures, chain, checkpoints, replay, and every row against it."""
    rt = runtime()
    form = FlaskForm()
    report = None
    if form.validate_on_submit():
        report = verify_live(db(), institution=rt.institution, now=rt.now(), source="web")
        db().commit()  # keeps the checkpoint the verification made, and its record
    return render_template("audit/status.html", report=report, **_overview())


@bp.post("/audit/bundle.zip")
@roles_required(*AUDIT_READERS)
def bundle() -> Response:
    """Download the audit bundle for offline verification with audit-verify."""
    rt = runtime()
    path = temporary_path(".zip")
    export_bundle(db(), path, institution=rt.institution, now=rt.now(), cosign=rt.cosign)
    rt.checkpoint(db())  # NOTE: after the export, so witnesses get the checkpoint with its time
    db().commit()
    response = send_file(
        path, as_attachment=True, download_name="audit-bundle.zip", mimetype="application/zip"
    )
    response.call_on_close(lambda: path.unlink(missing_ok=True))
    return response


@bp.get("/audit/paper")
@roles_required(*AUDIT_READERS, "accountant")
def paper() -> str:
    """Resolve the QR code of a printed payment request form against the live log."""
    number = request.args.get("n", "")[:32]
    event_hash = request.args.get("e", "")[:64].lower()
    fingerprint = request.args.get("fp", "")[:64].lower()
    check = queries.paper_check(
        db(), number, event_hash, fingerprint, runtime().institution.fingerprint
    )
    return render_template(
        "audit/paper.html", check=check, event_hash=event_hash, fingerprint=fingerprint
    )


@bp.post("/audit/disclosure.zip")
@roles_required(*AUDIT_READERS)
def disclosure_report() -> Response | tuple[str, int]:
    """The public financial disclosure for a period: its CSV and signature file, zipped."""
    rt = runtime()
    if not FlaskForm().validate_on_submit():
        return render_template("audit/status.html", report=None, **_overview()), 400
    try:
        period = disclosure.Period.parse(request.form.get("period", "")[:16])
        data, signature = disclosure.make(
            db(),
            definitions=rt.definitions,
            institution=rt.institution,
            period=period,
            now=rt.now(),
        )
    except WorkflowError as error:
        db().rollback()
        return render_template(
            "audit/status.html", report=None, disclosure_error=message_for(error), **_overview()
        ), 400
    db().commit()  # keeps the checkpoint the report is signed with
    name = f"cong-khai-tai-chinh-cntt-{period.label}.csv"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
        archive.writestr(name + ".sig", signature)
        archive.writestr(name[:-4] + ".pdf", disclosure.render_pdf(data, signature))
    return Response(
        buffer.getvalue(),
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name[:-4]}.zip"'},
    )


@bp.post("/audit/disclosure/check")
@roles_required(*AUDIT_READERS)
def disclosure_check() -> tuple[str, int]:
    """Check a downloaded disclosure (CSV and its .sig) against the live log."""
    rt = runtime()
    report, signature = request.files.get("report"), request.files.get("signature")
    if not FlaskForm().validate_on_submit() or report is None or signature is None:
        return render_template("audit/status.html", report=None, **_overview()), 400
    check = disclosure.check(
        db(),
        report.read(),
        signature.read(disclosure.MAX_SIGNATURE_FILE + 1),
        definitions=rt.definitions,
        institution_fingerprint=rt.institution.fingerprint,
    )
    return render_template(
        "audit/status.html", report=None, disclosure_check=check, **_overview()
    ), 200
