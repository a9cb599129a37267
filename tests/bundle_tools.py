"""Helpers that take an exported bundle apart and put a tampered one together again."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from expense_audit.canonical import canonical_json, event_hash, signing_message
from expense_audit.checkpoint import sign_checkpoint
from expense_audit.merkle import leaf_hash, root_from_leaf_hashes
from workflow.keys import InstitutionKey, Signer


@dataclass
class Bundle:
    files: dict[str, bytes]
    lines: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> Bundle:
        with zipfile.ZipFile(path) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
        lines = [json.loads(line) for line in files["events.jsonl"].decode().splitlines()]
        return cls(files, lines)

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads(self.files["manifest.json"])

    def write(self, path: Path, *, raw_lines: list[bytes] | None = None) -> Path:
        files = dict(self.files)
        if raw_lines is None:
            # A v1 line carries its signature; a v2 line is {body, hash} (the body holds it).
            raw_lines = [
                b'{"body":'
                + canonical_json(line["body"])
                + b',"hash":"'
                + line["hash"].encode()
                + (b'","sig":"' + line["sig"].encode() if "sig" in line else b"")
                + b'"}'
                for line in self.lines
            ]
        files["events.jsonl"] = b"\n".join(raw_lines) + b"\n"
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in files.items():
                archive.writestr(name, data)
        return path

    def v1_index(self, start: int = 1) -> int:
        """The index of the first v1 line (one with a comment field) from ``start`` on."""
        return next(i for i in range(start, len(self.lines)) if "comment" in self.lines[i]["body"])

    def seq_of(self, action: str, request: str | None = None) -> int:
        for line in self.lines:
            body = line["body"]
            if body["action"] == action and (request is None or body["request"] == request):
                return int(body["seq"])
        raise LookupError(action)

    def append_signed(self, body_fields: dict[str, Any], signer: Signer) -> int:
        """Append a correctly chained, correctly signed event (what a rogue insider could do)."""
        last = self.lines[-1]
        body = {
            **last["body"],
            "seq": last["body"]["seq"] + 1,
            "prev": last["hash"],
            "key": signer.key_id,
            "comment": None,
            **body_fields,
        }
        data = canonical_json(body)
        self.lines.append(
            {
                "body": body,
                "hash": event_hash(data),
                "sig": signer.sign(signing_message(data)).hex(),
            }
        )
        return int(body["seq"])

    def reseal(self, institution: InstitutionKey, *, keep_old_checkpoints: bool = True) -> None:
        """Re-sign a final checkpoint and manifest over the current lines (an insider with the key)."""
        leaves = [
            leaf_hash(bytes.fromhex(line["hash"]) + bytes.fromhex(line.get("sig", "")))
            for line in self.lines
        ]
        origin = self.manifest["origin"]
        checkpoint = sign_checkpoint(
            origin,
            len(leaves),
            root_from_leaf_hashes(leaves),
            institution.private,
            now=datetime.strptime(
                max(line["body"]["ts"] for line in self.lines), "%Y-%m-%dT%H:%M:%SZ"
            ),
        )
        old = self.files["checkpoints.jsonl"].decode() if keep_old_checkpoints else ""
        self.files["checkpoints.jsonl"] = (
            old
            + json.dumps(
                {"size": checkpoint.size, "root": checkpoint.root_hex, "note": checkpoint.note}
            )
            + "\n"
        ).encode()
        manifest = self.manifest
        manifest.update(event_count=len(self.lines), head_hash=self.lines[-1]["hash"])
        self.files["manifest.json"] = json.dumps(manifest).encode()
