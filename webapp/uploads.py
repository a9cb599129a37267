"""Attachments: type sniffed from the content (not the name), size-limited, stored by sha256."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Any

from flask import Flask, current_app, g
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import event, select

from workflow.bundle import attachment_path
from workflow.models import Draft, Request

from .context import db

ALLOWED = {"image/jpeg", "image/png", "image/heic", "image/webp", "application/pdf"}
HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}


class UploadRefused(ValueError):
    """An upload was refused; the message is shown to the user."""


def sniff(head: bytes) -> str | None:
    """The real type of a file from its first bytes."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head[4:8] == b"ftyp" and head[8:12] in HEIC_BRANDS:
        return "image/heic"
    return None


def storage_dir() -> Path:
    folder = Path(
        current_app.config.get("ATTACHMENTS_DIR") or Path(current_app.instance_path) / "attachments"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def path_for(sha256: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise UploadRefused("bad id")
    return attachment_path(storage_dir(), sha256)


def clean_name(name: str) -> str:
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[\x00-\x1f\x7f\"<>|:*?]", "", base).strip(" .") or "tep-dinh-kem"
    return base[-100:]


def stored_bytes(login: str) -> int:
    """What a person's drafts and requests hold in attachments (each file counted once)."""
    sizes: dict[str, int] = {}
    for query in (
        select(Draft.attachments).where(Draft.owner == login),
        select(Request.attachments).where(Request.owner == login),
    ):
        for attachments in db().scalars(query):
            for record in attachments or []:
                sizes[str(record.get("sha256"))] = int(record.get("size") or 0)
    return sum(sizes.values())


def store(stream: IO[bytes], filename: str, *, limit: int) -> dict[str, Any]:
    """Read, check and store one upload; return the record bound into the request.

    A file written here is removed again at the end of the request unless the request's
    database session committed (the draft that names it was saved): see ``register``.
    """
    data = stream.read(limit + 1)
    if not data:
        raise UploadRefused("empty")
    if len(data) > limit:
        raise UploadRefused("too_large")
    kind = sniff(data[:32])
    if kind not in ALLOWED:
        raise UploadRefused("type")
    quota = int(current_app.config["UPLOAD_QUOTA_MB"]) * 1024 * 1024
    pending = g.setdefault("upload_bytes", stored_bytes(current_user.login))
    if pending + len(data) > quota:
        raise UploadRefused(
            _(
                "The file %(name)s would take your attachments over your quota of %(mb)s MB: "
                "remove attachments you no longer need from your drafts.",
                name=filename,
                mb=current_app.config["UPLOAD_QUOTA_MB"],
            )
        )
    g.upload_bytes = pending + len(data)
    digest = hashlib.sha256(data).hexdigest()
    target = path_for(digest)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
        _track(target)
    return {"name": clean_name(filename), "sha256": digest, "size": len(data), "type": kind}


def _track(path: Path) -> None:
    if "new_uploads" not in g:
        g.new_uploads = []
        session = db()

        def committed(_: object) -> None:
            g.uploads_kept = True

        event.listen(session, "after_commit", committed)
    g.new_uploads.append(path)


def register(app: Flask) -> None:
    """Remove files written by a request whose draft was not saved (a refused or failed save)."""

    @app.teardown_request
    def discard_unsaved_uploads(error: BaseException | None) -> None:
        if g.get("uploads_kept") and error is None:
            return
        # NOTE: content-addressed: a file is only removed by the request that first wrote it.
        for path in g.pop("new_uploads", []):
            path.unlink(missing_ok=True)


def temporary_path(suffix: str) -> Path:
    """A fresh temporary file for a download built on disk (removed after the response)."""
    fd, name = tempfile.mkstemp(suffix=suffix)
    os.close(fd)
    return Path(name)
