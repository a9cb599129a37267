"""A payment dossier checked on its own: `audit-verify DOSSIER.zip --institution-key FP`.

The steps, in order (each failure is listed; nothing is trusted before it is checked):

1. The manifest is signed by the institution key it names, and that key is the one pinned.
2. Every file is listed in the manifest with its sha256, and nothing else is in the zip.
3. The checkpoint note is signed by the same key.
4. Every event line hashes to its hash and is included in the checkpoint (RFC 6962 proof).
5. Each step of the request is signed by a key that an included key event registered for
   its actor before the step; the steps link to each other (request_prev).
6. The steps replay through the workflow definition they name (states and effects; the budget
   guards need the whole log's commitments and are left to the bundle); every attached file
   the steps bind is in the dossier with that sha256.
7. Every form signed with a CA certificate (an included form.sign of this request, by a
   certificate an included cert.register binds to the signer, not revoked before the signing
   time) is in the dossier with that sha256; with the pdf extra and --ca-roots its PAdES
   signature is validated too (signed_forms.py), else the report says it was not.

NOTE: a dossier does not hold the whole log, so it cannot show that a signer's key was not
revoked, or a role withdrawn, before the step: the full bundle's verification does that.
"""

from __future__ import annotations

import base64
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..canonical import key_fingerprint, sha256_hex
from ..checkpoint import open_checkpoint
from ..decision import check_log_body, verify_decision_signature
from ..definitions import DefinitionSet, WorkflowDefinition
from ..errors import WorkflowError
from ..merkle import ProofInvalid, leaf_hash, verify_inclusion
from ..projection import Projection, apply_event
from .fields import FieldInvalid, v2_view
from .format import SIGNED_FORMS_DIR, LineNotCanonical, split_line
from .keys import Key
from .signed_forms import NO_EXTRA, NO_ROOTS, check_signed_forms

DOSSIER_FORMAT = "expense-dossier/1"
MANIFEST = "dossier.json"
SIGNATURE = "dossier.sig"
FORM = "giay-de-nghi-thanh-toan.pdf"
EVENTS = "events.jsonl"
DEFINITIONS = "definitions/"
ATTACHMENTS = "attachments/"
_PREFIX = b"expense-audit/dossier/v1\n"
MAX_MEMBER = 64 * 1024 * 1024


def manifest_message(raw: bytes) -> bytes:
    """What the institution signs: a fixed context, then the manifest's exact bytes."""
    return _PREFIX + raw


def is_dossier(path: str | Path) -> bool:
    """Whether a zip is a dossier (it has a dossier manifest) rather than a bundle."""
    try:
        with zipfile.ZipFile(path) as archive:
            return MANIFEST in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


@dataclass
class DossierReport:
    """What a dossier check found: the request's replayed row and the problems, if any."""

    request: str = ""
    fingerprint: str = ""
    trusted: bool = False
    checkpoint_size: int = 0
    projection: Projection | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    signed_pdfs: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.problems and self.projection is not None

    @property
    def exit_code(self) -> int:
        return 1 if not self.valid else (0 if self.trusted else 3)

    def as_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "trusted": self.trusted,
            "request": self.request,
            "institution_fingerprint": self.fingerprint,
            "checkpoint_size": self.checkpoint_size,
            "state": (self.projection or {}).get("state"),
            "problems": self.problems,
            "warnings": self.warnings,
            "signed_pdfs": self.signed_pdfs,
        }


class DossierUnreadable(WorkflowError):
    """The file is not a readable dossier."""


def _members(path: str | Path) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if any(i.file_size > MAX_MEMBER for i in infos):
                raise DossierUnreadable("a member of the dossier is too large")
            return {i.filename: archive.read(i) for i in infos}
    except (OSError, zipfile.BadZipFile) as exc:
        raise DossierUnreadable(f"cannot read dossier: {exc}") from None


