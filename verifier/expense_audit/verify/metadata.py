"""Step 9: the unsigned files. manifest.json, keys.json and the definitions map are derived again
from the signed log and the bundle's own members, and must say exactly the same."""

from __future__ import annotations

from typing import Any

from ..canonical import sha256_hex
from ..definitions import BudgetCatalogue, WorkflowDefinition, load_catalogue, load_workflow
from ..errors import WorkflowError
from .format import BUNDLE_FORMAT, BUNDLE_VERSION, DEFINITION_NAME, BundleFiles
from .keys import Keyring
from .report import BundleUnreadable, Kind, Report

MANIFEST_FIELDS = frozenset(
    {
        "format",
        "version",
        "origin",
        "institution",
        "event_count",
        "head_hash",
        "exported_at",
        "definitions",
    }
)
# Present only in some bundles: a delta export names the size it starts after; a bundle made
# with --with-attachments says so (then every bound file must be in it).
OPTIONAL_FIELDS = frozenset({"since", "with_attachments"})


def read_manifest(files: BundleFiles) -> dict[str, Any]:
    """manifest.json, with just enough checked to know this is a bundle we can read."""
    manifest = files.json("manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleUnreadable("manifest.json does not describe an expense audit bundle")
    if manifest.get("version") != BUNDLE_VERSION or type(manifest.get("version")) is not int:
        raise BundleUnreadable(f"unsupported bundle version {manifest.get('version')!r:.40}")
    return manifest


def delta_start(manifest: dict[str, Any]) -> int | None:
    """The size a delta bundle starts after (None for a whole log)."""
    since = manifest.get("since")
    if since is None:
        return None
    if type(since) is not int or since < 1:
        raise BundleUnreadable(f"manifest since {since!r:.40} is not a log size")
    return since


def read_definitions(
    files: BundleFiles, report: Report
) -> tuple[dict[str, WorkflowDefinition], dict[str, BudgetCatalogue], dict[str, str]]:
    """Definition files by their content hash; a file filed under another hash is a problem."""
    workflows: dict[str, WorkflowDefinition] = {}
    catalogues: dict[str, BudgetCatalogue] = {}
    listed: dict[str, str] = {}
    for name in sorted(files.members):
        match = DEFINITION_NAME.fullmatch(name)
        if match is None:
            continue
        declared, path = match[1], match[2]
        data = files.read(name)
        listed[declared] = path
        if sha256_hex(data) != declared:
            report.add(
                None,
                Kind.DEFINITION_MISMATCH,
                f"{name} has sha256 {sha256_hex(data)}, filed as {declared}",
            )
            continue
        try:
            if path.startswith("budgets/"):
                catalogue = load_catalogue(data, name)
                catalogues[catalogue.sha256] = catalogue
            else:
                workflow = load_workflow(data, name)
                workflows[workflow.sha256] = workflow
        except WorkflowError as exc:
            report.add(None, Kind.DEFINITION_INVALID, f"{name}: {exc.message}")
        except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as exc:
            report.add(None, Kind.DEFINITION_INVALID, f"{name}: {exc!r:.200}")
    return workflows, catalogues, listed


def check_manifest(
    manifest: dict[str, Any],
    *,
    origin: str,
    keyring: Keyring,
    event_count: int,
    head_hash: str,
    definitions: dict[str, str],
    report: Report,
) -> None:
    """Every manifest field equals what the log and the members imply."""
    expected: dict[str, Any] = {
        "origin": origin,
        "institution": {
            "key_id": keyring.institution_key,
            "fingerprint": keyring.fingerprint,
        },
        "event_count": event_count,
        "head_hash": head_hash,
        "definitions": definitions,
    }
    fields = set(manifest) - OPTIONAL_FIELDS
    if fields != MANIFEST_FIELDS:
        report.add(
            None,
            Kind.MANIFEST_MISMATCH,
            f"manifest fields: missing {sorted(MANIFEST_FIELDS - fields)}, unexpected {sorted(fields - MANIFEST_FIELDS):.200}",
        )
    if "with_attachments" in manifest and manifest["with_attachments"] is not True:
        report.add(None, Kind.MANIFEST_MISMATCH, "manifest with_attachments is not true")
    for name, value in expected.items():
        if manifest.get(name) != value or type(manifest.get(name)) is not type(value):
            report.add(
                None,
                Kind.MANIFEST_MISMATCH,
                f"manifest says {name} {manifest.get(name)!r:.120}, the bundle implies {value!r:.120}",
            )
    exported_at = manifest.get("exported_at")
    if not isinstance(exported_at, str):
        report.add(None, Kind.MANIFEST_MISMATCH, "manifest exported_at is not a time")


def check_keys_file(keys: Any, keyring: Keyring, report: Report) -> None:
    """keys.json must list exactly the keys the log registered, with their real history."""
    expected = keyring.keys_file()
    if keys == expected and _same_types(keys, expected):
        return
    if not isinstance(keys, list):
        report.add(None, Kind.KEYS_MISMATCH, "keys.json is not a list of keys")
        return
    by_id = {entry["key_id"]: entry for entry in expected}
    before = len(report.problems)
    for index, entry in enumerate(keys):
        kid = entry.get("key_id") if isinstance(entry, dict) else None
        if not isinstance(kid, str) or by_id.get(kid) != entry:
            report.add(
                None,
                Kind.KEYS_MISMATCH,
                f"keys.json entry {index} ({kid!r:.40}) differs from the log's registration of that key",
            )
    listed = {e.get("key_id") for e in keys if isinstance(e, dict)}
    for kid in by_id:
        if kid not in listed:
            report.add(
                None, Kind.KEYS_MISMATCH, f"keys.json omits key {kid} that the log registered"
            )
    if len(report.problems) == before:
        report.add(
            None, Kind.KEYS_MISMATCH, "keys.json lists the log's keys in another order or form"
        )


def _same_types(a: Any, b: Any) -> bool:
    # NOTE: JSON equality in Python treats true == 1; the file must use the same types as the log.
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return all(_same_types(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return all(_same_types(x, y) for x, y in zip(a, b, strict=True))
    return True
