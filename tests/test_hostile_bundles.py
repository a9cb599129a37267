"""A hostile bundle: the school is the party audited and controls every byte it hands over.

Each test is named after the attack it refuses (issue 10)."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from expense_audit.checkpoint import sign_checkpoint
from expense_audit.merkle import leaf_hash, root_from_leaf_hashes
from expense_audit.verify import (
    EXIT_NOT_TRUSTED,
    BundleUnreadable,
    PinInvalid,
    Report,
    verify_bundle,
)
from workflow.bundle import export_bundle

from .bundle_tools import Bundle, fields
from .factories import School, pay_data


@pytest.fixture
def exported(school: School, tmp_path: Path) -> Path:
    paid = school.to_state("approved")
    school.act(paid, "pay", "mai", data=pay_data())
    school.to_state("submitted", line="SW-IMAS", amount="1.800.000")
    path = tmp_path / "bundle.zip"
    with school.runtime.transaction() as session:
        export_bundle(
            session, path, institution=school.runtime.institution, now=school.runtime.now()
        )
    return path


def _kinds(report: Report) -> set[str]:
    return {p.kind for p in report.problems}


def _raw_lines(path: Path) -> list[bytes]:
    with zipfile.ZipFile(path) as archive:
        return archive.read("events.jsonl").split(b"\n")[:-1]


def _with_files(path: Path, target: Path, **changes: bytes | None) -> Path:
    """A copy of the bundle with members replaced (None drops one)."""
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    for name, data in changes.items():
        name = name.replace("__", "/").replace("_dot_", ".")
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return target


def _with_lines(path: Path, target: Path, lines: list[bytes]) -> Path:
    return _with_files(path, target, events_dot_jsonl=b"\n".join(lines) + b"\n")


def _submit_index(lines: list[bytes]) -> int:
    return next(i for i, line in enumerate(lines) if b'"action":"submit"' in line)


# --- pins -----------------------------------------------------------------------------------


def test_fingerprint_prefix_pin_is_refused(exported: Path, school: School) -> None:
    with pytest.raises(PinInvalid, match="full 64-hex"):
        verify_bundle(exported, institution_key=school.runtime.institution.fingerprint[:3])


def test_pin_of_another_key_is_a_mismatch(exported: Path) -> None:
    report = verify_bundle(exported, institution_key="0b0" + "0" * 61)
    assert "institution-key-mismatch" in _kinds(report)


def test_unpinned_run_says_not_verified_and_exits_3(exported: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "expense_audit.verify", str(exported), "--json"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == EXIT_NOT_TRUSTED, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert result["valid"] is True and result["trusted"] is False
    assert "NOT VERIFIED AGAINST A TRUSTED KEY" in result["headline"]
    text = subprocess.run(
        [sys.executable, "-m", "expense_audit.verify", str(exported)],
        capture_output=True,
        text=True,
    )
    assert "NOT VERIFIED AGAINST A TRUSTED KEY" in text.stdout.splitlines()[-1]


# --- byte-exact canonical lines ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("attack", "old", "new"),
    [
        ("duplicate_amount_key", b'"amount_vnd":', b'"amount_vnd":90450000,"amount_vnd":'),
        ("unicode_escape", b'"action":"submit"', b'"action":"\\u0073ubmit"'),
        ("escaped_slash", b'"request":"2024-2025/', b'"request":"2024-2025\\/'),
        ("float_amount", b'"quantity":1,', b'"quantity":1.0,'),
        ("exponent", b'"quantity":1,', b'"quantity":1e0,'),
        ("space_after_colon", b'"action":"submit"', b'"action": "submit"'),
    ],
)
def test_non_canonical_body_is_refused_not_reserialized(
    exported: Path, tmp_path: Path, attack: str, old: bytes, new: bytes
) -> None:
    lines = _raw_lines(exported)
    index = _submit_index(lines)
    assert old in lines[index], attack
    lines[index] = lines[index].replace(old, new, 1)
    report = verify_bundle(_with_lines(exported, tmp_path / "t.zip", lines))
    assert (index + 1, "non-canonical") in {(p.seq, p.kind) for p in report.problems}


@pytest.mark.parametrize("junk", [b'"]', b" ", b',"x":1}', b"\r"])
def test_trailing_junk_after_a_line_is_non_canonical(
    exported: Path, tmp_path: Path, junk: bytes
) -> None:
    lines = _raw_lines(exported)
    lines[2] += junk
    report = verify_bundle(_with_lines(exported, tmp_path / "t.zip", lines))
    assert (3, "non-canonical") in {(p.seq, p.kind) for p in report.problems}


def test_upper_case_hex_hash_is_non_canonical(exported: Path, tmp_path: Path) -> None:
    lines = _raw_lines(exported)
    cut = lines[2].index(b',"hash":"') + 9
    lines[2] = lines[2][:cut] + lines[2][cut : cut + 64].upper() + lines[2][cut + 64 :]
    report = verify_bundle(_with_lines(exported, tmp_path / "t.zip", lines))
    assert (3, "non-canonical") in {(p.seq, p.kind) for p in report.problems}


# --- zip tricks ----------------------------------------------------------------------------------


def _zip(target: Path, members: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(target, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name we add on purpose
        for name, data in members:
            archive.writestr(name, data)
    return target


def _members(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        return [(name, archive.read(name)) for name in archive.namelist()]


def test_second_events_member_is_refused(exported: Path, tmp_path: Path) -> None:
    members = _members(exported)
    events = dict(members)["events.jsonl"]
    forged = events.split(b"\n")[0] + b"\n"
    bundle = _zip(tmp_path / "t.zip", [("events.jsonl", forged), *members])
    with pytest.raises(BundleUnreadable, match="appears twice"):
        verify_bundle(bundle)


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "definitions/../manifest.json", "notes.txt"])
def test_member_outside_the_layout_is_refused(exported: Path, tmp_path: Path, name: str) -> None:
    bundle = _zip(tmp_path / "t.zip", [*_members(exported), (name, b"x")])
    with pytest.raises(BundleUnreadable, match="not part of the bundle format"):
        verify_bundle(bundle)


def test_bundle_without_keys_json_is_refused(exported: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleUnreadable, match="keys.json is missing"):
        verify_bundle(_with_files(exported, tmp_path / "t.zip", keys_dot_json=None))


def _peak_while(call: object) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(BundleUnreadable):
            call()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_64_mib_line_is_refused_in_bounded_memory(exported: Path, tmp_path: Path) -> None:
    target = tmp_path / "t.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in _members(exported):
            if name == "events.jsonl":
                with archive.open(name, "w", force_zip64=True) as out:
                    out.write(data)
                    for _ in range(64):
                        out.write(b"7" * (1 << 20))
                    out.write(b"\n")
            else:
                archive.writestr(name, data)
    assert _peak_while(lambda: verify_bundle(target)) < 16 << 20


def test_manifest_padded_with_64_mib_of_spaces_is_refused_before_reading(
    exported: Path, tmp_path: Path
) -> None:
    manifest = dict(_members(exported))["manifest.json"]
    target = tmp_path / "t.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in _members(exported):
            archive.writestr(
                name, data if name != "manifest.json" else manifest + b" " * (64 << 20)
            )
    assert _peak_while(lambda: verify_bundle(target)) < 16 << 20


# --- unsigned metadata ---------------------------------------------------------------------------


def test_manifest_naming_another_institution_is_reported(exported: Path, tmp_path: Path) -> None:
    manifest = Bundle.read(exported).manifest
    manifest["institution"]["fingerprint"] = "0b0" + "1" * 61
    bundle = _with_files(
        exported, tmp_path / "t.zip", manifest_dot_json=json.dumps(manifest).encode()
    )
    assert "manifest-mismatch" in _kinds(verify_bundle(bundle))


def test_extra_definitions_entry_in_manifest_is_reported(exported: Path, tmp_path: Path) -> None:
    manifest = Bundle.read(exported).manifest
    manifest["definitions"]["f" * 64] = "expense_approval.toml"
    bundle = _with_files(
        exported, tmp_path / "t.zip", manifest_dot_json=json.dumps(manifest).encode()
    )
    assert "manifest-mismatch" in _kinds(verify_bundle(bundle))


def test_checkpoint_line_with_false_size_and_root_is_reported(
    exported: Path, tmp_path: Path
) -> None:
    raw = Bundle.read(exported).files["checkpoints.jsonl"].decode().splitlines()
    entry = json.loads(raw[-1])
    entry.update(size=entry["size"] + 5, root="0" * 64)
    raw[-1] = json.dumps(entry)
    bundle = _with_files(
        exported, tmp_path / "t.zip", checkpoints_dot_jsonl=("\n".join(raw) + "\n").encode()
    )
    assert "checkpoint-mismatch" in _kinds(verify_bundle(bundle))


def test_false_revoked_seq_in_keys_json_is_reported(exported: Path, tmp_path: Path) -> None:
    keys = json.loads(Bundle.read(exported).files["keys.json"])
    keys[1]["revoked_seq"] = 3
    bundle = _with_files(exported, tmp_path / "t.zip", keys_dot_json=json.dumps(keys).encode())
    assert "keys-mismatch" in _kinds(verify_bundle(bundle))


# --- time ------------------------------------------------------------------------------------------


def test_step_dated_before_the_step_it_follows_is_reported(
    exported: Path, school: School, tmp_path: Path
) -> None:
    bundle = Bundle.read(exported)
    seq = bundle.append_signed(
        {
            "request": None,
            "action": "user.roles",
            "actor": "institution",
            "role": "institution",
            "from": None,
            "to": None,
            "definition": None,
            "ts": "2020-01-01T00:00:00Z",
            "data": {"login": "kiem", "roles": ["auditor"]},
        },
        school.runtime.institution,
    )
    bundle.reseal(school.runtime.institution)
    report = verify_bundle(bundle.write(tmp_path / "t.zip"))
    assert {(p.seq, p.kind) for p in report.problems} == {(seq, "time-reversed")}


def test_event_after_the_final_checkpoint_time_is_reported(
    exported: Path, school: School, tmp_path: Path
) -> None:
    bundle = Bundle.read(exported)
    leaves = [
        leaf_hash(bytes.fromhex(x["hash"]) + bytes.fromhex(x.get("sig", ""))) for x in bundle.lines
    ]
    checkpoint = sign_checkpoint(
        bundle.manifest["origin"],
        len(leaves),
        root_from_leaf_hashes(leaves),
        school.runtime.institution.private,
        now=datetime(2020, 1, 1),
    )
    entry = {"size": checkpoint.size, "root": checkpoint.root_hex, "note": checkpoint.note}
    bundle.files["checkpoints.jsonl"] = (json.dumps(entry) + "\n").encode()
    report = verify_bundle(bundle.write(tmp_path / "t.zip"))
    assert "time-after-checkpoint" in _kinds(report), report.problems


# --- malformed fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ts", "2024-13-45T00:00:00Z"),
        ("ts", "2024-09-09 00:00:00"),
        ("data", "a string"),
        ("comment", 5),
        ("seq", "3"),
        ("seq", True),
        ("key", None),
        ("prev", 7),
        ("actor", ["x"]),
        ("v", 1.5),
        ("definition", "nope"),
    ],
)
def test_malformed_field_is_listed_never_a_traceback(
    exported: Path, tmp_path: Path, field: str, value: object
) -> None:
    bundle = Bundle.read(exported)
    index = next(i for i, x in enumerate(bundle.lines) if fields(x)["action"] == "submit")
    fields(bundle.lines[index], field)[field] = value
    path = bundle.write(tmp_path / "t.zip")
    report = verify_bundle(path)
    assert "malformed" in _kinds(report) or "non-canonical" in _kinds(report)
    run = subprocess.run(
        [sys.executable, "-m", "expense_audit.verify", str(path)], capture_output=True, text=True
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr


def test_content_amount_of_wrong_type_is_malformed(exported: Path, tmp_path: Path) -> None:
    bundle = Bundle.read(exported)
    index = next(i for i, x in enumerate(bundle.lines) if fields(x)["action"] == "submit")
    fields(bundle.lines[index])["data"]["content"]["amount_vnd"] = "450000"
    report = verify_bundle(bundle.write(tmp_path / "t.zip"))
    assert (index + 1, "malformed") in {(p.seq, p.kind) for p in report.problems}


def test_garbage_bytes_are_unreadable_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    run = subprocess.run(
        [sys.executable, "-m", "expense_audit.verify", str(tmp_path / "x.zip")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
