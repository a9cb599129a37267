"""Step 9b: the attached files (quotes, invoices) a bundle made with --with-attachments carries.

Each file sits under attachments/<sha256>. Its bytes must hash to that name and to a record that
a signed event binds (name, sha256, size); a file no event binds is foreign; in a bundle made with
attachments, every bound file must be there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .format import ATTACHMENT_NAME, BundleFiles
from .report import Kind, Report


@dataclass
class _Bound:
    size: int | None
    names: set[str] = field(default_factory=set)
    requests: set[str] = field(default_factory=set)
    first_seq: int = 0


@dataclass
class Attachments:
    """The attachment records the signed events bind, then the check of the bundle's files."""

    bound: dict[str, _Bound] = field(default_factory=dict)
    present: dict[str, str] = field(default_factory=dict)  # sha256 -> status

    def bind(self, seq: int, body: Mapping[str, Any]) -> None:
        """Remember the records of one request event (its fields already type-checked)."""
        content = body["data"].get("content") if isinstance(body["data"], Mapping) else None
        records = content.get("attachments") if isinstance(content, Mapping) else None
        for record in records if isinstance(records, list) else ():
            if not isinstance(record, Mapping) or not isinstance(record.get("sha256"), str):
                continue  # NOTE: fields.py refuses such a record; nothing here relies on it
            sha = record["sha256"]
            entry = self.bound.get(sha)
            if entry is None:
                entry = self.bound[sha] = _Bound(record.get("size"), first_seq=seq)
            entry.names.add(str(record["name"]))
            if body["request"]:
                entry.requests.add(body["request"])

    def check(self, files: BundleFiles, *, required: bool, report: Report) -> None:
        """Every attachments/<sha256> member against the bound records; missing ones if required."""
        for name in sorted(files.members):
            match = ATTACHMENT_NAME.fullmatch(name)
            if match is None:
                continue
            declared = match[1]
            actual, size = files.sha256(name)
            entry = self.bound.get(declared)
            if actual != declared:
                self.present[declared] = "changed"
                report.add(
                    entry.first_seq if entry else None,
                    Kind.ATTACHMENT_MISMATCH,
                    f"{name} hashes to {actual}: it is not the file the events signed",
                )
            elif entry is None:
                self.present[declared] = "foreign"
                report.add(None, Kind.ATTACHMENT_FOREIGN, f"{name} is bound by no signed event")
            elif entry.size is not None and entry.size != size:
                self.present[declared] = "changed"
                report.add(
                    entry.first_seq,
                    Kind.ATTACHMENT_MISMATCH,
                    f"{name} is {size} bytes, the signed record says {entry.size}",
                )
            else:
                self.present[declared] = "verified"
        if not required:
            return
        for sha, entry in self.bound.items():
            if sha not in self.present:
                report.add(
                    entry.first_seq,
                    Kind.ATTACHMENT_MISSING,
                    f"attachments/{sha} ({', '.join(sorted(entry.names)):.80}) is bound but not in the bundle",
                    min(entry.requests) if entry.requests else None,
                )

    def listing(self) -> list[dict[str, Any]]:
        """What an inspector sees: each bound file, its names, requests and whether it is here."""
        return [
            {
                "sha256": sha,
                "names": sorted(entry.names),
                "requests": sorted(entry.requests),
                "size": entry.size,
                "status": self.present.get(sha, "absent"),
            }
            for sha, entry in sorted(self.bound.items())
        ]