def verify_dossier(
    path: str | Path,
    *,
    institution_key: str | None = None,
    ca_roots: Sequence[bytes] | None = None,
) -> DossierReport:
    """Check a dossier offline (see the module docstring for the steps)."""
    report = DossierReport()
    files = _members(path)
    # 1. The manifest, its signature, and the key it is signed with.
    try:
        raw = files[MANIFEST]
        manifest = json.loads(raw)
        public_raw = bytes.fromhex(manifest["institution_key"])
        public = Ed25519PublicKey.from_public_bytes(public_raw)
        signature = base64.b64decode(files[SIGNATURE].strip(), validate=True)
    except (KeyError, ValueError, TypeError) as exc:
        raise DossierUnreadable(f"dossier manifest or signature unreadable: {exc}") from None
    if manifest.get("format") != DOSSIER_FORMAT:
        raise DossierUnreadable(f"unknown dossier format {manifest.get('format')!r:.40}")
    report.request = str(manifest.get("request"))
    report.fingerprint = key_fingerprint(public_raw)
    try:
        public.verify(signature, manifest_message(raw))
    except InvalidSignature:
        report.problems.append("the manifest's signature does not verify with its key")
        return report
    if institution_key is not None:
        if institution_key.strip().lower() != report.fingerprint:
            report.problems.append(
                f"signed by key {report.fingerprint}, not the pinned {institution_key.strip()}"
            )
            return report
        report.trusted = True
    # 2. Every file listed with its hash; nothing more, nothing less.
    listed: dict[str, str] = manifest.get("files") or {}
    for name in sorted(set(files) - {MANIFEST, SIGNATURE} | set(listed)):
        if name not in files:
            report.problems.append(f"{name}: listed in the manifest, missing from the dossier")
        elif name not in listed:
            report.problems.append(f"{name}: in the dossier, not listed in the manifest")
        elif sha256_hex(files[name]) != listed[name]:
            report.problems.append(f"{name}: changed (sha256 differs from the signed manifest)")
    if report.problems:
        return report
    # 3. The checkpoint.
    try:
        checkpoint = open_checkpoint(str(manifest["checkpoint"]), public_raw)
    except WorkflowError as exc:
        report.problems.append(f"checkpoint: {exc}")
        return report
    report.checkpoint_size = checkpoint.size
    # 4.-7. The events, their proofs, signatures, links and replay; the signed forms.
    forms = _check_events(files, manifest, checkpoint.size, checkpoint.root, report)
    missing = set(manifest.get("missing_signed_forms") or [])
    result = check_signed_forms(
        {n: d for n, d in files.items() if n.startswith(SIGNED_FORMS_DIR)},
        [f for f in forms if f["pdf_sha256"] not in missing],
        ca_roots=ca_roots,
        required=True,
    )
    report.problems += [f"seq {seq}: {kind} {detail}" for seq, kind, detail, _ in result.problems]
    report.signed_pdfs = result.as_json()
    if missing:
        report.warnings.append(
            f"{len(missing)} signed form(s) the log records were not included by the school: "
            + ", ".join(sorted(missing))
        )
    if result.status in (NO_EXTRA, NO_ROOTS):
        report.warnings.append(result.status)
    return report


def _check_events(
    files: dict[str, bytes],
    manifest: dict[str, Any],
    size: int,
    root: bytes,
    report: DossierReport,
) -> list[dict[str, Any]]:
    """Steps 4-6; returns the request's form.sign records (step 7 checks their PDFs)."""
    forms: list[dict[str, Any]] = []
    certificates: dict[str, dict[str, Any]] = {}
    try:
        definitions = DefinitionSet.from_files(
            {
                name.removeprefix(DEFINITIONS): data
                for name, data in files.items()
                if name.startswith(DEFINITIONS)
            }
        )
    except WorkflowError as exc:
        report.problems.append(f"definitions: {exc}")
        return forms
    keys: dict[str, Key] = {}
    projection: Projection | None = None
    last_hash: str | None = None
    proofs = manifest.get("proofs") or {}
    previous_seq = 0
    for line in files[EVENTS].splitlines():
        try:
            body_bytes, hash_hex, sig = split_line(line)
        except LineNotCanonical as exc:
            report.problems.append(f"events.jsonl: {exc}")
            return forms
        body = json.loads(body_bytes)
        seq = body.get("seq")
        # NOTE: in log order, so what an event is checked against (a revocation, a key) came first.
        if not isinstance(seq, int) or seq <= previous_seq:
            report.problems.append(f"seq {seq}: events are not in log order")
            return forms
        previous_seq = seq
        # 4. Hash and inclusion.
        if sha256_hex(body_bytes) != hash_hex:
            report.problems.append(f"seq {seq}: hash-mismatch")
            continue
        try:
            proof = [bytes.fromhex(p) for p in proofs[str(seq)]]
            leaf = leaf_hash(bytes.fromhex(hash_hex) + sig)
            verify_inclusion(int(seq) - 1, size, leaf, proof, root)
        except (KeyError, ValueError, TypeError, ProofInvalid) as exc:
            report.problems.append(f"seq {seq}: not included in the checkpoint ({exc})")
            continue
        if body.get("v") != 2:
            data = body.get("data") or {}
            if body.get("action") in ("key.register", "key.enroll") and body.get("request") is None:
                keys[str(data.get("key_id"))] = _key_of(int(seq), body["action"], data)
                continue
            if body.get("request") is None and body.get("action") in _CERTIFICATE_EVENTS:
                _certificate_event(int(seq), body, certificates, forms, report)
                continue
            report.problems.append(f"seq {seq}: a v1 step; verify it with the full bundle")
            continue
        # 5. Signature by a registered key of the actor; the link to the previous step.
        try:
            view = v2_view(check_log_body(body))
        except (WorkflowError, FieldInvalid) as exc:
            report.problems.append(f"seq {seq}: {exc}")
            continue
        if view.get("request") != report.request:
            report.problems.append(f"seq {seq}: a step of {view.get('request')}, not this request")
            continue
        key = keys.get(str(view["key"]))
        if key is None or key.owner != view["actor"] or not key.registered_seq < int(seq):
            report.problems.append(f"seq {seq}: no key event registers {view['key']} for it")
            continue
        try:
            verify_decision_signature(body["decision"], body["signature"], key=key.verifier())
        except (WorkflowError, ValueError) as exc:
            report.problems.append(f"seq {seq}: bad-signature ({exc})")
            continue
        if view.get("request_prev") != last_hash:
            report.problems.append(f"seq {seq}: does not follow the request's previous step")
        last_hash = hash_hex
        # 6. Replay.
        workflow = definitions.by_hash.get(str(view.get("definition")))
        transition = (
            workflow.find(str(view["from"]), str(view["action"]))
            if isinstance(workflow, WorkflowDefinition)
            else None
        )
        if transition is None or transition.dest != view["to"]:
            report.problems.append(f"seq {seq}: {view['action']} does not replay")
            continue
        projection = apply_event(projection, view, hash_hex, transition.effects)
    if projection is None:
        report.problems.append("no step of the request could be checked")
        return forms
    for item in projection.get("attachments") or []:
        name = f"{ATTACHMENTS}{item['sha256']}"
        if name not in files and item["sha256"] not in manifest.get("missing_attachments", []):
            report.problems.append(f"{item['name']}: bound by the steps, not in the dossier")
    report.projection = projection
    return forms


