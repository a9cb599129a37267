"""Verification rate of an audit bundle against the raw Ed25519 verify rate, in the same run."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from workflow.bundle import export_bundle
from workflow.canonical import signing_message
from workflow.demo import create_history, create_people
from workflow.keys import InstitutionKey
from workflow.runtime import Runtime, Settings
from workflow.verify import _split_line, verify_bundle


def build_bundle(folder: Path, requests: int) -> Path:
    settings = Settings(
        database_url=f"sqlite:///{folder / 'bench.sqlite'}", keys_dir=folder / "keys"
    )
    InstitutionKey.create(settings.keys_dir)
    runtime = Runtime(settings)
    runtime.init_db()
    with runtime.transaction() as session:
        create_people(runtime, session)
    create_history(runtime, requests)
    path = folder / "bundle.zip"
    with runtime.transaction() as session:
        export_bundle(session, path, institution=runtime.institution, now=runtime.now())
    return path


def raw_verify_rate(path: Path) -> tuple[int, float]:
    """Ed25519 verifications per second over the bundle's own signatures and messages."""
    with zipfile.ZipFile(path) as archive:
        lines = archive.read("events.jsonl").splitlines()
    keys = json.loads(zipfile.ZipFile(path).read("keys.json"))
    public = {
        k["key_id"]: Ed25519PublicKey.from_public_bytes(bytes.fromhex(k["public_key"]))
        for k in keys
    }
    items = []
    for line in lines:
        body, _, sig = _split_line(line)
        items.append((public[json.loads(body)["key"]], signing_message(body), sig))
    start = time.perf_counter()
    for key, message, sig in items:
        key.verify(sig, message)
    return len(items), len(items) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--bundle", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = args.bundle or build_bundle(Path(folder), args.requests)
        count, raw = raw_verify_rate(path)
        start = time.perf_counter()
        report = verify_bundle(path)
        elapsed = time.perf_counter() - start
        assert report.valid, report.problems[:5]
        rate = report.event_count / elapsed
        print(
            json.dumps({"figure": "raw_ed25519_verify", "events": count, "per_second": round(raw)})
        )
        print(
            json.dumps(
                {
                    "figure": "audit_verify",
                    "events": report.event_count,
                    "per_second": round(rate),
                    "seconds": round(elapsed, 3),
                    "ratio_vs_raw": round(rate / raw, 3),
                }
            )
        )


if __name__ == "__main__":
    main()
