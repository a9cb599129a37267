"""The district witness: milliseconds per add-checkpoint (check the school's signature and the RFC 9162
proof, cosign, commit), against a bare one-row update committed on the same database."""

from __future__ import annotations

import json
import tempfile
import time
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update

from expense_audit.checkpoint import sign_checkpoint
from expense_audit.merkle import consistency_proof, leaf_hash, root_from_leaf_hashes
from workflow.clock import utcnow
from workflow.db import make_engine, session_factory
from workflow.models import WitnessLog
from workflow.witness import Witness, WitnessKey

ORIGIN = "school.example/expenses"
EVENTS, STEP = 20_000, 100


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    engine = make_engine(f"sqlite:///{folder / 'witness.sqlite'}")
    WitnessLog.__table__.create(engine)
    sessions = session_factory(engine)
    key = WitnessKey.create(folder / "keys", name="district.example/witness")
    school = Ed25519PrivateKey.generate()
    with sessions.begin() as session:
        Witness(session, key=key, clock=utcnow).register_log(
            ORIGIN, school.public_key().public_bytes_raw()
        )
    leaves = [leaf_hash(i.to_bytes(8, "big")) for i in range(EVENTS)]
    submissions, previous = [], 0
    for size in range(STEP, EVENTS + 1, STEP):
        note = sign_checkpoint(
            ORIGIN, size, root_from_leaf_hashes(leaves[:size]), school, now=datetime(2026, 1, 1)
        ).note
        submissions.append((previous, consistency_proof(leaves[:size], previous), note))
        previous = size
    start = time.perf_counter()
    for _ in submissions:
        with sessions.begin() as session:
            session.execute(update(WitnessLog).values(cosigned_at=utcnow()))
    baseline = (time.perf_counter() - start) / len(submissions)
    with sessions.begin() as session:
        session.execute(update(WitnessLog).values(cosigned_at=None))
    start = time.perf_counter()
    for old, proof, note in submissions:
        with sessions.begin() as session:
            Witness(session, key=key, clock=utcnow).add_checkpoint(
                ORIGIN, note, old_size=old, proof=proof
            )
    witness = (time.perf_counter() - start) / len(submissions)
    print(
        json.dumps(
            {
                "bench": "witness add-checkpoint, SQLite synchronous=FULL",
                "submissions": len(submissions),
                "ms_each": round(witness * 1000, 2),
                "baseline_row_update_ms": round(baseline * 1000, 2),
                "ratio": round(witness / baseline, 2),
            }
        )
    )
    engine.dispose()


if __name__ == "__main__":
    main()
