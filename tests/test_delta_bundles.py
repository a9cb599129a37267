"""Delta bundles, consistency proofs, attached files in the bundle, and the head checkpoint's time.

Each test is named after the attack or problem it covers (issue 10, second part)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from flask import Flask

from expense_audit.canonical import canonical_json, event_hash
from expense_audit.checkpoint import open_checkpoint, sign_checkpoint
from expense_audit.merkle import consistency_proof, leaf_hash
from expense_audit.verify import BundleUnreadable, Report, verify_bundle
from expense_audit.verify.checkpoints import proof_document
from workflow.bundle import attachment_path, export_bundle, prove_consistency
from workflow.models import CheckpointRow

from .bundle_tools import Bundle
from .factories import School, pay_data

VERIFY = [sys.executable, "-m", "expense_audit.verify"]


def _kinds(report: Report) -> set[str]:
    return {p.kind for p in report.problems}


def _final_note(path: Path) -> str:
    last = Bundle.read(path).files["checkpoints.jsonl"].decode().splitlines()[-1]
    return str(json.loads(last)["note"])


def _export(school: School, path: Path, **kwargs: object) -> Path:
    runtime = school.runtime
    with runtime.transaction() as session:
        export_bundle(session, path, institution=runtime.institution, now=runtime.now(), **kwargs)  # type: ignore[arg-type]
    return path


def test_delta_export_with_a_consistency_proof_verifies_only_the_new_events(
    app: Flask, school: School, tmp_path: Path
) -> None:
    runner = app.test_cli_runner()
    fingerprint = school.runtime.institution.fingerprint
    school.to_state("approved")
    full = tmp_path / "full.zip"
    assert runner.invoke(args=["audit", "export", str(full)]).exit_code == 0
    saved = subprocess.run(
        [*VERIFY, str(full), "--institution-key", fingerprint, "--save-state", str(tmp_path / "s")],
        capture_output=True,
        text=True,
    )
    assert saved.returncode == 0, saved.stdout + saved.stderr
    kept = tmp_path / "kept.txt"
    kept.write_text(_final_note(full))
    # A month later: new steps, a proof from the kept checkpoint, and only the new events.
    number = school.to_state("submitted", line="WEB", amount="2.400.000")
    school.act(number, "forward", "long")
    proved = runner.invoke(args=["audit", "prove", str(kept), "-o", str(tmp_path / "p.json")])
    assert proved.exit_code == 0, proved.output
    delta = tmp_path / "delta.zip"
    exported = runner.invoke(args=["audit", "export", str(delta), "--since", str(kept)])
    assert exported.exit_code == 0, exported.output
    manifest = Bundle.read(delta).manifest
    kept_size = open_checkpoint(kept.read_text(), school.runtime.institution.public_raw).size
    assert manifest["since"] == kept_size and manifest["event_count"] == len(
        Bundle.read(delta).lines
    )
    assert Bundle.read(delta).lines[0]["body"]["seq"] == kept_size + 1
    proof = json.loads((tmp_path / "p.json").read_text())
    assert proof["old_size"] == kept_size and proof["new_size"] > kept_size
    run = subprocess.run(
        [
            *VERIFY,
            str(delta),
            "--trust",
            str(kept),
            "--state",
            str(tmp_path / "s"),
            "--proof",
            str(tmp_path / "p.json"),
            "--save-state",
            str(tmp_path / "s2"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # The state saved from the delta carries on: it gives the same requests as a full run.
    state = json.loads((tmp_path / "s2").read_text())
    assert state["size"] == proof["new_size"]
    assert verify_bundle(_export(school, tmp_path / "all.zip")).requests[number]["state"] == (
        "forwarded"
    )


def test_forked_history_fails_the_consistency_proof(school: School, tmp_path: Path) -> None:
    # The school keeps the institution key, rewrites an approved amount under the checkpoint the
    # auditor kept, re-signs everything and hands over a proof computed over the forged log.
    school.to_state("approved")
    first = _export(school, tmp_path / "first.zip")
    kept = _final_note(first)
    school.to_state("submitted", line="WEB", amount="2.400.000")
    bundle = Bundle.read(_export(school, tmp_path / "later.zip"))
    forged = bundle.lines[3]["body"]
    forged["comment"] = "đã sửa"
    bundle.lines[3]["hash"] = event_hash(canonical_json(forged))
    bundle.reseal(school.runtime.institution, keep_old_checkpoints=False)
    path = bundle.write(tmp_path / "forged.zip")
    leaves = [
        leaf_hash(bytes.fromhex(line["hash"]) + bytes.fromhex(line.get("sig", "")))
        for line in bundle.lines
    ]
    public = school.runtime.institution.public_raw
    old = open_checkpoint(kept, public)
    new = open_checkpoint(_final_note(path), public)
    document = proof_document(old, new, consistency_proof(leaves, old.size))
    report = verify_bundle(path, trusted_checkpoint=kept, proof=document)
    assert "consistency-proof-invalid" in _kinds(report)
    detail = next(p.detail for p in report.problems if p.kind == "consistency-proof-invalid")
    assert "does not extend yours" in detail


def test_proof_for_another_checkpoint_than_the_bundles_is_refused(
    school: School, tmp_path: Path
) -> None:
    # A genuine proof to an older head does not vouch for a bundle that goes further.
    school.to_state("approved")
    kept = _final_note(_export(school, tmp_path / "a.zip"))
    school.to_state("submitted", line="WEB", amount="2.400.000")
    with school.runtime.transaction() as session:
        document = prove_consistency(
            session, kept, institution=school.runtime.institution, now=school.runtime.now()
        )
    school.to_state("submitted", line="PRINT", amount="300.000")
    later = _export(school, tmp_path / "b.zip")
    report = verify_bundle(later, trusted_checkpoint=kept, proof=document)
    assert "consistency-proof-invalid" in _kinds(report)
    assert verify_bundle(tmp_path / "b.zip", trusted_checkpoint=kept).valid


def test_delta_bundle_without_the_saved_state_is_unreadable(school: School, tmp_path: Path) -> None:
    school.to_state("approved")
    kept = _final_note(_export(school, tmp_path / "a.zip"))
    school.to_state("submitted", line="WEB", amount="2.400.000")
    delta = _export(school, tmp_path / "d.zip", since=kept)
    with pytest.raises(BundleUnreadable, match="--state"):
        verify_bundle(delta, trusted_checkpoint=kept)


def test_delta_missing_its_first_new_event_is_caught(school: School, tmp_path: Path) -> None:
    school.to_state("approved")
    first = _export(school, tmp_path / "a.zip")
    state = verify_bundle(first, keep_state=True).state
    kept = _final_note(first)
    school.to_state("forwarded", line="WEB", amount="2.400.000")
    bundle = Bundle.read(_export(school, tmp_path / "d.zip", since=kept))
    del bundle.lines[0]
    bundle.reseal(school.runtime.institution, keep_old_checkpoints=False)
    report = verify_bundle(bundle.write(tmp_path / "cut.zip"), trusted_checkpoint=kept, state=state)
    assert {"broken-link", "gap"} <= _kinds(report)


def test_edited_frontier_in_a_saved_state_is_refused(school: School, tmp_path: Path) -> None:
    school.to_state("approved")
    first = _export(school, tmp_path / "a.zip")
    state = verify_bundle(first, keep_state=True).state
    assert state is not None
    state["frontier"][0] = "00" * 32
    with pytest.raises(BundleUnreadable, match="frontier"):
        verify_bundle(first, trusted_checkpoint=_final_note(first), state=state)


# --- attached files ---------------------------------------------------------------------------


@pytest.fixture
def quotes(school: School, tmp_path: Path) -> tuple[Path, list[dict[str, object]]]:
    """Two quotes stored by sha256 as the web layer stores them, bound into a paid request."""
    folder = tmp_path / "attachments"
    records = []
    for index, data in enumerate((b"%PDF-1.7 bao gia 1", b"%PDF-1.7 bao gia 2"), start=1):
        sha = hashlib.sha256(data).hexdigest()
        attachment_path(folder, sha).parent.mkdir(parents=True, exist_ok=True)
        attachment_path(folder, sha).write_bytes(data)
        records.append({"name": f"bao-gia-{index}.pdf", "sha256": sha, "size": len(data)})
    number = school.to_state("approved", attachments=records)
    school.act(number, "pay", "mai", data=pay_data())
    return folder, records


def _with_member(path: Path, target: Path, name: str, data: bytes | None) -> Path:
    with zipfile.ZipFile(path) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    if data is None:
        files.pop(name)
    else:
        files[name] = data
    with zipfile.ZipFile(target, "w") as archive:
        for member, content in files.items():
            archive.writestr(member, content)
    return target


def test_bundle_with_attachments_carries_each_quote_the_events_bind(
    school: School, quotes: tuple[Path, list[dict[str, object]]], tmp_path: Path
) -> None:
    folder, records = quotes
    path = _export(school, tmp_path / "b.zip", attachments_dir=folder)
    report = verify_bundle(path)
    assert report.valid, report.problems
    listed = {a["sha256"]: a for a in report.attachments}
    for record in records:
        assert listed[record["sha256"]]["status"] == "verified"
        assert record["name"] in listed[record["sha256"]]["names"]
        # The inspector opens the very bytes offline, from the zip.
        with zipfile.ZipFile(path) as archive:
            assert (
                archive.read(f"attachments/{record['sha256']}")
                == attachment_path(folder, str(record["sha256"])).read_bytes()
            )


def test_quote_swapped_inside_the_bundle_is_named(
    school: School, quotes: tuple[Path, list[dict[str, object]]], tmp_path: Path
) -> None:
    folder, records = quotes
    path = _export(school, tmp_path / "b.zip", attachments_dir=folder)
    name = f"attachments/{records[0]['sha256']}"
    swapped = _with_member(path, tmp_path / "s.zip", name, b"%PDF-1.7 bao gia re hon")
    problems = [p for p in verify_bundle(swapped).problems if p.kind == "attachment-mismatch"]
    assert problems and str(records[0]["sha256"]) in problems[0].detail


def test_foreign_file_added_to_the_bundle_is_named(
    school: School, quotes: tuple[Path, list[dict[str, object]]], tmp_path: Path
) -> None:
    folder, _ = quotes
    path = _export(school, tmp_path / "b.zip", attachments_dir=folder)
    data = b"%PDF-1.7 hoa don khong ai ky"
    name = f"attachments/{hashlib.sha256(data).hexdigest()}"
    added = _with_member(path, tmp_path / "f.zip", name, data)
    assert "attachment-foreign" in _kinds(verify_bundle(added))


def test_bound_quote_left_out_of_an_attachments_bundle_is_named(
    school: School, quotes: tuple[Path, list[dict[str, object]]], tmp_path: Path
) -> None:
    folder, records = quotes
    path = _export(school, tmp_path / "b.zip", attachments_dir=folder)
    name = f"attachments/{records[1]['sha256']}"
    dropped = verify_bundle(_with_member(path, tmp_path / "d.zip", name, None))
    missing = [p for p in dropped.problems if p.kind == "attachment-missing"]
    assert len(missing) == 1 and "bao-gia-2.pdf" in missing[0].detail
    # A bundle made without attachments does not pretend to carry them.
    assert verify_bundle(_export(school, tmp_path / "plain.zip")).valid


# --- the head checkpoint's time line -----------------------------------------------------------


def test_export_of_a_database_whose_latest_checkpoint_has_no_time_line_still_verifies(
    school: School, tmp_path: Path
) -> None:
    # A database from before the time line: its latest checkpoint covers the head without one,
    # and the log has not moved since.
    school.to_state("approved")
    runtime = school.runtime
    with runtime.transaction() as session:
        checkpoint = runtime.checkpoint(session)
        timeless = sign_checkpoint(
            checkpoint.origin, checkpoint.size, checkpoint.root, runtime.institution.private
        )
        row = session.get(CheckpointRow, checkpoint.size)
        assert row is not None
        row.note = timeless.note
    path = _export(school, tmp_path / "b.zip")
    report = verify_bundle(path, institution_key=runtime.institution.fingerprint)
    assert report.valid, report.problems
    assert open_checkpoint(_final_note(path), runtime.institution.public_raw).time is not None
