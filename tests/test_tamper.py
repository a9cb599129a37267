"""Tamper tests: each change to an exported bundle is reported with the right seq and kind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from expense_audit.verify import BundleUnreadable, Report, verify_bundle
from workflow.bundle import export_bundle
from workflow.keys import unlock
from workflow.livecheck import verify_live
from workflow.models import SigningKey

from .bundle_tools import Bundle, fields, flip_signature, rehash
from .factories import SECRET, School, pay_data


@pytest.fixture
def history(school: School) -> School:
    """A small year: one paid request, one returned and resubmitted, one rejected, one waiting."""
    paid = school.to_state("approved")
    school.act(paid, "pay", "mai", data=pay_data())
    school.to_state("returned", line="WEB", amount="2.400.000")
    school.to_state("rejected", line="PRINT", amount="300.000")
    school.to_state("submitted", line="SW-IMAS", amount="1.800.000")
    return school


@pytest.fixture
def exported(history: School, tmp_path: Path) -> Path:
    path = tmp_path / "bundle.zip"
    with history.runtime.transaction() as session:
        export_bundle(
            session, path, institution=history.runtime.institution, now=history.runtime.now()
        )
    return path


def _budget_of(bundle: Bundle) -> str:
    """The budget catalogue hash the log's steps name."""
    return str(next(fields(line)["budget"] for line in bundle.lines if fields(line).get("budget")))


def _kinds(report: Report) -> set[tuple[int | None, str]]:
    return {(p.seq, p.kind) for p in report.problems}


def test_untouched_bundle_is_valid(exported: Path, history: School) -> None:
    report = verify_bundle(exported, institution_key=history.runtime.institution.fingerprint)
    assert report.valid, report.problems
    assert report.event_count == Bundle.read(exported).manifest["event_count"]
    assert report.requests["2024-2025/0001"]["state"] == "paid"


