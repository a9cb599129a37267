"""The bundle layout, shared by the writer (workflow/bundle.py) and the verifier.

One owner of member names, size caps and the exact line form. Anything outside the layout makes
the bundle unreadable (exit 2): a hostile zip is refused before a byte of it is trusted.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .report import BundleUnreadable

BUNDLE_FORMAT = "expense-audit-bundle"
BUNDLE_VERSION = 1

MANIFEST = "manifest.json"
EVENTS = "events.jsonl"
KEYS = "keys.json"
CHECKPOINTS = "checkpoints.jsonl"
DEFINITIONS_DIR = "definitions/"
ATTACHMENTS_DIR = "attachments/"

MiB = 1024 * 1024
# NOTE: caps are checked on the zip's declared sizes before a member is opened, and every read is
# bounded again (a declared size can lie), so memory stays bounded whatever the bundle holds.
MAX_MANIFEST = 1 * MiB
MAX_KEYS = 16 * MiB
MAX_CHECKPOINTS = 16 * MiB
MAX_DEFINITION = 1 * MiB
MAX_ATTACHMENT = 32 * MiB
MAX_LINE = 1 * MiB  # one events.jsonl line, newline included
MAX_MEMBERS = 100_000

_HEX64 = "[0-9a-f]{64}"
_PATH_PART = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
DEFINITION_NAME = re.compile(rf"definitions/({_HEX64})/((?:{_PATH_PART}/)*{_PATH_PART}\.toml)")
ATTACHMENT_NAME = re.compile(rf"attachments/({_HEX64})")
SIGNED_FORMS_DIR = "signed-forms/"  # the PAdES-signed forms (form.sign), by sha256
SIGNED_FORM_NAME = re.compile(rf"signed-forms/({_HEX64})\.pdf")
MAX_SIGNED_FORM = 16 * MiB

# A line is exactly JCS({"body": B, "hash": H, "sig": S}) for a canonical v1 body B, or
# JCS({"body": B, "hash": H}) for a v2 body (its signature sits inside the body): the keys sort
# as body < hash < sig, hex is lower case, and nothing follows the closing brace but "\n".
LINE_HEAD = b'{"body":'
_LINE_TAIL = re.compile(rb',"hash":"([0-9a-f]{64})","sig":"([0-9a-f]{128})"\}')
_TAIL_LEN = 9 + 64 + 9 + 128 + 2
_LINE_TAIL_V2 = re.compile(rb',"hash":"([0-9a-f]{64})"\}')
_TAIL_LEN_V2 = 9 + 64 + 2


def event_line(body: bytes, hash_hex: str, sig: bytes) -> bytes:
    """One events.jsonl line (newline included), embedding the exact signed body bytes.

    An empty ``sig`` writes the v2 form ``{"body","hash"}``.
    """
    if not sig:
        return LINE_HEAD + body + b',"hash":"' + hash_hex.encode() + b'"}\n'
    return (
        LINE_HEAD
        + body
        + b',"hash":"'
        + hash_hex.encode()
        + b'","sig":"'
        + sig.hex().encode()
        + b'"}\n'
    )


class LineNotCanonical(ValueError):
    """A line outside the one layout the writer produces."""


def split_line(line: bytes) -> tuple[bytes, str, bytes]:
    """(exact body bytes, hash hex, signature) of a line without its newline; never re-serializes.

    A v2 line (no "sig") gives an empty signature, so the Merkle leaf input hash || sig is the
    hash alone. Whether the body bytes are themselves canonical JCS is decided by the caller on those bytes.
    """
    if len(line) <= len(LINE_HEAD) + _TAIL_LEN_V2 or not line.startswith(LINE_HEAD):
        raise LineNotCanonical("line does not start with the body")
    match = _LINE_TAIL.fullmatch(line, max(0, len(line) - _TAIL_LEN))
    if match is not None and len(line) > len(LINE_HEAD) + _TAIL_LEN:
        body = line[len(LINE_HEAD) : -_TAIL_LEN]
        return body, match[1].decode(), bytes.fromhex(match[2].decode())
    v2 = _LINE_TAIL_V2.fullmatch(line, len(line) - _TAIL_LEN_V2)
    if v2 is None:
        raise LineNotCanonical(
            'line does not end with ,"hash":"<64 hex>","sig":"<128 hex>"} or ,"hash":"<64 hex>"}'
        )
    return line[len(LINE_HEAD) : -_TAIL_LEN_V2], v2[1].decode(), b""


def check_member_name(name: str) -> None:
    """Refuse a member name outside the layout (absolute, '..', backslashes, unknown)."""
    if name in (MANIFEST, EVENTS, KEYS, CHECKPOINTS):
        return
    if DEFINITION_NAME.fullmatch(name) or ATTACHMENT_NAME.fullmatch(name):
        return
    if SIGNED_FORM_NAME.fullmatch(name):
        return
    raise BundleUnreadable(f"member {name!r} is not part of the bundle format")


def _cap_for(name: str) -> int | None:
    if name == MANIFEST:
        return MAX_MANIFEST
    if name == KEYS:
        return MAX_KEYS
    if name == CHECKPOINTS:
        return MAX_CHECKPOINTS
    if name.startswith(DEFINITIONS_DIR):
        return MAX_DEFINITION
    if name.startswith(ATTACHMENTS_DIR):
        return MAX_ATTACHMENT
    if name.startswith(SIGNED_FORMS_DIR):
        return MAX_SIGNED_FORM
    return None  # events.jsonl: streamed, each line capped


@dataclass
class BundleFiles:
    """A zip whose layout checked out: members by name, small ones read under their caps."""

    archive: zipfile.ZipFile
    members: dict[str, zipfile.ZipInfo]

    def read(self, name: str) -> bytes:
        """A member's bytes, at most its cap (checked on the declared size, then on the read)."""
        info = self.members[name]
        cap = _cap_for(name)
        if cap is None:  # NOTE: open_bundle admits only named members, each with a cap
            raise BundleUnreadable(f"{name} is not a member of the bundle format")
        if info.file_size > cap:
            raise BundleUnreadable(f"{name} is {info.file_size} bytes, more than the {cap} allowed")
        try:
            with self.archive.open(info) as handle:
                data = handle.read(cap + 1)
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
            raise BundleUnreadable(f"{name} unreadable: {exc}") from None
        if len(data) > cap:
            raise BundleUnreadable(f"{name} is larger than the {cap} bytes allowed")
        return data

    def sha256(self, name: str) -> tuple[str, int]:
        """(sha256 hex, size) of a member, streamed under its cap (attachments can be large)."""
        info = self.members[name]
        cap = _cap_for(name)
        if cap is None or info.file_size > cap:
            raise BundleUnreadable(f"{name} is {info.file_size} bytes, more than {cap} allowed")
        digest, size = hashlib.sha256(), 0
        try:
            with self.archive.open(info) as handle:
                while chunk := handle.read(1 << 20):
                    size += len(chunk)
                    if size > cap:
                        raise BundleUnreadable(f"{name} is larger than the {cap} bytes allowed")
                    digest.update(chunk)
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
            raise BundleUnreadable(f"{name} unreadable: {exc}") from None
        return digest.hexdigest(), size

    def json(self, name: str) -> Any:
        """A JSON member (duplicate object keys refused)."""
        try:
            return json.loads(self.read(name), object_pairs_hook=_no_duplicates)
        except (ValueError, RecursionError) as exc:
            raise BundleUnreadable(f"{name} is not JSON: {exc}") from None

    def lines(self) -> Iterator[bytes]:
        """events.jsonl line by line, each without its newline; a line over the cap is refused."""
        with self.archive.open(self.members[EVENTS]) as handle:
            yield from iter_lines(handle)


