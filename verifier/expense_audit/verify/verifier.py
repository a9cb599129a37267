"""The verification, step by step (the steps are listed in the package docstring)."""

from __future__ import annotations

import re
import sys
import zipfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..canonical import event_hash, parse_canonical
from ..checkpoint import CheckpointInvalid, open_checkpoint
from ..cosignature import CosignerKey
from ..decision import DecisionInvalid, check_log_body
from ..mandates import ACTIONS as MANDATE_ACTIONS
from ..merkle import Frontier, leaf_hash
from .attachments import Attachments
from .chain import CLOCK_TOLERANCE, Chain
from .checkpoints import (
    Roots,
    check_checkpoints,
    check_proof,
    check_trusted,
    open_trusted,
    parse_checkpoint_lines,
)
from .cosignatures import check_cosignatures, parse_witness_keys
from .fields import INSTITUTION, KEY_DECISIONS, FieldInvalid, check_body, parse_ts, v2_view
from .format import (
    CHECKPOINTS,
    KEYS,
    SIGNED_FORMS_DIR,
    BundleFiles,
    LineNotCanonical,
    open_bundle,
    split_line,
)
from .keys import BATCH, AssertionCrypto, Crypto, Keyring, Pool
from .metadata import (
    check_keys_file,
    check_manifest,
    delta_start,
    read_definitions,
    read_manifest,
)
from .replay import Replay
from .report import INTEGRITY, BundleUnreadable, Kind, PinInvalid, Report
from .signed_forms import NO_EXTRA, NO_ROOTS, check_signed_forms
from .state import export_state, institution_public, load_state

_PIN = re.compile(r"[0-9a-f]{64}")
# A decision may wait this long between being prepared (issued) and being logged (ts).
ISSUED_MAX_AGE = timedelta(hours=24)


def check_pin(pin: str | None) -> str | None:
    """A pin is the whole 64-hex fingerprint (any case), never a prefix."""
    if pin is None:
        return None
    if not _PIN.fullmatch(pin.strip().lower()):
        raise PinInvalid(
            f"--institution-key needs the full 64-hex fingerprint, got {len(pin.strip())} characters"
        )
    return pin.strip().lower()


