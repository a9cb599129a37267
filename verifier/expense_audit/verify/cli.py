"""`audit-verify`: the console entry point. Domain errors become a message and exit 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import WorkflowError
from .dossier import DossierUnreadable, is_dossier, verify_dossier
from .report import EXIT_INVALID, EXIT_UNREADABLE, NOT_TRUSTED, Report, VerifyError
from .signed_forms import read_roots
from .verifier import verify_bundle

EPILOG = """exit codes:
  0  valid, and tied to the key you trust (--institution-key or --trust)
  1  invalid: every problem is listed (seq, kind, detail)
  2  the bundle (or a file you named) cannot be read, or the pin is not a full fingerprint
  3  valid, but NOT VERIFIED AGAINST A TRUSTED KEY: give --institution-key or --trust
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audit-verify",
        description="Verify an audit bundle offline.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bundle", help="the audit bundle (.zip)")
    parser.add_argument(
        "--trust", metavar="CHECKPOINT", help="a signed checkpoint you kept earlier"
    )
    parser.add_argument(
        "--institution-key", metavar="FINGERPRINT", help="the school's full 64-hex key fingerprint"
    )
    parser.add_argument(
        "--witness-key",
        metavar="VKEY",
        action="append",
        default=[],
        help="a witness's verifier key (name+keyid+base64, from the district): the final "
        "checkpoint must carry its valid cosignature (repeatable)",
    )
    parser.add_argument(
        "--ca-roots",
        metavar="DIR",
        help="folder of trusted CA root certificates: also validate the PAdES signatures of the "
        "signed forms in the bundle or dossier, offline (needs pip install 'expense-audit[pdf]')",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="processes in all (this one replays, the others check signatures)",
    )
    parser.add_argument(
        "--save-state",
        metavar="FILE",
        help="after a valid run, keep what is needed to verify only new events next time",
    )
    parser.add_argument(
        "--state",
        metavar="FILE",
        help="state saved with the --trust checkpoint: verify only what is new (a whole bundle, "
        "or a delta made with `audit export --since`)",
    )
    parser.add_argument(
        "--proof",
        metavar="FILE",
        help="consistency proof (`audit prove`) that the final checkpoint extends --trust",
    )
    parser.add_argument(
        "--request",
        metavar="NUMBER",
        help="also confirm one request of a paper form (e.g. 2024-2025/0017): its state and "
        "approving event in the verified log",
    )
    parser.add_argument(
        "--event",
        metavar="HASH",
        help="with --request: the approving event's hash printed on the form (or in its QR code)",
    )
    return parser


def check_paper(report: Report, number: str, event: str | None) -> tuple[bool, str]:
    """Whether a paper form's request and approving event are those of the verified log."""
    projection = report.requests.get(number)
    if not report.valid:
        return False, f"request {number}: NOT CONFIRMED, the log itself is invalid"
    if projection is None:
        return False, f"request {number}: NOT IN THE LOG"
    approved = projection.get("approved_hash")
    summary = (
        f"request {number}: {projection.get('state')}, {projection.get('amount_vnd')} đồng, "
        f"approved by {projection.get('approved_by') or '-'}, approving event {approved or '-'}"
    )
    if event is not None and event.strip().lower() != (approved or ""):
        return False, f"{summary}\nTHE FORM DOES NOT MATCH: it names approving event {event}"
    return True, f"{summary}\nCONFIRMED: this request and its approval are in the verified log"


def _unreadable(message: str, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"valid": False, "trusted": False, "unreadable": message}))
    else:
        print(f"audit-verify: {message}", file=sys.stderr)
    return EXIT_UNREADABLE


