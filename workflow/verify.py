"""Offline verifier of an audit bundle: no database, no Flask, no network.

Usage: audit-verify BUNDLE.zip [--trust CHECKPOINT] [--institution-key FINGERPRINT] [--json]
Exit 0: valid. Exit 1: invalid (every problem listed with seq, kind, detail). Exit 2: unreadable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .budget import BudgetBook, commitment_of
from .canonical import (
    GENESIS_PREV,
    canonical_json,
    event_hash,
    key_fingerprint,
    key_id,
    signing_message,
)
from .checkpoint import CheckpointInvalid, open_checkpoint
from .definitions import BudgetCatalogue, WorkflowDefinition, load_catalogue, load_workflow
from .errors import WorkflowError
from .guards import GuardContext, check_content
from .machine import machine_for
from .merkle import leaf_hash, root_from_leaf_hashes
from .projection import Projection, apply_event, content_of

BUNDLE_FORMAT = "expense-audit-bundle"
INSTITUTION = "institution"
# A line we write ends with ,"hash":"<64 hex>","sig":"<128 hex>"} : 9 + 64 + 9 + 128 + 2 bytes.
_SUFFIX_LEN = 212


class BundleUnreadable(Exception):
    """The bundle cannot be read at all (exit code 2)."""


@dataclass(frozen=True)
class Problem:
    seq: int | None
    kind: str
    detail: str
    request: str | None = None


@dataclass
class Report:
    origin: str = ""
    event_count: int = 0
    institution_fingerprint: str = ""
    checkpoint_size: int = 0
    checkpoint_root: str = ""
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    requests: dict[str, Projection] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.problems

    def add(self, seq: int | None, kind: str, detail: str, request: str | None = None) -> None:
        self.problems.append(Problem(seq, kind, detail, request))

    def as_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "origin": self.origin,
            "event_count": self.event_count,
            "institution_fingerprint": self.institution_fingerprint,
            "checkpoint": {"size": self.checkpoint_size, "root": self.checkpoint_root},
            "problems": [asdict(p) for p in self.problems],
            "warnings": self.warnings,
        }


@dataclass
class _Key:
    owner: str
    public: Ed25519PublicKey
    public_hex: str
    valid_from: int  # first seq it may sign (exclusive of its registration event)
    revoked_at: int | None = None


@dataclass
class _Bundle:
    manifest: dict[str, Any]
    zip: zipfile.ZipFile
    keys: list[dict[str, Any]]
    checkpoints: list[dict[str, Any]]
    workflows: dict[str, WorkflowDefinition]
    catalogues: dict[str, BudgetCatalogue]


# --- reading -------------------------------------------------------------------------------


def _open(path: str | Path, report: Report) -> _Bundle:
    try:
        archive = zipfile.ZipFile(path)
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise BundleUnreadable(f"cannot read bundle {path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleUnreadable("manifest.json does not describe an expense audit bundle")
    if manifest.get("version") != 1:
        raise BundleUnreadable(f"unsupported bundle version {manifest.get('version')!r}")
    if "events.jsonl" not in names:
        raise BundleUnreadable("events.jsonl is missing")
    try:
        keys = json.loads(archive.read("keys.json")) if "keys.json" in names else []
        checkpoints = (
            [
                json.loads(line)
                for line in archive.read("checkpoints.jsonl").decode().splitlines()
                if line.strip()
            ]
            if "checkpoints.jsonl" in names
            else []
        )
    except ValueError as exc:
        raise BundleUnreadable(f"keys.json or checkpoints.jsonl unreadable: {exc}") from None
    workflows: dict[str, WorkflowDefinition] = {}
    catalogues: dict[str, BudgetCatalogue] = {}
    for name in sorted(names):
        if not name.startswith("definitions/") or name.endswith("/"):
            continue
        parts = name.split("/", 2)
        declared = parts[1] if len(parts) == 3 else ""
        data = archive.read(name)
        try:
            if "budgets/" in name:
                catalogue = load_catalogue(data, name)
                catalogues[catalogue.sha256] = catalogue
                actual = catalogue.sha256
            else:
                workflow = load_workflow(data, name)
                workflows[workflow.sha256] = workflow
                actual = workflow.sha256
        except WorkflowError as exc:
            report.add(None, "definition-invalid", f"{name}: {exc}")
            continue
        if declared and declared != actual:
            report.add(
                None, "definition-mismatch", f"{name} has sha256 {actual}, filed as {declared}"
            )
    return _Bundle(manifest, archive, keys, checkpoints, workflows, catalogues)


def _lines(archive: zipfile.ZipFile) -> Iterator[bytes]:
    with archive.open("events.jsonl") as handle:
        for raw in handle:
            line = raw.rstrip(b"\n")
            if line:
                yield line


def _split_line(line: bytes) -> tuple[bytes, str, bytes]:
    """Return (exact body bytes, claimed hash, signature) of one events.jsonl line."""
    # NOTE: lines we write embed the signed bytes verbatim, so we hash and verify those bytes
    # without re-serializing; any other layout is parsed and canonicalized instead.
    if line.startswith(b'{"body":') and line[-_SUFFIX_LEN:].startswith(b',"hash":"'):
        tail = line[-_SUFFIX_LEN:]
        claimed, sig_hex = tail[9:73].decode(), tail[82:210].decode()
        return line[8:-_SUFFIX_LEN], claimed, bytes.fromhex(sig_hex)
    record = json.loads(line)
    return canonical_json(record["body"]), str(record["hash"]), bytes.fromhex(record["sig"])


# --- verification --------------------------------------------------------------------------


class _Verifier:
    def __init__(self, bundle: _Bundle, report: Report, pinned: str | None) -> None:
        self.bundle = bundle
        self.report = report
        self.pinned = pinned.lower() if pinned else None
        self.keys: dict[str, _Key] = {}
        self.roles: dict[str, set[str]] = {}
        self.institution_key: str | None = None
        self.projections: dict[str, Projection] = {}
        self.book = BudgetBook()
        self.leaves: list[bytes] = []
        self.reported_definitions: set[str] = set()

    def run(self, progress: bool) -> None:
        expected_seq, prev_hash, last_seq = 1, GENESIS_PREV, 0
        bar = _progress(self.bundle.manifest.get("event_count", 0)) if progress else None
        for line in _lines(self.bundle.zip):
            if bar is not None:
                bar.update(1)
            # 1. Parse the line; keep the exact bytes that were signed.
            try:
                body_bytes, claimed, sig = _split_line(line)
                body = json.loads(body_bytes)
                seq = int(body["seq"])
            except (ValueError, KeyError, TypeError) as exc:
                self.report.add(expected_seq, "malformed", f"event line unreadable: {exc}")
                expected_seq += 1
                continue
            problems_before = len(self.report.problems)
            self.report.event_count += 1
            # 2. Sequence: no gap, no duplicate, no reordering.
            if seq != expected_seq:
                kind = (
                    "duplicate" if seq == last_seq else "reordered" if seq < expected_seq else "gap"
                )
                self.report.add(seq, kind, f"expected seq {expected_seq}, found {seq}")
            # 3. Hash and canonical form.
            actual = event_hash(body_bytes)
            if actual != claimed:
                self.report.add(
                    seq,
                    "hash-mismatch",
                    f"body hashes to {actual[:16]}…, line claims {claimed[:16]}…",
                    body.get("request"),
                )
            elif canonical_json(body) != body_bytes:
                self.report.add(seq, "non-canonical", "body is not in RFC 8785 canonical form")
            # 4. Link to the previous event.
            if body.get("prev") != prev_hash:
                self.report.add(
                    seq,
                    "broken-link",
                    f"prev is {str(body.get('prev'))[:16]}…, previous event is {prev_hash[:16]}…",
                )
            if body.get("origin") != self.bundle.manifest.get("origin"):
                self.report.add(seq, "origin-mismatch", f"event origin {body.get('origin')!r}")
            # 5. Signature by a key valid at this seq and owned by the actor.
            self._check_signature(seq, body, body_bytes, sig)
            # 6. Meaning: key events, role grants, and the replay of requests.
            self._apply(
                seq, body, claimed, integrity_ok=len(self.report.problems) == problems_before
            )
            self.leaves.append(leaf_hash(bytes.fromhex(claimed) + sig))
            prev_hash, last_seq, expected_seq = claimed, seq, max(seq, expected_seq - 1) + 1
        if bar is not None:
            bar.close()
        self.report.requests = self.projections
        self._check_manifest(prev_hash)
        self._check_keys_file()

    def _check_signature(
        self, seq: int, body: Mapping[str, Any], body_bytes: bytes, sig: bytes
    ) -> None:
        kid = body.get("key")
        actor = body.get("actor")
        if body.get("action") == "log.init" and seq == 1:
            data = body.get("data") or {}
            public_hex = str(data.get("institution_key", ""))
            try:
                public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
            except ValueError:
                self.report.add(
                    seq, "unknown-key", "log.init does not carry a valid institution key"
                )
                return
            fingerprint = key_fingerprint(bytes.fromhex(public_hex))
            self.report.institution_fingerprint = fingerprint
            if self.pinned and not fingerprint.startswith(self.pinned):
                self.report.add(
                    seq,
                    "institution-key-mismatch",
                    f"log is signed by {fingerprint}, you trust {self.pinned}",
                )
            self.institution_key = key_id(bytes.fromhex(public_hex))
            self.keys[self.institution_key] = _Key(INSTITUTION, public, public_hex, valid_from=1)
        key = self.keys.get(str(kid))
        if key is None:
            self.report.add(seq, "unknown-key", f"key {kid} was never registered in this log")
            return
        if seq < key.valid_from or (key.revoked_at is not None and seq > key.revoked_at):
            window = f"{key.valid_from}..{key.revoked_at if key.revoked_at is not None else 'now'}"
            self.report.add(
                seq, "key-not-valid", f"key {kid} of {key.owner} is valid for seq {window}"
            )
        if key.owner != actor:
            self.report.add(
                seq, "key-owner-mismatch", f"key {kid} belongs to {key.owner}, actor is {actor}"
            )
        try:
            key.public.verify(sig, signing_message(body_bytes))
        except InvalidSignature:
            self.report.add(
                seq,
                "bad-signature",
                f"signature does not verify with key {kid} of {key.owner}",
                body.get("request"),
            )

    def _apply(
        self, seq: int, body: Mapping[str, Any], event_hash_: str, *, integrity_ok: bool
    ) -> None:
        action = body.get("action")
        data = body.get("data") or {}
        if body.get("actor") == INSTITUTION:
            if body.get("key") != self.institution_key:
                self.report.add(
                    seq,
                    "forbidden-step",
                    "institution events must be signed by the institution key",
                )
                return
            if action == "user.roles":
                self.roles[str(data.get("login"))] = set(data.get("roles") or [])
            elif action == "key.register":
                try:
                    public = Ed25519PublicKey.from_public_bytes(
                        bytes.fromhex(str(data.get("public_key")))
                    )
                except ValueError:
                    self.report.add(seq, "unknown-key", "registered key is not an Ed25519 key")
                    return
                self.keys[str(data.get("key_id"))] = _Key(
                    str(data.get("owner")), public, str(data.get("public_key")), valid_from=seq + 1
                )
            elif action == "key.revoke":
                key = self.keys.get(str(data.get("key_id")))
                if key is not None:
                    key.revoked_at = seq
            elif action != "log.init":
                self.report.add(seq, "forbidden-step", f"unknown institution action {action!r}")
            return
        if not body.get("request"):
            self.report.add(seq, "forbidden-step", f"event by {body.get('actor')} names no request")
            return
        self._replay(seq, body, event_hash_, report=integrity_ok)

    def _replay(self, seq: int, body: Mapping[str, Any], event_hash_: str, *, report: bool) -> None:
        """Replay one request event through its definition; a forbidden step is a problem."""
        number = str(body["request"])
        projection = self.projections.get(number)
        try:
            self._check_step(seq, body, projection)
        except _Forbidden as refusal:
            if report:
                self.report.add(seq, refusal.kind, refusal.detail, number)
        except WorkflowError as refusal:
            if report:
                self.report.add(
                    seq,
                    "forbidden-step",
                    f"{body.get('action')} by {body.get('actor')}: {refusal.message}",
                    number,
                )
        try:
            updated = apply_event(projection, body, event_hash_)
        except (KeyError, TypeError):
            return
        self.projections[number] = updated
        with contextlib.suppress(TypeError, ValueError):
            self.book.set(number, commitment_of(updated))

    def _check_step(self, seq: int, body: Mapping[str, Any], projection: Projection | None) -> None:
        definition_hash = str(body.get("definition"))
        workflow = self.bundle.workflows.get(definition_hash)
        if workflow is None:
            if definition_hash not in self.reported_definitions:
                self.reported_definitions.add(definition_hash)
                raise _Forbidden(
                    "definition-missing",
                    f"no definition file in the bundle has sha256 {definition_hash}",
                )
            raise _Forbidden("definition-missing", "definition missing (see first report)")
        data: Mapping[str, Any] = body.get("data") or {}
        catalogue = self.bundle.catalogues.get(str(data.get("budget")))
        if data.get("budget") and catalogue is None:
            raise _Forbidden(
                "definition-missing", f"no budget catalogue has sha256 {data.get('budget')}"
            )
        state = projection["state"] if projection else workflow.initial
        action, actor, role = str(body.get("action")), str(body.get("actor")), str(body.get("role"))
        if body.get("from") != state:
            raise _Forbidden(
                "forbidden-step",
                f"{action} claims to start from {body.get('from')!r}, request is {state!r}",
            )
        transition = workflow.find(state, action)
        if transition is None:
            raise _Forbidden("forbidden-step", f"{action} is not possible from {state!r}")
        if body.get("to") != transition.dest:
            raise _Forbidden(
                "forbidden-step",
                f"{action} leads to {transition.dest!r}, event says {body.get('to')!r}",
            )
        if role not in transition.roles or role not in self.roles.get(actor, set()):
            raise _Forbidden(
                "forbidden-step",
                f"{actor} acted as {role!r}; {action} needs one of {list(transition.roles)} and {actor} holds {sorted(self.roles.get(actor, set()))}",
            )
        if transition.comment_required and not (body.get("comment") or "").strip():
            raise _Forbidden("forbidden-step", f"{action} needs a comment")
        content = data.get("content") or {}
        if transition.binds_content:
            check_content(content, catalogue)
        elif projection is None or dict(content) != content_of(projection):
            raise _Forbidden(
                "content-mismatch",
                f"{action} decides on content that differs from what was submitted",
            )
        owner = projection["owner"] if projection else actor
        ctx = GuardContext(
            actor=actor,
            owner=owner,
            forwarded_by=projection.get("forwarded_by") if projection else None,
            content=content,
            catalogue=catalogue,
            book=self.book,
            data=data.get("payment") or {},
            today=date.fromisoformat(str(body.get("ts"))[:10]),
        )
        machine_for(workflow).fire(state, action, ctx)

    def _check_manifest(self, head_hash: str) -> None:
        manifest = self.bundle.manifest
        if manifest.get("event_count") != self.report.event_count:
            self.report.add(
                None,
                "manifest-mismatch",
                f"manifest says {manifest.get('event_count')} events, bundle holds {self.report.event_count}",
            )
        if manifest.get("head_hash") != head_hash:
            self.report.add(
                None, "manifest-mismatch", "manifest head hash is not the last event's hash"
            )

    def _check_keys_file(self) -> None:
        for entry in self.bundle.keys:
            key = self.keys.get(str(entry.get("key_id")))
            if (
                key is None
                or key.public_hex != entry.get("public_key")
                or key.owner != entry.get("owner")
            ):
                self.report.add(
                    None,
                    "keys-mismatch",
                    f"keys.json lists key {entry.get('key_id')} unlike the log's registration",
                )

    def check_checkpoints(self, trusted_note: str | None) -> None:
        """Every checkpoint verifies and matches the log; the final one covers every event."""
        report = self.report
        if self.institution_key is None:
            report.add(
                None,
                "checkpoint-invalid",
                "no institution key (log.init) to check checkpoints with",
            )
            return
        public_raw = bytes.fromhex(self.keys[self.institution_key].public_hex)
        origin = str(self.bundle.manifest.get("origin"))
        last_seq = len(self.leaves)
        largest = 0
        for entry in self.bundle.checkpoints:
            try:
                checkpoint = open_checkpoint(str(entry.get("note", "")), public_raw, origin=origin)
            except CheckpointInvalid as exc:
                report.add(
                    None, "checkpoint-invalid", f"checkpoint of size {entry.get('size')}: {exc}"
                )
                continue
            if checkpoint.size > last_seq:
                report.add(
                    last_seq,
                    "checkpoint-beyond-log",
                    f"a checkpoint signed {checkpoint.size} events, the bundle holds {last_seq}: events were removed",
                )
                continue
            if root_from_leaf_hashes(self.leaves[: checkpoint.size]) != checkpoint.root:
                report.add(
                    checkpoint.size,
                    "checkpoint-mismatch",
                    f"the first {checkpoint.size} events do not match the signed checkpoint",
                )
                continue
            if checkpoint.size >= largest:
                largest = checkpoint.size
                report.checkpoint_size, report.checkpoint_root = (
                    checkpoint.size,
                    checkpoint.root_hex,
                )
        if largest != last_seq:
            report.add(
                last_seq or None,
                "checkpoint-missing",
                f"the final checkpoint covers {largest} of {last_seq} events",
            )
        if trusted_note is not None:
            try:
                trusted = open_checkpoint(trusted_note, public_raw, origin=origin)
            except CheckpointInvalid as exc:
                report.add(None, "trusted-checkpoint-invalid", str(exc))
                return
            if trusted.size > last_seq:
                report.add(
                    last_seq,
                    "checkpoint-beyond-log",
                    f"your trusted checkpoint covers {trusted.size} events, the bundle holds {last_seq}: the log was truncated",
                )
            elif root_from_leaf_hashes(self.leaves[: trusted.size]) != trusted.root:
                report.add(
                    trusted.size,
                    "trusted-checkpoint-mismatch",
                    f"the first {trusted.size} events differ from your trusted checkpoint: history was rewritten",
                )


class _Forbidden(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


def _progress(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="ev", file=sys.stderr, leave=False)


def verify_bundle(
    path: str | Path,
    *,
    trusted_checkpoint: str | None = None,
    institution_key: str | None = None,
    progress: bool = False,
) -> Report:
    """Verify a bundle; raises BundleUnreadable when it cannot be read at all."""
    report = Report()
    bundle = _open(path, report)
    report.origin = str(bundle.manifest.get("origin"))
    verifier = _Verifier(bundle, report, institution_key)
    try:
        verifier.run(progress)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise BundleUnreadable(f"events.jsonl unreadable: {exc}") from None
    verifier.check_checkpoints(trusted_checkpoint)
    if institution_key is None and trusted_checkpoint is None:
        report.warnings.append(
            "institution key not pinned: pass --institution-key FINGERPRINT (printed by the school) "
            "to know this log is the school's and not a copy re-signed by someone else"
        )
    report.problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    return report


def main(argv: list[str] | None = None) -> int:
    """Console entry point of `audit-verify`."""
    parser = argparse.ArgumentParser(
        prog="audit-verify", description="Verify an audit bundle offline."
    )
    parser.add_argument("bundle", help="the audit bundle (.zip)")
    parser.add_argument(
        "--trust", metavar="CHECKPOINT", help="a signed checkpoint you kept earlier"
    )
    parser.add_argument(
        "--institution-key", metavar="FINGERPRINT", help="the school's key fingerprint"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    trusted = None
    if args.trust:
        try:
            # NOTE: a checkpoint kept from an e-mail may have CRLF line ends; notes only use LF.
            trusted = Path(args.trust).read_text(encoding="utf-8").replace("\r\n", "\n")
        except OSError as exc:
            print(f"audit-verify: cannot read {args.trust}: {exc}", file=sys.stderr)
            return 2
    try:
        report = verify_bundle(
            args.bundle,
            trusted_checkpoint=trusted,
            institution_key=args.institution_key,
            progress=sys.stderr.isatty() and not args.json,
        )
    except BundleUnreadable as exc:
        if args.json:
            print(json.dumps({"valid": False, "unreadable": str(exc)}))
        else:
            print(f"audit-verify: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=1))
    else:
        _print_text(report)
    return 0 if report.valid else 1


def _print_text(report: Report) -> None:
    print(f"origin:      {report.origin}")
    print(f"events:      {report.event_count}")
    print(f"institution: {report.institution_fingerprint}")
    print(f"checkpoint:  {report.checkpoint_size} events, root {report.checkpoint_root}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    if report.valid:
        print("VALID: every hash, link, signature, key, checkpoint and step checks out.")
        return
    print(f"INVALID: {len(report.problems)} problem(s)")
    for problem in report.problems:
        seq = "-" if problem.seq is None else str(problem.seq)
        where = f" [{problem.request}]" if problem.request else ""
        print(f"  seq {seq:>6}  {problem.kind:<28}{where} {problem.detail}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