def iter_lines(handle: IO[bytes]) -> Iterator[bytes]:
    """Lines of a stream, each at most MAX_LINE bytes; the last one must end with a newline too."""
    while True:
        raw = handle.readline(MAX_LINE + 1)
        if not raw:
            return
        if not raw.endswith(b"\n"):
            if len(raw) > MAX_LINE:
                raise BundleUnreadable(f"an events.jsonl line is longer than {MAX_LINE} bytes")
            raise BundleUnreadable("events.jsonl does not end with a newline")
        yield raw[:-1]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r} appears twice")
        result[key] = value
    return result


def open_bundle(path: str | Path) -> BundleFiles:
    """Open the zip and check its layout: known names only, each once, the required ones there."""
    try:
        archive = zipfile.ZipFile(path)
        infos = archive.infolist()
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise BundleUnreadable(f"cannot read bundle {path}: {exc}") from None
    try:
        return BundleFiles(archive, _checked_members(infos))
    except BundleUnreadable:
        archive.close()
        raise


def _checked_members(infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    if len(infos) > MAX_MEMBERS:
        raise BundleUnreadable(f"the bundle holds {len(infos)} members, more than {MAX_MEMBERS}")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        # NOTE: zipfile normalizes some names (backslashes, leading slashes) in ZipInfo; the raw
        # name is what another unzip tool would use, so it is the one checked.
        raw_name = getattr(info, "orig_filename", info.filename)
        if raw_name != info.filename:
            raise BundleUnreadable(f"member name {raw_name!r} is not a plain relative path")
        check_member_name(info.filename)
        if info.filename in members:
            raise BundleUnreadable(f"member {info.filename!r} appears twice")
        if info.flag_bits & 0x1:
            raise BundleUnreadable(f"member {info.filename!r} is encrypted")
        members[info.filename] = info
    for required in (MANIFEST, EVENTS, KEYS, CHECKPOINTS):
        if required not in members:
            raise BundleUnreadable(f"{required} is missing")
    return members
