"""Verification rate of passkey (v2, ES256) events against raw ES256 verify, in the same run.

    python bench/verify_v2_rate.py [--requests 1500] [--jobs 1 2]

Builds a log whose person steps are all v2 decisions signed by ES256 passkeys (the soft
authenticator of the tests: submit, forward, reject per request), then prints one JSON object per
line: the raw ES256 verify rate of the very same assertions (cryptography/OpenSSL, the only
P-256 verifier here, one process), and `audit-verify` events/s over the bundle with 1 and 2
processes (the assertions' signatures go to the worker processes, as v1's do).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from expense_audit.verify import verify_bundle  # noqa: E402
from expense_audit.verify.format import split_line  # noqa: E402
from expense_audit.webauthn import ES256, b64url_decode, load_public_key  # noqa: E402
from tests.softauthn import SoftAuthenticator  # noqa: E402
from tests.v2_log import V2Log  # noqa: E402


def build(requests: int) -> V2Log:
    """Set-up, then ``requests`` requests of three passkey-signed steps each."""
    log = V2Log()
    log.roles("admin", ["admin"], by="setup")
    people = {"hanh": "proposer", "lan": "reviewer", "minh": "approver"}
    signers = {}
    for login, role in people.items():
        log.roles(login, [role])
        auth = SoftAuthenticator(alg=ES256)
        kid = log.enroll_passkey(login, auth)
        log.confirm(login, kid, auth)
        signers[login] = (kid, auth)
    for n in range(1, requests + 1):
        number = f"2024-2025/{n:05d}"
        for actor, action, to_state, comment in (
            ("hanh", "submit", "submitted", None),
            ("lan", "forward", "forwarded", "Hợp lý."),
            ("minh", "reject", "rejected", "Chưa cần."),
        ):
            kid, auth = signers[actor]
            log.step(auth, actor, kid, action, number, to_state, people[actor], comment=comment)
    return log


def raw_es256_rate(path: Path) -> tuple[int, float]:
    """ES256 verifications per second over the bundle's own passkey assertions."""
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    items = []
    with zipfile.ZipFile(path) as archive:
        lines = archive.read("events.jsonl").splitlines()
    for line in lines:
        body = json.loads(split_line(line)[0])
        if body.get("v") == 1 and body["action"] == "key.enroll":
            data = body["data"]
            keys[data["key_id"]] = load_public_key(b64url_decode(data["public_key"]), data["alg"])  # type: ignore[assignment]
        if body.get("v") == 2 and body["signature"]["kind"] == "webauthn":
            sig = body["signature"]
            client = b64url_decode(sig["client_data_json"])
            signed = b64url_decode(sig["authenticator_data"]) + hashlib.sha256(client).digest()
            items.append((keys[body["decision"]["key"]], b64url_decode(sig["signature"]), signed))
    start = time.perf_counter()
    for key, signature, signed in items:
        key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
    return len(items), len(items) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1_500)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="processes in all")
    args = parser.parse_args()
    log = build(args.requests)
    with tempfile.TemporaryDirectory() as folder:
        path = log.write(Path(folder) / "v2.zip")
        count, raw = raw_es256_rate(path)
        print(
            json.dumps(
                {"figure": "raw_es256_verify", "assertions": count, "per_second": round(raw)}
            )
        )
        for jobs in args.jobs:
            start = time.perf_counter()
            report = verify_bundle(path, jobs=jobs)
            elapsed = time.perf_counter() - start
            assert report.valid, report.problems[:3]
            rate = report.event_count / elapsed
            print(
                json.dumps(
                    {
                        "figure": "audit_verify_v2_passkey",
                        "jobs": jobs,
                        "events": report.event_count,
                        "passkey_events": count,
                        "seconds": round(elapsed, 2),
                        "per_second": round(rate),
                        "ratio_vs_raw_es256": round(rate / raw, 3),
                        "ratio_per_process": round(rate / raw / jobs, 3),
                        "load": round(os.getloadavg()[0], 2),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