class _Run:
    """One pass over the bundle's events (steps 2 to 7)."""

    def __init__(
        self,
        files: BundleFiles,
        report: Report,
        keyring: Keyring,
        replay: Replay,
        chain: Chain,
        roots: Roots,
    ) -> None:
        self.files, self.report, self.keyring, self.replay = files, report, keyring, replay
        self.chain, self.roots = chain, roots
        self.attachments = Attachments()
        self.skipped = 0
        self.assertions: list[AssertionCrypto] = []  # passkey signatures for the pool

    def events(self, *, jobs: int, progress: bool, total: object, skip: int) -> None:
        report = self.report
        bar = _progress(total) if progress else None
        pool = Pool(jobs)
        batch: list[Crypto] = []
        try:
            for line in self.files.lines():
                if bar is not None:
                    bar.update(1)
                report.event_count += 1
                # NOTE: resumed from a saved state, the events under the trusted checkpoint are
                # not read again: the state's frontier stands for them, and the first new
                # event must link to the state's head.
                if self.skipped < skip:
                    self.skipped += 1
                    continue
                item = self._line(line)
                if item is not None:
                    batch.append(item)
                if len(batch) + len(self.assertions) >= BATCH:
                    pool.submit(batch, report, self.assertions)
                    batch, self.assertions = [], []
            pool.submit(batch, report, self.assertions)
            pool.finish(report)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise BundleUnreadable(f"events.jsonl unreadable: {exc}") from None
        finally:
            pool.close()
            if bar is not None:
                bar.close()
        broken = {p.seq for p in report.problems if p.kind in INTEGRITY}
        report.problems.extend(p for p in self.replay.problems if p.seq not in broken)
        if self.skipped < skip:
            report.add(
                report.event_count,
                Kind.CHECKPOINT_BEYOND_LOG,
                f"your trusted checkpoint covers {skip} events, the bundle holds {report.event_count}: the log was truncated",
            )

    def _line(self, line: bytes) -> Crypto | None:
        """Steps 2-7 for one line; returns its hash and signature check for the pool (v1)."""
        report, chain, roots = self.report, self.chain, self.roots
        # 2. The line is exactly the writer's form; keep the signed bytes as they are.
        try:
            body_bytes, claimed, sig = split_line(line)
        except LineNotCanonical as exc:
            report.add(chain.expected_seq, Kind.NON_CANONICAL, str(exc))
            chain.advance(None, chain.prev_hash)
            return None
        roots.append(leaf_hash(bytes.fromhex(claimed) + sig))
        # 3. The body is canonical JCS, checked on its bytes, and every field is typed.
        seq = chain.expected_seq
        try:
            body, canonical = parse_canonical(body_bytes)
        except (ValueError, RecursionError) as exc:
            report.add(seq, Kind.MALFORMED, f"event body unreadable: {exc!s:.200}")
            chain.advance(None, claimed)
            return None
        if not canonical:
            report.add(seq, Kind.NON_CANONICAL, "body is not in RFC 8785 canonical form")
            chain.advance(None, claimed)
            return None
        if isinstance(body, dict) and body.get("v") == 2 and type(body["v"]) is int:
            self._v2(body, body_bytes, claimed, sig)
            return None
        try:
            moment = check_body(body)
        except FieldInvalid as exc:
            report.add(seq, Kind.MALFORMED, str(exc))
            chain.advance(None, claimed)
            return None
        seq = body["seq"]
        if not sig:
            report.add(seq, Kind.NON_CANONICAL, "a v1 event's line carries no signature")
        # 4. Sequence, link, origin and time.
        chain.link(seq, body, moment, report)
        # 5. The key that must have signed it; 6. hash and signature (batched).
        public = self.keyring.signing_key(seq, body, report)
        if public is not None and not sig:
            public = None
        item: Crypto = (seq, body["request"], body_bytes, claimed, sig, public)
        # 7. Meaning: institution events change keys and roles; request steps replay.
        if body["actor"] == INSTITUTION:
            if body["action"] != "log.init":
                self.keyring.apply(seq, body, report)
        else:
            self.keyring.note_step(seq, body)
            self.attachments.bind(seq, body)
            self.replay.step(seq, body, claimed)
        chain.advance(seq, claimed)
        return item

    def _v2(self, body: dict[str, Any], body_bytes: bytes, claimed: str, sig: bytes) -> None:
        """Steps 3 to 7 for a v2 event: the person's decision inside the log's body.

        Its signature is checked here, in log order: passkey sign counters depend on it.
        """
        report, chain = self.report, self.chain
        seq = chain.expected_seq
        try:
            view = v2_view(check_log_body(body))
            moment = parse_ts(view["ts"])
        except (DecisionInvalid, FieldInvalid) as exc:
            report.add(seq, Kind.MALFORMED, str(exc))
            chain.advance(None, claimed)
            return
        seq = view["seq"]
        if sig:
            report.add(seq, Kind.NON_CANONICAL, "a v2 event's line carries a sig beside its body")
        # 4. Chain, and the decision's own time: prepared before it was logged, not long before.
        chain.link(seq, view, moment, report)
        issued = parse_ts(view["issued"])
        if issued > moment + CLOCK_TOLERANCE or issued < moment - ISSUED_MAX_AGE:
            report.add(
                seq,
                Kind.ISSUED_OUT_OF_RANGE,
                f"decision issued {view['issued']}, logged {view['ts']}",
                view["request"],
            )
        # 6. The hash of the exact bytes (a v2 body holds its signature; leaf = the hash alone).
        actual = event_hash(body_bytes)
        if actual != claimed:
            report.add(
                seq,
                Kind.HASH_MISMATCH,
                f"body hashes to {actual[:16]}…, line claims {claimed[:16]}…",
                view["request"],
            )
        # 5./6. The person's key and signature, in log order; a request step's passkey
        # signature is checked in the pool (its replay does not depend on it).
        step = view["action"] not in KEY_DECISIONS and view["action"] not in MANDATE_ACTIONS
        what = f"{view['action']} by {view['actor']}"
        verified = self.keyring.check_decision(
            seq,
            view,
            report,
            defer=(lambda check: self.assertions.append((seq, view["request"], what, check)))
            if step
            else None,
        )
        # 7. Key decisions change the keyring; request steps replay.
        if view["action"] in KEY_DECISIONS:
            self.keyring.key_decision(seq, view, verified, report)
        elif view["action"] in MANDATE_ACTIONS:
            self.replay.mandate_event(seq, view, claimed, verified=verified)
        else:
            self.attachments.bind(seq, view)
            self.replay.step(seq, view, claimed)
        chain.advance(seq, claimed)


