"""Translation catalogs: the .po files are the source; .mo files are compiled at start-up into a
writable folder (never into the package, which may be installed read-only, and never committed)."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

SOURCES = Path(__file__).resolve().parent / "translations"


def compile_catalogs(instance_path: str) -> Path:
    """Compile every messages.po; return the folder to give Flask-Babel."""
    for base in (Path(instance_path) / "translations", _temporary_folder()):
        try:
            _compile_into(base)
        except OSError:
            continue
        return base
    raise RuntimeError("no writable folder for the compiled translations")


def _temporary_folder() -> Path:
    tag = hashlib.sha256(str(SOURCES).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"expenses-translations-{tag}"


def _compile_into(base: Path) -> None:
    for po_path in SOURCES.glob("*/LC_MESSAGES/messages.po"):
        mo_path = base / po_path.relative_to(SOURCES).with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        with po_path.open("rb") as handle:
            catalog = read_po(handle)
        tmp = mo_path.with_suffix(f".{id(catalog)}.tmp")
        with tmp.open("wb") as handle:
            write_mo(handle, catalog)
        tmp.replace(mo_path)
