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
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
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
    parse_canonical,
    signing_message,
)
from .checkpoint import Checkpoint, CheckpointInvalid, open_checkpoint
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
    state: dict[str, Any] | None = None

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


_BATCH = 2048
_INTEGRITY = {
    "hash-mismatch",
    "bad-signature",
    "broken-link",
    "gap",
    "duplicate",
    "reordered",
    "malformed",
    "unknown-key",
    "key-not-valid",
    "key-owner-mismatch",
    "non-canonical",
}
# (seq, request, exact body bytes, claimed hash, signature, public key that must verify it)
_Crypto = tuple[int, Any, bytes, str, bytes, bytes | None]


def _crypto_checks(items: list[_Crypto]) -> list[Problem]:
    """Hash and signature of a batch of events (in worker processes when --jobs > 1)."""
    problems = []
    keys: dict[bytes, Ed25519PublicKey] = {}
    for seq, request, body_bytes, claimed, sig, public_raw in items:
        actual = event_hash(body_bytes)
        if actual != claimed:
            problems.append(
                Problem(
                    seq,
                    "hash-mismatch",
                    f"body hashes to {actual[:16]}…, line claims {claimed[:16]}…",
                    request,
                )
            )
        if public_raw is None:
            continue
        public = keys.get(public_raw)
        if public is None:
            public = keys[public_raw] = Ed25519PublicKey.from_public_bytes(public_raw)
        try:
            public.verify(sig, signing_message(body_bytes))
        except InvalidSignature:
            problems.append(
                Problem(
                    seq, "bad-signature", "signature does not verify with the actor's key", request
                )
            )
    return problems