def _progress(total: object) -> Any:
    """A progress bar on the terminal when tqdm is installed (the `progress` extra), else None."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(
        total=total if type(total) is int else None, unit="ev", file=sys.stderr, leave=False
    )


def _note_size(note: str | None) -> int | None:
    """The size line of a checkpoint note, read loosely (only to know which root to record)."""
    lines = (note or "").split("\n")
    return int(lines[1]) if len(lines) > 2 and lines[1].isascii() and lines[1].isdigit() else None


def _aware(moment: datetime) -> datetime:
    """A naive time is taken as UTC (the clock's form in this project)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def verify_bundle(
    path: str | Path,
    *,
    trusted_checkpoint: str | None = None,
    institution_key: str | None = None,
    progress: bool = False,
    jobs: int = 1,
    state: Mapping[str, Any] | None = None,
    keep_state: bool = False,
    proof: object = None,
    witness_keys: Sequence[str] = (),
    now: datetime | None = None,
    ca_roots: Sequence[bytes] | None = None,
) -> Report:
    """Verify the bundle at ``path`` (see _verify_files); the zip is closed whatever happens."""
    witnesses = parse_witness_keys(witness_keys)
    files = open_bundle(path)
    try:
        return _verify_files(
            files,
            trusted_checkpoint=trusted_checkpoint,
            institution_key=institution_key,
            progress=progress,
            jobs=jobs,
            state=state,
            keep_state=keep_state,
            proof=proof,
            witnesses=witnesses,
            now=_aware(now or datetime.now(UTC)),
            ca_roots=ca_roots,
        )
    finally:
        files.archive.close()


def _check_signed_pdfs(
    files: BundleFiles,
    keyring: Keyring,
    manifest: Mapping[str, Any],
    ca_roots: Sequence[bytes] | None,
    report: Report,
) -> None:
    """Step 9c: the signed PDFs in the bundle against the form.sign events (signed_forms.py)."""
    records = [form for person in keyring.people.values() for form in person.signed_forms]
    pdfs = {
        name: files.read(name)
        for name in sorted(files.members)
        if name.startswith(SIGNED_FORMS_DIR)
    }
    result = check_signed_forms(
        pdfs,
        records,
        ca_roots=ca_roots,
        required=manifest.get("with_attachments") is True,
        required_after=delta_start(dict(manifest)) or 0,
    )
    for seq, kind, detail, request in result.problems:
        report.add(seq, kind, detail, request)
    report.signed_pdfs = result.as_json()
    if result.status in (NO_EXTRA, NO_ROOTS):
        report.warnings.append(result.status)


