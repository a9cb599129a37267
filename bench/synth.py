"""Build large, valid audit bundles quickly (no database): the real definitions, real guards,
real Ed25519 signatures, deterministic so a bundle of N events is a prefix of one of N + M."""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from expense_audit.canonical import (
    GENESIS_PREV,
    canonical_json,
    event_hash,
    key_fingerprint,
    key_id,
    signing_message,
)
from expense_audit.checkpoint import sign_checkpoint
from expense_audit.definitions import DefinitionSet
from expense_audit.merkle import leaf_hash, root_from_leaf_hashes
from workflow.runtime import PROJECT_ROOT

ORIGIN = "th-bench.edu.vn/expenses"
PEOPLE = {
    "hanh": ["proposer"],
    "nga": ["proposer"],
    "long": ["reviewer", "proposer"],
    "toan": ["approver", "proposer"],
    "mai": ["accountant"],
}


def _key(name: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"bench-{name}".encode()).digest())


class Log:
    """Appends correctly chained, signed events."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.leaves: list[bytes] = []
        self.prev = GENESIS_PREV
        self.seq = 0
        self.clock = datetime(2024, 9, 9, 1, 0)

    def append(self, signer: Ed25519PrivateKey, **fields: Any) -> None:
        self.seq += 1
        self.clock += timedelta(seconds=37)
        public = signer.public_key().public_bytes_raw()
        body = {
            "v": 1,
            "origin": ORIGIN,
            "seq": self.seq,
            "prev": self.prev,
            "ts": self.clock.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "request": None,
            "from": None,
            "to": None,
            "definition": None,
            "data": {},
            "comment": None,
            "key": key_id(public),
            **fields,
        }
        raw = canonical_json(body)
        digest, sig = event_hash(raw), signer.sign(signing_message(raw))
        self.lines.append(
            b'{"body":'
            + raw
            + b',"hash":"'
            + digest.encode()
            + b'","sig":"'
            + sig.hex().encode()
            + b'"}\n'
        )
        self.leaves.append(leaf_hash(bytes.fromhex(digest) + sig))
        self.prev = digest


def events(total: int) -> Log:
    """A log of exactly ``total`` events: set-up, then requests along every path of the chain."""
    definitions = DefinitionSet.from_directory(PROJECT_ROOT / "definitions")
    workflow = definitions.workflow().sha256
    budget = definitions.catalogue("2024-2025").sha256
    institution = _key("institution")
    log = Log()
    inst = {"actor": "institution", "role": "institution"}
    log.append(
        institution,
        action="log.init",
        data={
            "institution_key": institution.public_key().public_bytes_raw().hex(),
            "fingerprint": key_fingerprint(institution.public_key().public_bytes_raw()),
        },
        **inst,
    )
    keys = {}
    for login, roles in PEOPLE.items():
        keys[login] = _key(login)
        public = keys[login].public_key().public_bytes_raw()
        log.append(institution, action="user.roles", data={"login": login, "roles": roles}, **inst)
        log.append(
            institution,
            action="key.register",
            data={"key_id": key_id(public), "public_key": public.hex(), "owner": login},
            **inst,
        )
    budget_left = 81_000_000
    number = 0
    while log.seq < total:
        number += 1
        request = f"2024-2025/{number:06d}"
        owner = "hanh" if number % 2 else "nga"
        content = {
            "title": f"Sổ liên lạc điện tử EnetViet đợt {number}",
            "description": "Theo kế hoạch.",
            "line": "ENETVIET",
            "source": "THU-DL",
            "budget_year": log.clock.year,
            "quantity": 1,
            "unit_price_vnd": 15_000,
            "amount_vnd": 15_000,
            "attachments": [
                {"name": "bao-gia.pdf", "sha256": hashlib.sha256(request.encode()).hexdigest()}
            ],
        }
        data = {"content": content, "budget": budget}
        common = {"request": request, "definition": workflow, "data": data}
        pattern = number % 4 if budget_left >= 15_000 else 2 + number % 2  # no forward once spent
        steps: list[tuple[str, str, str, str, str | None]] = [
            ("submit", owner, "proposer", "draft", "submitted", None)
        ]  # type: ignore[list-item]
        if pattern == 0:
            steps += [
                ("forward", "long", "reviewer", "submitted", "forwarded", "Hợp lý."),
                ("approve", "toan", "approver", "forwarded", "approved", None),
                ("pay", "mai", "accountant", "approved", "paid", None),
            ]
            budget_left -= 15_000
        elif pattern == 1:
            steps += [
                ("forward", "long", "reviewer", "submitted", "forwarded", "Hợp lý."),
                ("reject", "toan", "approver", "forwarded", "rejected", "Chưa cần."),
            ]
        elif pattern == 2:
            steps += [
                ("return", "long", "reviewer", "submitted", "returned", "Thiếu báo giá thứ hai."),
                ("submit", owner, "proposer", "returned", "submitted", None),
                ("withdraw", owner, "proposer", "submitted", "withdrawn", "Không cần nữa."),
            ]
        else:
            steps += [("reject", "long", "reviewer", "submitted", "rejected", "Không hợp lý.")]
        for action, actor, role, source, dest, comment in steps:  # type: ignore[misc]
            if log.seq >= total:
                break
            step_data = data
            if action == "pay":
                step_data = {
                    **data,
                    "payment": {
                        "voucher": f"PC-{number}",
                        "paid_on": log.clock.date().isoformat(),
                        "amount_paid_vnd": 15_000,
                    },
                }
            log.append(
                keys[actor],
                action=action,
                actor=actor,
                role=role,
                **{"from": source, "to": dest},
                comment=comment,
                **{**common, "data": step_data},
            )
    return log


def _keys_file(lines: list[bytes]) -> list[dict[str, Any]]:
    """keys.json as the log implies it (institution events only)."""
    keys: list[dict[str, Any]] = []
    for line in lines:
        if b'"actor":"institution"' not in line:
            continue
        body = json.loads(line)["body"]
        data = body["data"]
        if body["action"] == "log.init":
            keys.append(
                {
                    "key_id": body["key"],
                    "owner": "institution",
                    "public_key": data["institution_key"],
                    "fingerprint": data["fingerprint"],
                    "registered_seq": 1,
                    "revoked_seq": None,
                }
            )
        elif body["action"] == "key.register":
            keys.append(
                {
                    "key_id": data["key_id"],
                    "owner": data["owner"],
                    "public_key": data["public_key"],
                    "registered_seq": body["seq"],
                    "revoked_seq": None,
                }
            )
    return keys


def _time_of(line: bytes) -> datetime:
    return datetime.strptime(json.loads(line)["body"]["ts"], "%Y-%m-%dT%H:%M:%SZ")


def write_bundle(log: Log, path: Path, *, size: int | None = None) -> Path:
    """Write the first ``size`` events (all by default) as an audit bundle with a final checkpoint."""
    size = len(log.lines) if size is None else size
    institution = _key("institution")
    public = institution.public_key().public_bytes_raw()
    checkpoint = sign_checkpoint(
        ORIGIN,
        size,
        root_from_leaf_hashes(log.leaves[:size]),
        institution,
        now=_time_of(log.lines[size - 1]),
    )
    definitions = DefinitionSet.from_directory(PROJECT_ROOT / "definitions")
    head = json.loads(log.lines[size - 1])["hash"]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        with bundle.open("events.jsonl", "w", force_zip64=True) as out:
            for line in log.lines[:size]:
                out.write(line)
        bundle.writestr(
            "checkpoints.jsonl",
            json.dumps({"size": size, "root": checkpoint.root_hex, "note": checkpoint.note}) + "\n",
        )
        bundle.writestr("keys.json", json.dumps(_keys_file(log.lines[:size])))
        for sha, rel in definitions.paths.items():
            bundle.writestr(f"definitions/{sha}/{rel}", definitions.files[sha])
        bundle.writestr(
            "manifest.json",
            json.dumps(
                {
                    "format": "expense-audit-bundle",
                    "version": 1,
                    "origin": ORIGIN,
                    "institution": {
                        "key_id": key_id(public),
                        "fingerprint": key_fingerprint(public),
                    },
                    "event_count": size,
                    "head_hash": head,
                    "exported_at": _time_of(log.lines[size - 1]).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "definitions": dict(definitions.paths),
                }
            ),
        )
    return path


def checkpoint_note(log: Log, size: int) -> str:
    institution = _key("institution")
    return sign_checkpoint(
        ORIGIN,
        size,
        root_from_leaf_hashes(log.leaves[:size]),
        institution,
        now=_time_of(log.lines[size - 1]),
    ).note