class _Pool:
    """Crypto checks in-process (jobs=1) or in worker processes, a bounded number in flight."""

    def __init__(self, jobs: int) -> None:
        # NOTE: jobs counts processes, this one included: it replays while jobs - 1 workers check
        # hashes and signatures (on a 2-core machine, 2 workers plus this one only contend).
        self.executor = ProcessPoolExecutor(max_workers=jobs - 1) if jobs > 1 else None
        self.pending: deque[Future[list[Problem]]] = deque()
        self.limit = max(2, jobs * 3)

    def submit(self, batch: list[_Crypto], report: Report) -> None:
        if not batch:
            return
        if self.executor is None:
            report.problems.extend(_crypto_checks(batch))
            return
        self.pending.append(self.executor.submit(_crypto_checks, batch))
        while len(self.pending) > self.limit:
            report.problems.extend(self.pending.popleft().result())

    def finish(self, report: Report) -> None:
        while self.pending:
            report.problems.extend(self.pending.popleft().result())

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)


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
        self.replay_problems: list[Problem] = []

    def run(self, progress: bool, *, jobs: int = 1, resume: _Resume | None = None) -> None:
        """Walk the events in order; hash, canonical and signature checks go to ``jobs`` workers."""
        expected_seq, prev_hash, last_seq = 1, GENESIS_PREV, 0
        bar = _progress(self.bundle.manifest.get("event_count", 0)) if progress else None
        pool = _Pool(jobs)
        batch: list[_Crypto] = []
        try:
            for line in _lines(self.bundle.zip):
                if bar is not None:
                    bar.update(1)
                # 1. Split the line; keep the exact bytes that were signed.
                try:
                    body_bytes, claimed, sig = _split_line(line)
                except (ValueError, KeyError, TypeError) as exc:
                    self.report.add(expected_seq, "malformed", f"event line unreadable: {exc}")
                    expected_seq += 1
                    continue
                # 2. Events a trusted checkpoint already covers were verified before: check only
                #    that their bytes still hash to what the checkpoint committed to.
                if resume is not None and self.report.event_count < resume.size:
                    self.report.event_count += 1
                    if event_hash(body_bytes) != claimed:
                        self.report.add(
                            self.report.event_count,
                            "hash-mismatch",
                            "an event under the trusted checkpoint changed",
                        )
                    self.leaves.append(leaf_hash(bytes.fromhex(claimed) + sig))
                    prev_hash = claimed
                    last_seq = expected_seq = self.report.event_count
                    expected_seq += 1
                    continue
                try:
                    body, canonical = parse_canonical(body_bytes)
                    seq = int(body["seq"])
                except (ValueError, KeyError, TypeError) as exc:
                    self.report.add(expected_seq, "malformed", f"event body unreadable: {exc}")
                    expected_seq += 1
                    continue
                self.report.event_count += 1
                if not canonical:
                    self.report.add(
                        seq,
                        "non-canonical",
                        "body is not in RFC 8785 canonical form",
                        body.get("request"),
                    )
                # 3. Sequence: no gap, no duplicate, no reordering.
                if seq != expected_seq:
                    kind = (
                        "duplicate"
                        if seq == last_seq
                        else "reordered"
                        if seq < expected_seq
                        else "gap"
                    )
                    self.report.add(seq, kind, f"expected seq {expected_seq}, found {seq}")
                # 4. Link to the previous event, and the log's name.
                if body.get("prev") != prev_hash:
                    self.report.add(
                        seq,
                        "broken-link",
                        f"prev is {str(body.get('prev'))[:16]}…, previous event is {prev_hash[:16]}…",
                    )
                if body.get("origin") != self.bundle.manifest.get("origin"):
                    self.report.add(seq, "origin-mismatch", f"event origin {body.get('origin')!r}")
                # 5. Which key must have signed it (registered, valid at this seq, the actor's).
                public = self._signing_key(seq, body)
                batch.append((seq, body.get("request"), body_bytes, claimed, sig, public))
                if len(batch) >= _BATCH:
                    pool.submit(batch, self.report)
                    batch = []
                # 6. Meaning: key events, role grants, and the replay of requests.
                self._apply(seq, body, claimed)
                self.leaves.append(leaf_hash(bytes.fromhex(claimed) + sig))
                prev_hash, last_seq, expected_seq = claimed, seq, max(seq, expected_seq - 1) + 1
            pool.submit(batch, self.report)
            pool.finish(self.report)
        finally:
            pool.close()
            if bar is not None:
                bar.close()
        # A step that is already broken (bad hash, signature, link) is not also reported as forbidden.
        broken = {p.seq for p in self.report.problems if p.kind in _INTEGRITY}
        self.report.problems.extend(p for p in self.replay_problems if p.seq not in broken)
        self.report.requests = self.projections
        self._check_manifest(prev_hash)
        self._check_keys_file()

    def _signing_key(self, seq: int, body: Mapping[str, Any]) -> bytes | None:
        """The public key that must verify this event, or None (and a problem) if there is none."""
        kid = body.get("key")
        actor = body.get("actor")
        if body.get("action") == "log.init" and seq == 1:
            data = body.get("data") or {}
            public_hex = str(data.get("institution_key", ""))
            try:
                public_raw = bytes.fromhex(public_hex)
                Ed25519PublicKey.from_public_bytes(public_raw)
            except ValueError:
                self.report.add(
                    seq, "unknown-key", "log.init does not carry a valid institution key"
                )
                return None
            fingerprint = key_fingerprint(public_raw)
            self.report.institution_fingerprint = fingerprint
            if self.pinned and not fingerprint.startswith(self.pinned):
                self.report.add(
                    seq,
                    "institution-key-mismatch",
                    f"log is signed by {fingerprint}, you trust {self.pinned}",
                )
            self.institution_key = key_id(public_raw)
            self.keys[self.institution_key] = _Key(INSTITUTION, public_hex, valid_from=1)
        key = self.keys.get(str(kid))
        if key is None:
            self.report.add(seq, "unknown-key", f"key {kid} was never registered in this log")
            return None
        if seq < key.valid_from or (key.revoked_at is not None and seq > key.revoked_at):
            window = f"{key.valid_from}..{key.revoked_at if key.revoked_at is not None else 'now'}"
            self.report.add(
                seq, "key-not-valid", f"key {kid} of {key.owner} is valid for seq {window}"
            )
        if key.owner != actor:
            self.report.add(
                seq, "key-owner-mismatch", f"key {kid} belongs to {key.owner}, actor is {actor}"
            )
        return bytes.fromhex(key.public_hex)

    def _apply(self, seq: int, body: Mapping[str, Any], event_hash_: str) -> None:
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
                    Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(data.get("public_key"))))
                except ValueError:
                    self.report.add(seq, "unknown-key", "registered key is not an Ed25519 key")
                    return
                self.keys[str(data.get("key_id"))] = _Key(
                    str(data.get("owner")), str(data.get("public_key")), valid_from=seq + 1
                )
            elif action == "key.revoke":
                key = self.keys.get(str(data.get("key_id")))
                if key is not None:
                    key.revoked_at = seq
            elif action not in ("log.init", "user.active"):
                self.report.add(seq, "forbidden-step", f"unknown institution action {action!r}")
            return
        if not body.get("request"):
            self.report.add(seq, "forbidden-step", f"event by {body.get('actor')} names no request")
            return
        self._replay(seq, body, event_hash_)

    def _replay(self, seq: int, body: Mapping[str, Any], event_hash_: str) -> None:
        """Replay one request event through its definition; a forbidden step is a problem."""
        number = str(body["request"])
        projection = self.projections.get(number)
        try:
            self._check_step(seq, body, projection)
        except _Forbidden as refusal:
            self.replay_problems.append(Problem(seq, refusal.kind, refusal.detail, number))
        except WorkflowError as refusal:
            detail = f"{body.get('action')} by {body.get('actor')}: {refusal.message}"
            self.replay_problems.append(Problem(seq, "forbidden-step", detail, number))
        try:
            updated = apply_event(projection, body, event_hash_, self._effects(body, projection))
        except (KeyError, TypeError):
            return
        self.projections[number] = updated
        with contextlib.suppress(TypeError, ValueError):
            self.book.set(number, commitment_of(updated))

    def _effects(self, body: Mapping[str, Any], projection: Projection | None) -> tuple[str, ...]:
        """What the event's transition records, from the definition the event names."""
        workflow = self.bundle.workflows.get(str(body.get("definition")))
        if workflow is None:
            return ()
        state = projection["state"] if projection else workflow.initial
        transition = workflow.find(str(state), str(body.get("action")))
        return transition.effects if transition is not None else ()

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
            if transition.checks_content:
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