def _verify_files(
    files: BundleFiles,
    *,
    trusted_checkpoint: str | None,
    institution_key: str | None,
    progress: bool,
    jobs: int,
    state: Mapping[str, Any] | None,
    keep_state: bool,
    proof: object,
    witnesses: Sequence[CosignerKey],
    now: datetime,
    ca_roots: Sequence[bytes] | None = None,
) -> Report:
    """Verify a bundle; raises BundleUnreadable when it cannot be read, PinInvalid for a bad pin.

    With ``state`` (saved by an earlier run with ``keep_state``) and the trusted checkpoint it
    belongs to, only the events after that checkpoint are verified in full; the bundle may then
    hold only those (a delta export). With ``proof`` (the file `audit prove` writes, parsed), the
    final checkpoint must extend the trusted one by that RFC 9162 consistency proof. With
    ``witnesses``, the final checkpoint must be cosigned by each (``now``: the verifier's clock).
    """
    pin = check_pin(institution_key)
    report = Report()
    # 1. The zip's layout (open_bundle), then the small members, each read under its cap.
    manifest = read_manifest(files)
    since = delta_start(manifest)
    workflows, catalogues, listed = read_definitions(files, report)
    keys_file = files.json(KEYS)
    checkpoint_entries = parse_checkpoint_lines(files.read(CHECKPOINTS), report)
    keyring = Keyring(pinned=pin)
    replay = Replay(workflows=workflows, catalogues=catalogues, keyring=keyring)
    chain = Chain()
    frontier = Frontier()
    skip = 0
    if state is not None:
        if trusted_checkpoint is None:
            raise BundleUnreadable(
                "a saved state needs the trusted checkpoint it belongs to (--trust)"
            )
        try:
            trusted = open_checkpoint(trusted_checkpoint, institution_public(dict(state)))
        except CheckpointInvalid as exc:
            raise BundleUnreadable(f"trusted checkpoint does not verify: {exc.message}") from None
        frontier, projections, heads = load_state(dict(state), trusted, keyring, chain)
        replay.load(projections, heads, dict(state).get("mandates") or {})
        if since is not None and since != trusted.size:
            raise BundleUnreadable(
                f"this delta bundle starts after event {since}, your trusted checkpoint covers {trusted.size}"
            )
        skip = 0 if since is not None else trusted.size
        if pin is not None and keyring.fingerprint != pin:
            report.add(
                1,
                Kind.INSTITUTION_KEY_MISMATCH,
                f"log is signed by {keyring.fingerprint}, you trust {pin}",
            )
    elif since is not None:
        raise BundleUnreadable(
            f"this bundle holds only the events after {since}: verify it with --trust (that "
            "checkpoint) and --state (saved when you verified up to it)"
        )
    wanted = [size for size, _, _ in checkpoint_entries]
    roots = Roots.starting(frontier, [*wanted, _note_size(trusted_checkpoint) or 0])
    run = _Run(files, report, keyring, replay, chain, roots)
    run.events(jobs=jobs, progress=progress, total=manifest.get("event_count"), skip=skip)
    origin = chain.origin or ""
    report.origin = origin
    report.institution_fingerprint = keyring.fingerprint
    report.requests = replay.projections
    report.people = keyring.people_report()
    public_raw = (
        bytes.fromhex(keyring.keys[keyring.institution_key].public_hex)
        if keyring.institution_key in keyring.keys
        else None
    )
    # 8. Checkpoints, the auditor's own trusted checkpoint and the consistency proof to it.
    final = check_checkpoints(
        checkpoint_entries,
        roots=roots,
        public_raw=public_raw,
        origin=origin,
        chain=chain,
        report=report,
    )
    # 8b. Witness cosignatures: listed, and required of the witnesses the auditor named.
    report.witnesses = [key.vkey for key in witnesses]
    check_cosignatures(
        checkpoint_entries, final=final, witness_keys=witnesses, now=now, report=report
    )
    trusted_cp = None
    if trusted_checkpoint is not None:
        trusted_cp = open_trusted(
            trusted_checkpoint, public_raw=public_raw, origin=origin, report=report
        )
        if trusted_cp is not None:
            check_trusted(trusted_cp, roots=roots, report=report)
    if proof is not None:
        if trusted_cp is None or public_raw is None:
            report.add(
                None,
                Kind.CONSISTENCY_PROOF_INVALID,
                "a consistency proof needs the trusted checkpoint it starts from (--trust)",
            )
        else:
            check_proof(
                proof, trusted=trusted_cp, final=final, public_raw=public_raw, report=report
            )
    # 9. The unsigned files say what the signed log says; attached files are the ones signed.
    check_manifest(
        manifest,
        origin=origin,
        keyring=keyring,
        event_count=report.event_count,
        head_hash=chain.prev_hash,
        definitions=listed,
        report=report,
    )
    check_keys_file(keys_file, keyring, report)
    run.attachments.check(files, required=manifest.get("with_attachments") is True, report=report)
    report.attachments = run.attachments.listing()
    _check_signed_pdfs(files, keyring, manifest, ca_roots, report)
    # 10. Trust: only a full pin or a checkpoint the auditor kept ties the log to the school.
    report.trusted = pin is not None or trusted_checkpoint is not None
    report.problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    if keep_state and report.valid:
        report.state = export_state(
            origin=origin,
            frontier=roots.frontier,
            chain=chain,
            keyring=keyring,
            projections=replay.projections,
            heads=replay.heads,
            mandates={str(s): m.to_state() for s, m in replay.mandates.items()},
        )
    return report
