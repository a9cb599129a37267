"""Verification rate of audit bundles against the raw Ed25519 verify rate, in the same run.

    python bench/verify_rate.py [--sizes 10000 100000] [--new 1000]

Prints one JSON object per line. Ratios compare with the raw rate of verifying the very same
signatures in this process, measured just before, with `cryptography` (OpenSSL) and with the
fastest Ed25519 verifier here, libsodium through PyNaCl (what audit-verify uses).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.signing import VerifyKey
from synth import checkpoint_note, events, write_bundle

from expense_audit.canonical import signing_message
from expense_audit.verify import verify_bundle
from expense_audit.verify.format import split_line


def raw_rate(path: Path) -> tuple[float, float]:
    """Ed25519 verifications per second over the bundle's own messages and signatures.

    Returns (cryptography, PyNaCl).
    """
    keys: dict[str, Ed25519PublicKey] = {}
    items = []
    with zipfile.ZipFile(path) as archive:
        lines = archive.read("events.jsonl").splitlines()
    for line in lines:
        body, _, sig = split_line(line)
        parsed = json.loads(body)
        if parsed["action"] == "log.init":
            keys[parsed["key"]] = Ed25519PublicKey.from_public_bytes(
                bytes.fromhex(parsed["data"]["institution_key"])
            )
        if parsed["action"] == "key.register":
            keys[parsed["data"]["key_id"]] = Ed25519PublicKey.from_public_bytes(
                bytes.fromhex(parsed["data"]["public_key"])
            )
        items.append((keys[parsed["key"]], signing_message(body), sig))
    start = time.perf_counter()
    for key, message, sig in items:
        key.verify(sig, message)
    openssl = len(items) / (time.perf_counter() - start)
    sodium = {id(key): VerifyKey(key.public_bytes_raw()) for key, _, _ in items}
    fast = [(sodium[id(key)], message, sig) for key, message, sig in items]
    start = time.perf_counter()
    for verify_key, message, sig in fast:
        verify_key.verify(message, sig)
    return openssl, len(items) / (time.perf_counter() - start)


def timed(path: Path, **kwargs: object) -> tuple[float, object]:
    start = time.perf_counter()
    report = verify_bundle(path, **kwargs)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    assert report.valid, report.problems[:3]
    return elapsed, report


def emit(**figure: object) -> None:
    print(json.dumps(figure), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--new", type=int, default=1_000, help="events added after the largest size"
    )
    args = parser.parse_args()
    emit(figure="machine", cpus=os.cpu_count())
    largest = max(args.sizes)
    log = events(largest + args.new)
    with tempfile.TemporaryDirectory() as folder:
        for size in sorted(args.sizes):
            path = write_bundle(log, Path(folder) / f"b{size}.zip", size=size)
            raw, sodium = raw_rate(path)
            emit(
                figure="raw_ed25519_verify",
                events=size,
                per_second=round(raw),
                pynacl_per_second=round(sodium),
            )
            for jobs in (1, 2):
                elapsed, _ = timed(path, jobs=jobs)
                rate = size / elapsed
                emit(
                    figure="audit_verify",
                    events=size,
                    jobs=jobs,
                    seconds=round(elapsed, 2),
                    per_second=round(rate),
                    ratio_vs_raw=round(rate / raw, 3),
                    ratio_vs_raw_pynacl_per_process=round(rate / sodium / jobs, 3),
                )
        # Incremental: verify the largest bundle once, keep the state, then only what is new.
        base = Path(folder) / f"b{largest}.zip"
        _, full = timed(base, keep_state=True)
        state = json.loads(json.dumps(full.state))  # type: ignore[attr-defined]
        grown = write_bundle(log, Path(folder) / "grown.zip")
        note = checkpoint_note(log, largest)
        incremental, _ = timed(grown, trusted_checkpoint=note, state=state)
        everything, _ = timed(grown)
        only_new = write_bundle(log, Path(folder) / "new-only.zip", size=args.new)
        small, _ = timed(only_new)
        emit(
            figure="incremental_verify",
            trusted=largest,
            new=args.new,
            seconds=round(incremental, 3),
            full_seconds=round(everything, 2),
            ratio_vs_full=round(incremental / everything, 4),
            ratio_vs_verifying_new_alone=round(incremental / small, 2),
        )


if __name__ == "__main__":
    main()