STATE_FORMAT = "expense-audit-verifier-state"


def export_state(verifier: _Verifier) -> dict[str, Any]:
    """What an auditor keeps after a full verification, to verify only what is new next time."""
    return {
        "format": STATE_FORMAT,
        "version": 1,
        "origin": verifier.report.origin,
        "size": len(verifier.leaves),
        "root": root_from_leaf_hashes(verifier.leaves).hex(),
        "institution_key": verifier.institution_key,
        "fingerprint": verifier.report.institution_fingerprint,
        "keys": {
            kid: {
                "owner": k.owner,
                "public_hex": k.public_hex,
                "valid_from": k.valid_from,
                "revoked_at": k.revoked_at,
            }
            for kid, k in verifier.keys.items()
        },
        "roles": {login: sorted(roles) for login, roles in verifier.roles.items()},
        "projections": verifier.projections,
    }


class _Resume:
    """Resume from a trusted checkpoint and the verifier state saved when it was verified."""

    def __init__(self, state: Mapping[str, Any], trusted: Checkpoint) -> None:
        if (
            state.get("format") != STATE_FORMAT
            or state.get("size") != trusted.size
            or state.get("root") != trusted.root_hex
        ):
            raise BundleUnreadable("the saved state does not belong to the trusted checkpoint")
        self.state = state
        self.size = trusted.size

    def load_into(self, verifier: _Verifier) -> None:
        """Start from the state saved at the trusted checkpoint; check_checkpoints then compares
        the bundle's first events with that checkpoint's root and size."""
        state = self.state
        verifier.institution_key = state["institution_key"]
        verifier.report.institution_fingerprint = state["fingerprint"]
        if verifier.pinned and not str(state["fingerprint"]).startswith(verifier.pinned):
            verifier.report.add(
                1,
                "institution-key-mismatch",
                f"log is signed by {state['fingerprint']}, you trust {verifier.pinned}",
            )
        verifier.keys = {
            kid: _Key(k["owner"], k["public_hex"], k["valid_from"], k["revoked_at"])
            for kid, k in state["keys"].items()
        }
        verifier.roles = {login: set(roles) for login, roles in state["roles"].items()}
        verifier.projections = {n: dict(p) for n, p in state["projections"].items()}
        for number, projection in verifier.projections.items():
            verifier.book.set(number, commitment_of(projection))