_CERTIFICATE_EVENTS = ("cert.register", "cert.revoke", "form.sign")


def _certificate_event(
    seq: int,
    body: dict[str, Any],
    certificates: dict[str, dict[str, Any]],
    forms: list[dict[str, Any]],
    report: DossierReport,
) -> None:
    """An included institution event about a CA certificate or a signed form (step 7).

    NOTE: its inclusion in the signed checkpoint is what authenticates it (the Merkle leaf
    commits to the event's institution signature); the full bundle re-checks the proofs of
    possession and who asked.
    """
    data = body.get("data") or {}
    action = body["action"]
    if action == "cert.register":
        certificates[str(data.get("sha256"))] = {"owner": data.get("owner"), "revoked_at": None}
        return
    if action == "cert.revoke":
        cert = certificates.get(str(data.get("certificate")))
        if cert is not None:
            cert["revoked_at"] = body.get("ts")
        return
    if data.get("request") != report.request:
        report.problems.append(
            f"seq {seq}: a signed form of {data.get('request')}, not this request"
        )
        return
    cert = certificates.get(str(data.get("certificate")))
    if cert is None or cert["owner"] != data.get("signer"):
        report.problems.append(
            f"seq {seq}: the form is signed with a certificate not registered to {data.get('signer')}"
        )
        return
    # NOTE: events come in log order, so a revocation seen already came before this form; the
    # signing time is the signer's claim and cannot prove the signature predates it.
    if cert["revoked_at"] is not None or data.get("ca_revoked_at"):
        report.problems.append(
            f"seq {seq}: the form (signing time stated: {data.get('signing_time')}) was entered "
            f"after its certificate was revoked ({cert['revoked_at'] or data.get('ca_revoked_at')})"
        )
        return
    forms.append({"seq": seq, **{k: data.get(k) for k in _FORM_FIELDS}})


_FORM_FIELDS = ("request", "signer", "certificate", "pdf_sha256", "form_sha256", "signing_time")


def _key_of(seq: int, action: str, data: dict[str, Any]) -> Key:
    if action == "key.register":
        return Key(str(data.get("owner")), str(data.get("public_key")), registered_seq=seq)
    return Key(
        str(data.get("owner")),
        str(data.get("public_key")),
        registered_seq=seq,
        kind=str(data.get("kind")),
        alg=data.get("alg", "ed25519"),
        credential_id=data.get("credential_id"),
        rp_id=data.get("rp_id"),
        origins=tuple(data.get("origins") or ()),
    )