def main(argv: list[str] | None = None) -> int:
    """Console entry point of `audit-verify`."""
    args = _parser().parse_args(argv)
    trusted = None
    if args.trust:
        try:
            # NOTE: a checkpoint kept from an e-mail may have CRLF line ends; notes only use LF.
            trusted = Path(args.trust).read_text(encoding="utf-8").replace("\r\n", "\n")
        except (OSError, UnicodeDecodeError) as exc:
            return _unreadable(f"cannot read {args.trust}: {exc}", args.json)
    try:
        state = json.loads(Path(args.state).read_text(encoding="utf-8")) if args.state else None
    except (OSError, ValueError) as exc:
        return _unreadable(f"cannot read state {args.state}: {exc}", args.json)
    if state is not None and not isinstance(state, dict):
        return _unreadable(f"state {args.state} is not a saved verifier state", args.json)
    try:
        proof = json.loads(Path(args.proof).read_text(encoding="utf-8")) if args.proof else None
    except (OSError, ValueError) as exc:
        return _unreadable(f"cannot read proof {args.proof}: {exc}", args.json)
    if args.proof and not isinstance(proof, dict):
        return _unreadable(f"proof {args.proof} is not a consistency-proof file", args.json)
    try:
        ca_roots = read_roots(args.ca_roots) if args.ca_roots else None
    except (WorkflowError, OSError) as exc:
        return _unreadable(str(getattr(exc, "message", exc)), args.json)
    if is_dossier(args.bundle):
        return _dossier(args.bundle, args.institution_key, args.json, ca_roots)
    if args.event and not args.request:
        return _unreadable("--event needs the request it belongs to (--request)", args.json)
    if args.proof and not args.trust:
        return _unreadable("--proof needs the checkpoint it starts from (--trust)", args.json)
    try:
        report = verify_bundle(
            args.bundle,
            trusted_checkpoint=trusted,
            institution_key=args.institution_key,
            progress=sys.stderr.isatty() and not args.json,
            jobs=max(1, args.jobs),
            state=state,
            keep_state=bool(args.save_state),
            proof=proof,
            witness_keys=args.witness_key,
            ca_roots=ca_roots,
        )
    except VerifyError as exc:
        return _unreadable(exc.message, args.json)
    if args.save_state and report.state is not None:
        Path(args.save_state).write_text(
            json.dumps(report.state, ensure_ascii=False), encoding="utf-8"
        )
    paper = check_paper(report, args.request, args.event) if args.request else None
    if args.json:
        result = report.as_json()
        if paper is not None:
            result["request"] = {"number": args.request, "confirmed": paper[0], "detail": paper[1]}
        print(json.dumps(result, ensure_ascii=False, indent=1))
    else:
        print_text(report)
        if paper is not None:
            print(paper[1])
    if paper is not None and not paper[0]:
        return EXIT_INVALID
    return report.exit_code


def _dossier(
    path: str, institution_key: str | None, as_json: bool, ca_roots: list[bytes] | None
) -> int:
    """A payment dossier: one request, checked without the rest of the log."""
    try:
        report = verify_dossier(path, institution_key=institution_key, ca_roots=ca_roots)
    except DossierUnreadable as exc:
        return _unreadable(exc.message, as_json)
    if as_json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=1))
        return report.exit_code
    print(f"dossier:     request {report.request}")
    print(f"institution: {report.fingerprint}")
    print(f"checkpoint:  {report.checkpoint_size} events")
    if report.signed_pdfs.get("present"):
        print(f"signed PDFs: {report.signed_pdfs['present']}, {report.signed_pdfs['status']}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    if report.valid:
        state = (report.projection or {}).get("state")
        print(f"VALID: every file, signature and inclusion proof checks out; state {state}")
        if not report.trusted:
            print(f"{NOT_TRUSTED}: pass --institution-key FINGERPRINT")
    else:
        print(f"INVALID: {len(report.problems)} problem(s)")
    for problem in report.problems:
        print(f"  {problem}")
    return report.exit_code


def print_text(report: Report) -> None:
    """The human-readable report; the headline says whether a trusted key was checked."""
    print(f"origin:      {report.origin}")
    print(f"events:      {report.event_count}")
    print(f"institution: {report.institution_fingerprint}")
    print(f"checkpoint:  {report.checkpoint_size} events, root {report.checkpoint_root}")
    for line in report.people_text():
        print(line)
    if report.attachments:
        here = sum(1 for a in report.attachments if a["status"] == "verified")
        print(
            f"attachments: {here} of {len(report.attachments)} bound files in the bundle verified"
        )
    for line in cosignature_text(report):
        print(line)
    if report.signed_pdfs.get("present"):
        print(f"signed PDFs: {report.signed_pdfs['present']}, {report.signed_pdfs['status']}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    if not report.trusted:
        print(
            f"{NOT_TRUSTED}: pass --institution-key FINGERPRINT (printed by the school) or --trust "
            "CHECKPOINT to know this log is the school's and not a copy re-signed by someone else"
        )
    print(report.headline)
    for problem in report.problems:
        seq = "-" if problem.seq is None else str(problem.seq)
        where = f" [{problem.request}]" if problem.request else ""
        print(f"  seq {seq:>6}  {problem.kind:<28}{where} {problem.detail}")


def cosignature_text(report: Report) -> list[str]:
    """The witness section of the text report: each cosignature found, and whether it verified."""
    lines = []
    for vkey in report.witnesses:
        lines.append(f"witness key: {vkey}")
    for found in report.cosignatures:
        status = {True: "verified", False: "DOES NOT VERIFY", None: "not checked (unknown key)"}
        lines.append(
            f"cosignature: {found['witness']} (key {found['key_id']}) at {found['time']} on "
            f"checkpoint {found['checkpoint_size']}: {status[found['verified']]}"
        )
    return lines