class _Forbidden(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


def _progress(total: int) -> Any:
    """A progress bar on the terminal when tqdm is installed (the `progress` extra), else None."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="ev", file=sys.stderr, leave=False)


def verify_bundle(
    path: str | Path,
    *,
    trusted_checkpoint: str | None = None,
    institution_key: str | None = None,
    progress: bool = False,
    jobs: int = 1,
    state: Mapping[str, Any] | None = None,
    keep_state: bool = False,
) -> Report:
    """Verify a bundle; raises BundleUnreadable when it cannot be read at all.

    With ``state`` (saved by an earlier run with ``keep_state``) and the trusted checkpoint it
    belongs to, only the events after that checkpoint are verified in full.
    """
    report = Report()
    bundle = _open(path, report)
    report.origin = str(bundle.manifest.get("origin"))
    verifier = _Verifier(bundle, report, institution_key)
    resume = None
    if state is not None:
        if trusted_checkpoint is None:
            raise BundleUnreadable(
                "a saved state needs the trusted checkpoint it belongs to (--trust)"
            )
        public_hex = (
            state.get("keys", {}).get(state.get("institution_key"), {}).get("public_hex", "")
        )
        try:
            trusted = open_checkpoint(
                trusted_checkpoint, bytes.fromhex(public_hex), origin=report.origin
            )
        except (CheckpointInvalid, ValueError) as exc:
            raise BundleUnreadable(f"trusted checkpoint does not verify: {exc}") from None
        resume = _Resume(state, trusted)
        resume.load_into(verifier)
    try:
        verifier.run(progress, jobs=jobs, resume=resume)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise BundleUnreadable(f"events.jsonl unreadable: {exc}") from None
    verifier.check_checkpoints(trusted_checkpoint)
    if institution_key is None and trusted_checkpoint is None:
        report.warnings.append(
            "institution key not pinned: pass --institution-key FINGERPRINT (printed by the school) "
            "to know this log is the school's and not a copy re-signed by someone else"
        )
    report.problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    if keep_state and report.valid:
        report.state = export_state(verifier)
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
        help="state saved with the --trust checkpoint: verify only what is new",
    )
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
        state = json.loads(Path(args.state).read_text(encoding="utf-8")) if args.state else None
    except (OSError, ValueError) as exc:
        print(f"audit-verify: cannot read state {args.state}: {exc}", file=sys.stderr)
        return 2
    try:
        report = verify_bundle(
            args.bundle,
            trusted_checkpoint=trusted,
            institution_key=args.institution_key,
            progress=sys.stderr.isatty() and not args.json,
            jobs=max(1, args.jobs),
            state=state,
            keep_state=bool(args.save_state),
        )
    except BundleUnreadable as exc:
        if args.json:
            print(json.dumps({"valid": False, "unreadable": str(exc)}))
        else:
            print(f"audit-verify: {exc}", file=sys.stderr)
        return 2
    if args.save_state and report.state is not None:
        Path(args.save_state).write_text(
            json.dumps(report.state, ensure_ascii=False), encoding="utf-8"
        )
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