def test_cli_exit_codes_and_json(exported: Path, history: School, tmp_path: Path) -> None:
    fingerprint = history.runtime.institution.fingerprint
    run = [sys.executable, "-m", "expense_audit.verify"]
    ok = subprocess.run(
        [*run, str(exported), "--institution-key", fingerprint, "--json"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["valid"] is True
    bundle = Bundle.read(exported)
    seq = bundle.seq_of("return")
    fields(bundle.lines[seq - 1])["comment"] = "sửa lén"
    bad = subprocess.run(
        [*run, str(bundle.write(tmp_path / "bad.zip"))], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert f"seq {seq:>6}  hash-mismatch" in bad.stdout, bad.stdout
    (tmp_path / "junk.zip").write_bytes(b"not a zip at all")
    junk = subprocess.run([*run, str(tmp_path / "junk.zip")], capture_output=True, text=True)
    assert junk.returncode == 2 and "cannot read bundle" in junk.stderr


def test_modified_event_is_a_hash_mismatch(exported: Path, tmp_path: Path) -> None:
    bundle = Bundle.read(exported)
    seq = bundle.seq_of("approve")
    fields(bundle.lines[seq - 1])["data"]["content"]["amount_vnd"] = 18_000_000
    report = verify_bundle(bundle.write(tmp_path / "t.zip"))
    assert (seq, "hash-mismatch") in _kinds(report)
    assert next(p for p in report.problems if p.kind == "hash-mismatch").request == "2024-2025/0001"


def test_modified_and_rehashed_event_breaks_its_signature_and_the_link(
    exported: Path, tmp_path: Path
) -> None:
    bundle = Bundle.read(exported)
    seq = bundle.seq_of("approve")
    line = bundle.lines[seq - 1]
    fields(line)["data"]["content"]["amount_vnd"] = 18_000_000
    rehash(line)
    report = verify_bundle(bundle.write(tmp_path / "t.zip"))
    assert {(seq, "bad-signature"), (seq + 1, "broken-link")} <= _kinds(report)


def test_deleted_event_is_a_gap(exported: Path, tmp_path: Path) -> None:
    bundle = Bundle.read(exported)
    seq = bundle.seq_of("forward")
    del bundle.lines[seq - 1]
    report = verify_bundle(bundle.write(tmp_path / "t.zip"))
    assert {(seq + 1, "gap"), (seq + 1, "broken-link")} <= _kinds(report)


def test_reordered_events_are_reported(exported: Path, tmp_path: Path) -> None:
    bundle = Bundle.read(exported)
    seq = bundle.seq_of("forward")
    bundle.lines[seq - 1], bundle.lines[seq] = bundle.lines[seq], bundle.lines[seq - 1]
    report = verify_bundle(bundle.write(tmp_path / "t.zip"))
    assert (seq, "reordered") in _kinds(report)
    assert (seq + 1, "gap") in _kinds(report)


def test_duplicated_event_is_reported(exported: Path, tmp_path: Path) -> None:
    bundle = Bundle.read(exported)
    seq = bundle.seq_of("approve")
    bundle.lines.insert(seq, dict(bundle.lines[seq - 1]))
    report = verify_bundle(bundle.write(tmp_path / "t.zip"))
    assert (seq, "duplicate") in _kinds(report)


def test_truncated_log_is_caught_by_the_signed_checkpoint(exported: Path, tmp_path: Path) -> None:
    bundle = Bundle.read(exported)
    total = len(bundle.lines)
    del bundle.lines[-3:]
    report = verify_bundle(bundle.write(tmp_path / "t.zip"))
    assert (total - 3, "checkpoint-beyond-log") in _kinds(report)
    assert any(p.kind == "manifest-mismatch" for p in report.problems)


def test_dropped_final_checkpoint_is_reported(exported: Path, tmp_path: Path) -> None:
    bundle = Bundle.read(exported)
    bundle.files["checkpoints.jsonl"] = b""
    report = verify_bundle(bundle.write(tmp_path / "t.zip"))
    assert (len(bundle.lines), "checkpoint-missing") in _kinds(report)


def test_forged_signature_is_reported(exported: Path, tmp_path: Path) -> None:
    bundle = Bundle.read(exported)
    seq = bundle.seq_of("pay")
    # NOTE: a v2 body holds its signature, so a forger also re-hashes the line.
    flip_signature(bundle.lines[seq - 1])
    rehash(bundle.lines[seq - 1])
    report = verify_bundle(bundle.write(tmp_path / "t.zip"))
    assert {(seq, "bad-signature"), (seq + 1, "broken-link")} <= _kinds(report)
    assert any(p.kind == "checkpoint-mismatch" for p in report.problems)


def test_key_used_after_its_revocation(history: School, tmp_path: Path) -> None:
    """A rotated key still signs a well-formed event: the verifier knows it was revoked."""
    runtime = history.runtime
    with runtime.transaction() as session:
        directory = runtime.directory(session)
        old = directory.active_key("hanh")
        assert old is not None
        assert old.encrypted_private is not None and old.kdf is not None
        old_unlocked = unlock(
            old.key_id, old.encrypted_private, old.kdf, SECRET, pepper=runtime.pepper
        )
        hanh = directory.get_user("hanh")
        assert hanh is not None
        directory.keyring.rotate_server_key(hanh, SECRET, "new-secret-khoa-99")
    path = tmp_path / "b.zip"
    with runtime.transaction() as session:
        export_bundle(session, path, institution=runtime.institution, now=runtime.now())
    bundle = Bundle.read(path)
    number = history.draft()
    draft_content = {
        "title": "Gia hạn phần mềm",
        "description": "",
        "line": "SW-ASSET",
        "source": "NSNN-TX",
        "budget_year": 2025,
        "quantity": 1,
        "unit_price_vnd": 1_800_000,
        "amount_vnd": 1_800_000,
        "attachments": [],
    }
    seq = bundle.append_signed(
        {
            "request": number,
            "action": "withdraw",
            "from": "draft",
            "to": "withdrawn",
            "actor": "hanh",
            "role": "proposer",
            "data": {
                "content": draft_content,
                "budget": _budget_of(bundle),
            },
        },
        old_unlocked,
    )
    bundle.reseal(runtime.institution)
    report = verify_bundle(bundle.write(tmp_path / "t.zip"))
    assert _kinds(report) == {(seq, "key-not-valid")}, report.problems


def test_edited_definition_is_reported(exported: Path, tmp_path: Path) -> None:
    bundle = Bundle.read(exported)
    name = next(n for n in bundle.files if n.endswith("expense_approval.toml"))
    bundle.files[name] = bundle.files[name].replace(
        b'guards = ["actor_not_owner", "actor_not_forwarder", "within_norm", "within_allocation"]',
        b'guards = ["within_norm"]',
    )
    report = verify_bundle(bundle.write(tmp_path / "t.zip"))
    kinds = {kind for _, kind in _kinds(report)}
    assert "definition-mismatch" in kinds
    first_request_event = min(
        line["body"]["seq"] for line in bundle.lines if fields(line)["request"]
    )
    assert (first_request_event, "definition-missing") in _kinds(report)


def _forge_request_step(
    history: School,
    tmp_path: Path,
    *,
    login: str,
    number: str,
    action: str,
    source: str,
    dest: str,
    role: str,
    data: dict[str, object] | None = None,
) -> tuple[Report, int]:
    """Append a step signed with the actor's real key, chained and checkpointed like a real one."""
    runtime = history.runtime
    path = tmp_path / "b.zip"
    with runtime.transaction() as session:
        export_bundle(session, path, institution=runtime.institution, now=runtime.now())
        key = session.query(SigningKey).filter_by(login=login, revoked_seq=None).one()
        assert key.encrypted_private is not None and key.kdf is not None
        signer = unlock(key.key_id, key.encrypted_private, key.kdf, SECRET, pepper=runtime.pepper)
    bundle = Bundle.read(path)
    if data is None:
        # The request's last data, as a v1 step carries it (the budget hash inside data).
        last = [fields(line) for line in bundle.lines if fields(line)["request"] == number][-1]
        data = {**last["data"], "budget": last.get("budget", last["data"].get("budget"))}
    seq = bundle.append_signed(
        {
            "request": number,
            "action": action,
            "from": source,
            "to": dest,
            "actor": login,
            "role": role,
            "data": data,
            "definition": runtime.definitions.workflow().sha256,
        },
        signer,
    )
    bundle.reseal(runtime.institution)
    return verify_bundle(bundle.write(tmp_path / "t.zip")), seq


def test_validly_signed_self_approval_is_caught(history: School, tmp_path: Path) -> None:
    number = history.draft(owner="toan", line="WEB", amount="2.400.000")
    history.act(number, "submit", "toan")
    history.act(number, "forward", "long")
    report, seq = _forge_request_step(
        history,
        tmp_path,
        login="toan",
        number=number,
        action="approve",
        source="forwarded",
        dest="approved",
        role="approver",
    )
    assert _kinds(report) == {(seq, "forbidden-step")}
    assert "chính mình" in report.problems[0].detail


def test_validly_signed_wrong_role_is_caught(history: School, tmp_path: Path) -> None:
    number = history.to_state("forwarded", line="WEB", amount="2.400.000")
    report, seq = _forge_request_step(
        history,
        tmp_path,
        login="mai",
        number=number,
        action="approve",
        source="forwarded",
        dest="approved",
        role="approver",
    )
    assert _kinds(report) == {(seq, "forbidden-step")}
    assert "holds ['accountant']" in report.problems[0].detail


def test_validly_signed_step_over_the_norm_is_caught(history: School, tmp_path: Path) -> None:
    number = history.draft(owner="nga", line="PRINT", amount="400.000")
    content = {
        "title": "In tài liệu tập huấn",
        "description": "",
        "line": "PRINT",
        "source": "NSNN-TX",
        "budget_year": 2025,
        "quantity": 1,
        "unit_price_vnd": 650_000,
        "amount_vnd": 650_000,
        "attachments": [],
    }
    budget = history.runtime.definitions.catalogue("2024-2025").sha256
    report, seq = _forge_request_step(
        history,
        tmp_path,
        login="nga",
        number=number,
        action="submit",
        source="draft",
        dest="submitted",
        role="proposer",
        data={"content": content, "budget": budget},
    )
    assert _kinds(report) == {(seq, "forbidden-step")}
    assert "500.000 ₫" in report.problems[0].detail


def test_institution_key_pin_mismatch(exported: Path) -> None:
    report = verify_bundle(exported, institution_key="ab" * 32)
    assert (1, "institution-key-mismatch") in _kinds(report)


def test_trusted_checkpoint_consistency(history: School, tmp_path: Path) -> None:
    runtime = history.runtime
    first = tmp_path / "first.zip"
    with runtime.transaction() as session:
        export_bundle(session, first, institution=runtime.institution, now=runtime.now())
    kept = json.loads(Bundle.read(first).files["checkpoints.jsonl"].decode().splitlines()[-1])[
        "note"
    ]
    history.to_state("submitted", line="SW-IMAS", amount="1.000.000")
    later = tmp_path / "later.zip"
    with runtime.transaction() as session:
        export_bundle(session, later, institution=runtime.institution, now=runtime.now())
    assert verify_bundle(later, trusted_checkpoint=kept).valid
    # The school rewrites its past (it holds the institution key) and re-signs everything.
    bundle = Bundle.read(later)
    del bundle.lines[-6:]
    bundle.files["checkpoints.jsonl"] = b""
    bundle.reseal(runtime.institution, keep_old_checkpoints=False)
    report = verify_bundle(bundle.write(tmp_path / "t.zip"), trusted_checkpoint=kept)
    assert any(
        kind in ("checkpoint-beyond-log", "trusted-checkpoint-mismatch")
        for _, kind in _kinds(report)
    )


def test_unreadable_bundles(tmp_path: Path) -> None:
    (tmp_path / "a.zip").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(BundleUnreadable):
        verify_bundle(tmp_path / "a.zip")
    with pytest.raises(BundleUnreadable):
        verify_bundle(tmp_path / "missing.zip")


def test_database_edit_of_an_approved_amount_is_named_by_live_verification(history: School) -> None:
    runtime = history.runtime
    with runtime.transaction() as session:
        assert verify_live(session, institution=runtime.institution, now=runtime.now()).valid
        session.execute(
            text("UPDATE requests SET amount_vnd = 18000000 WHERE number = '2024-2025/0001'")
        )
    with runtime.transaction() as session:
        report = verify_live(session, institution=runtime.institution, now=runtime.now())
    problem = next(p for p in report.problems if p.kind == "row-differs-from-log")
    assert problem.request == "2024-2025/0001" and "amount_vnd" in problem.detail
    assert problem.seq == history.request("2024-2025/0001").last_seq  # type: ignore[union-attr]


def test_audit_table_refuses_update_and_delete(history: School) -> None:
    runtime = history.runtime
    for statement in (
        "UPDATE audit_events SET actor = 'x' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 2",
    ):
        with pytest.raises(Exception, match="append-only"), runtime.transaction() as session:
            session.execute(text(statement))


def test_parallel_verification_finds_the_same_problems(exported: Path, tmp_path: Path) -> None:
    bundle = Bundle.read(exported)
    seq = bundle.seq_of("forward")
    flip_signature(bundle.lines[seq - 1])
    fields(bundle.lines[2])["comment"] = "x"
    path = bundle.write(tmp_path / "t.zip")
    one, two = verify_bundle(path, jobs=1), verify_bundle(path, jobs=2)
    assert (
        _kinds(one) == _kinds(two)
        and (seq, "bad-signature") in _kinds(two)
        and (3, "hash-mismatch") in _kinds(two)
    )
    assert verify_bundle(exported, jobs=2).valid


def test_incremental_verification_from_a_trusted_checkpoint(
    history: School, tmp_path: Path
) -> None:
    runtime = history.runtime
    first = tmp_path / "first.zip"
    with runtime.transaction() as session:
        export_bundle(session, first, institution=runtime.institution, now=runtime.now())
    full = verify_bundle(first, institution_key=runtime.institution.fingerprint, keep_state=True)
    assert full.valid and full.state is not None
    kept = json.loads(Bundle.read(first).files["checkpoints.jsonl"].decode().splitlines()[-1])[
        "note"
    ]
    state = json.loads(json.dumps(full.state))  # as saved to a file
    number = history.to_state("approved", line="WEB", amount="2.400.000")
    later = tmp_path / "later.zip"
    with runtime.transaction() as session:
        export_bundle(session, later, institution=runtime.institution, now=runtime.now())
    resumed = verify_bundle(later, trusted_checkpoint=kept, state=state)
    assert resumed.valid, resumed.problems
    assert resumed.requests[number]["state"] == "approved"
    assert resumed.requests == verify_bundle(later).requests
    # A forbidden step after the checkpoint is still caught, with the state rebuilt from the file.
    bundle = Bundle.read(later)
    fields(bundle.lines[-1])["comment"] = "sửa"
    assert (len(bundle.lines), "hash-mismatch") in _kinds(
        verify_bundle(bundle.write(tmp_path / "a.zip"), trusted_checkpoint=kept, state=state)
    )
    # A log cut below the trusted checkpoint is reported against it, once (the bundle's own signed
    # checkpoints, also beyond the cut, are reported each on their own).
    bundle = Bundle.read(later)
    del bundle.lines[len(bundle.lines) // 2 :]
    cut = verify_bundle(bundle.write(tmp_path / "c.zip"), trusted_checkpoint=kept, state=state)
    assert len([p for p in cut.problems if "your trusted checkpoint" in p.detail]) == 1
    # History rewritten under the trusted checkpoint and re-signed by the school is caught,
    # although those events are not read again: the state's frontier stands for them.
    bundle = Bundle.read(later)
    index = 4
    fields(bundle.lines[index])["comment"] = "sửa"
    rehash(bundle.lines[index])
    bundle.reseal(runtime.institution, keep_old_checkpoints=False)
    rewritten = verify_bundle(
        bundle.write(tmp_path / "b.zip"), trusted_checkpoint=kept, state=state
    )
    assert (len(bundle.lines), "checkpoint-mismatch") in _kinds(rewritten)


def test_cli_saves_and_resumes_state(history: School, tmp_path: Path) -> None:
    runtime = history.runtime
    path = tmp_path / "b.zip"
    with runtime.transaction() as session:
        export_bundle(session, path, institution=runtime.institution, now=runtime.now())
    note = json.loads(Bundle.read(path).files["checkpoints.jsonl"].decode().splitlines()[-1])[
        "note"
    ]
    (tmp_path / "cp.txt").write_text(note.replace("\n", "\r\n"))  # as kept from an e-mail
    run = [sys.executable, "-m", "expense_audit.verify", str(path)]
    saved = subprocess.run(
        [*run, "--save-state", str(tmp_path / "s.json"), "--jobs", "2"],
        capture_output=True,
        text=True,
    )
    assert saved.returncode == 3, saved.stdout + saved.stderr  # valid, but no pin given
    again = subprocess.run(
        [*run, "--trust", str(tmp_path / "cp.txt"), "--state", str(tmp_path / "s.json")],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stdout + again.stderr


def test_database_edit_of_budget_totals_is_caught_by_live_verification(history: School) -> None:
    runtime = history.runtime
    with runtime.transaction() as session:
        session.execute(text("UPDATE budget_totals SET amount_vnd = 0"))
    with runtime.transaction() as session:
        report = verify_live(session, institution=runtime.institution, now=runtime.now())
    problem = next(p for p in report.problems if p.kind == "budget-totals-differ")
    assert "SW-ASSET 2024-2025 budget year 2025: table 0, log 1800000" in problem.detail
    # ...and the guards read the totals: with them zeroed, a second SW-ASSET would wrongly pass,
    # which is why the live check compares them with the log.
