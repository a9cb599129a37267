"""Event format v2 in the offline verifier: passkey and server-held decisions, key events, the
per-person report, and one test per attack an insider or a server could try."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from expense_audit.decision import decision_hash, webauthn_signature_from_json
from expense_audit.verify import Report, main, verify_bundle
from expense_audit.webauthn import EDDSA, b64url_decode, b64url_encode, passkey_key_id

from .softauthn import SoftAuthenticator, mirror_es256
from .v2_log import V2Log, content

PAY = {"voucher": "PC-2025-0031", "paid_on": "2025-01-06", "amount_paid_vnd": 400_000}


@dataclass
class School:
    """A log with an admin outside the chain and one person per chain role."""

    log: V2Log
    hanh: tuple[str, Ed25519PrivateKey]  # proposer, legacy v1 key
    lan: tuple[str, SoftAuthenticator]  # reviewer, ES256 passkey
    minh: tuple[str, SoftAuthenticator]  # approver, Ed25519 passkey
    thu: tuple[str, Ed25519PrivateKey]  # accountant, server-held v2 key


def school() -> School:
    log = V2Log()
    log.roles("admin", ["admin"], by="setup")
    log.roles("hanh", ["proposer"])
    log.roles("lan", ["reviewer"])
    log.roles("minh", ["approver"])
    log.roles("thu", ["accountant"])
    hanh = log.register_legacy("hanh")
    lan_auth = SoftAuthenticator()
    lan = log.enroll_passkey("lan", lan_auth)
    log.confirm("lan", lan, lan_auth)
    minh_auth = SoftAuthenticator(alg=EDDSA)
    minh = log.enroll_passkey("minh", minh_auth)
    log.confirm("minh", minh, minh_auth)
    thu = log.enroll_server_held("thu")
    log.confirm("thu", thu[0], thu[1])
    return School(log, hanh, (lan, lan_auth), (minh, minh_auth), thu)


def v1_submit(s: School, number: str) -> int:
    """The proposer's legacy v1 submit (data carries the budget hash, as v1 did)."""
    kid, private = s.hanh
    return s.log.v1(
        actor="hanh",
        key=kid,
        signer=private,
        action="submit",
        data={"content": content(), "budget": s.log.budget},
        request=number,
        from_state="draft",
        to_state="submitted",
        role="proposer",
        definition=s.log.definition,
    )


def verify(log: V2Log, tmp_path: Path, name: str = "b.zip") -> Report:
    return verify_bundle(log.write(tmp_path / name), institution_key=log.fingerprint)


def kinds(report: Report) -> set[str]:
    return {p.kind for p in report.problems}


def only(report: Report, kind: str) -> None:
    assert kinds(report) == {kind}, report.problems


# --- A valid mixed log. ----------------------------------------------------------------------------


def full_history() -> tuple[School, dict[str, Any]]:
    """v1 and v2 steps, a rotation, a batch and a recovery, all as the contract allows."""
    s = school()
    log = s.log
    lan, lan_auth = s.lan
    minh, minh_auth = s.minh
    thu, thu_key = s.thu
    v1_submit(s, "2024-2025/0001")
    log.step(lan_auth, "lan", lan, "forward", "2024-2025/0001", "forwarded", "reviewer")
    log.step(minh_auth, "minh", minh, "approve", "2024-2025/0001", "approved", "approver")
    log.step(thu_key, "thu", thu, "pay", "2024-2025/0001", "paid", "accountant", payment=PAY)
    # hanh rotates from the legacy key to a passkey: the old key approves the new one.
    old, old_private = s.hanh
    hanh_auth = SoftAuthenticator()
    new = passkey_key_id(hanh_auth.spki)
    rotate = log.rotate("hanh", old, old_private, new)
    log.enroll_passkey("hanh", hanh_auth, by="hanh", method="rotation", rotated_by=rotate)
    log.revoke(old, reason="rotated", by="hanh")
    log.confirm("hanh", new, hanh_auth)
    for number in ("2024-2025/0002", "2024-2025/0003"):
        log.step(hanh_auth, "hanh", new, "submit", number, "submitted", "proposer")
    # lan forwards both with one prompt.
    batch = [
        log.step_decision("lan", lan, "forward", n, "forwarded", "reviewer")
        for n in ("2024-2025/0002", "2024-2025/0003")
    ]
    signature = log.sign_batch(lan_auth, batch)
    batch_seqs = [log.v2(d, signature) for d in batch]
    # minh lost his phone: the admin enrolls a recovery key and revokes the old one.
    minh_new_auth = SoftAuthenticator()
    minh_new = log.enroll_passkey("minh", minh_new_auth, method="recovery")
    log.revoke(minh, reason="lost phone")
    log.confirm("minh", minh_new, minh_new_auth)
    recovered = log.step(
        minh_new_auth, "minh", minh_new, "approve", "2024-2025/0002", "approved", "approver"
    )
    pay = log.step(thu_key, "thu", thu, "pay", "2024-2025/0002", "paid", "accountant", payment=PAY)
    return s, {
        "rotate": rotate,
        "batch": batch_seqs,
        "recovered": recovered,
        "pay": pay,
        "hanh_new": new,
        "minh_new": minh_new,
    }


def test_mixed_v1_v2_log_with_rotation_batch_and_recovery_verifies(tmp_path: Path) -> None:
    s, _ = full_history()
    report = verify(s.log, tmp_path)
    assert report.valid, report.problems
    assert report.requests["2024-2025/0001"]["state"] == "paid"
    assert report.requests["2024-2025/0002"]["state"] == "paid"
    assert report.requests["2024-2025/0003"]["state"] == "forwarded"


def test_people_report_lists_keys_grants_and_flags(tmp_path: Path) -> None:
    s, seqs = full_history()
    people = verify(s.log, tmp_path).people
    hanh = people["hanh"]
    assert [(g["role"], g["granted_by"]) for g in hanh["roles"]] == [("proposer", "admin")]
    methods = [(k["kind"], k["method"], k["enrolled_by"]) for k in hanh["keys"]]
    assert methods == [("server-held", "legacy", "setup"), ("passkey", "rotation", "hanh")]
    assert hanh["keys"][1]["rotated_by"] == seqs["rotate"]
    assert hanh["keys"][0]["revoked_by"] == "hanh"
    assert hanh["flags"]["server_held_key_used"] == 2  # the v1 submit and the key.rotate
    minh = people["minh"]
    assert [k["method"] for k in minh["keys"]] == ["enrollment", "recovery"]
    assert minh["keys"][1]["confirmed_seq"] is not None
    assert minh["flags"]["recovery_key_steps"] == [seqs["recovered"]]
    thu = people["thu"]
    assert seqs["pay"] in thu["server_held_steps"]
    assert thu["flags"]["server_held_key_used"] == len(thu["server_held_steps"]) == 2
    assert people["admin"]["flags"]["admin_with_chain_role"] is False


def test_text_and_json_reports_show_people(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s, seqs = full_history()
    path = s.log.write(tmp_path / "b.zip")
    assert main([str(path), "--institution-key", s.log.fingerprint]) == 0
    text = capsys.readouterr().out
    assert f"FLAG steps signed by a key enrolled by recovery: seq {seqs['recovered']}" in text
    assert "FLAG server-held key used: 2 step(s)" in text
    assert "role approver: granted by admin at seq" in text
    assert main([str(path), "--institution-key", s.log.fingerprint, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["people"]["minh"]["flags"]["recovery_key_steps"] == [seqs["recovered"]]


def test_resumed_run_keeps_sign_counters_across_the_cut(tmp_path: Path) -> None:
    s = school()
    lan, lan_auth = s.lan
    v1_submit(s, "2024-2025/0001")
    first = verify_bundle(
        s.log.write(tmp_path / "a.zip"), institution_key=s.log.fingerprint, keep_state=True
    )
    assert first.valid and first.state is not None
    trusted = _final_note(tmp_path / "a.zip")
    assert first.state["sign_counters"][lan]["sign_count"] == lan_auth.sign_count
    # After the cut, lan's authenticator answers with a counter below the one already seen.
    decision = s.log.step_decision("lan", lan, "forward", "2024-2025/0001", "forwarded", "reviewer")
    s.log.v2(decision, s.log.sign(lan_auth, decision, sign_count=1))
    report = verify_bundle(
        s.log.write(tmp_path / "b.zip"),
        trusted_checkpoint=trusted,
        state=first.state,
        institution_key=s.log.fingerprint,
    )
    only(report, "sign-count-not-increasing")


def _final_note(path: Path) -> str:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        lines = archive.read("checkpoints.jsonl").decode().splitlines()
    return str(json.loads(lines[-1])["note"])


def test_line_with_sig_beside_a_v2_body_is_refused(tmp_path: Path) -> None:
    s = school()
    line = s.log.lines[-1]
    s.log.lines[-1] = line[:-2] + b',"sig":"' + b"0" * 128 + b'"}\n'
    report = verify(s.log, tmp_path)
    assert "non-canonical" in kinds(report)


# --- Attacks on the assertion. ---------------------------------------------------------------------


def _forward(s: School, **knobs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    lan, lan_auth = s.lan
    v1_submit(s, "2024-2025/0001")
    decision = s.log.step_decision("lan", lan, "forward", "2024-2025/0001", "forwarded", "reviewer")
    return decision, s.log.sign(lan_auth, decision, **knobs)


def test_altered_client_data_json(tmp_path: Path) -> None:
    s = school()
    decision, signature = _forward(s)
    client = json.loads(b64url_decode(signature["client_data_json"]))
    client["note"] = "added after signing"  # still a valid clientDataJSON, no longer signed
    signature["client_data_json"] = b64url_encode(json.dumps(client).encode())
    s.log.v2(decision, signature)
    only(verify(s.log, tmp_path), "bad-signature")


def test_wrong_origin(tmp_path: Path) -> None:
    s = school()
    decision, signature = _forward(s, origin="https://th-demo.edu.vn.evil.example")
    s.log.v2(decision, signature)
    only(verify(s.log, tmp_path), "origin-not-allowed")


def test_wrong_rp_id(tmp_path: Path) -> None:
    s = school()
    decision, signature = _forward(s, rp_id="evil.example")
    s.log.v2(decision, signature)
    only(verify(s.log, tmp_path), "rp-id-mismatch")


def test_user_verification_off(tmp_path: Path) -> None:
    s = school()
    decision, signature = _forward(s, uv=False)
    s.log.v2(decision, signature)
    only(verify(s.log, tmp_path), "user-verification-missing")


def test_assertion_replayed_on_another_decision(tmp_path: Path) -> None:
    s = school()
    decision, signature = _forward(s)
    other = dict(decision, comment="chuyển gấp")  # what the person never saw
    s.log.v2(other, signature)
    only(verify(s.log, tmp_path), "challenge-mismatch")


def test_same_decision_logged_twice_with_one_assertion(tmp_path: Path) -> None:
    s = school()
    lan, lan_auth = s.lan
    decision, signature = _forward(s)
    s.log.v2(decision, signature)
    # the same signed forward, logged again (request_prev now points before the first copy)
    s.log.v2(decision, signature)
    report = verify(s.log, tmp_path)
    assert "assertion-replayed" in kinds(report), report.problems


def test_sign_count_going_back(tmp_path: Path) -> None:
    s = school()
    lan, lan_auth = s.lan
    decision, signature = _forward(s)
    s.log.v2(decision, signature)
    v1_submit(s, "2024-2025/0002")
    late = s.log.step_decision("lan", lan, "forward", "2024-2025/0002", "forwarded", "reviewer")
    s.log.v2(late, s.log.sign(lan_auth, late, sign_count=1))  # a cloned authenticator
    only(verify(s.log, tmp_path), "sign-count-not-increasing")


def _twin(signature: dict[str, Any]) -> dict[str, Any]:
    """The other valid ES256 signature, (r, n - s), over the same assertion."""
    raw = b64url_decode(signature["signature"])
    return dict(signature, signature=b64url_encode(mirror_es256(raw)))


def test_es256_malleated_twin_logged_again_is_a_replay(tmp_path: Path) -> None:
    """(r, n-s) verifies too; logged as a second event it is still the same assertion."""
    s = school()
    decision, signature = _forward(s)
    s.log.v2(decision, signature)
    s.log.v2(decision, _twin(signature))
    assert "assertion-replayed" in kinds(verify(s.log, tmp_path))


def test_es256_malleated_twin_in_place_breaks_the_trusted_checkpoint(tmp_path: Path) -> None:
    """Swapped in place of the original, the twin verifies as a signature, but the body holding
    it hashes differently: the checkpoint the auditor kept no longer matches."""
    s = school()
    decision, signature = _forward(s)
    s.log.v2(decision, signature)
    honest_note = _final_note(s.log.write(tmp_path / "original.zip"))
    s.log.replace_last(lambda body: dict(body, signature=_twin(signature)))
    report = verify_bundle(
        s.log.write(tmp_path / "twin.zip"),
        trusted_checkpoint=honest_note,
        institution_key=s.log.fingerprint,
    )
    assert kinds(report) == {"trusted-checkpoint-mismatch"}, report.problems


def test_batch_event_whose_decision_is_not_in_its_list(tmp_path: Path) -> None:
    s = school()
    lan, lan_auth = s.lan
    v1_submit(s, "2024-2025/0001")
    v1_submit(s, "2024-2025/0002")
    batch = [
        s.log.step_decision("lan", lan, "forward", n, "forwarded", "reviewer")
        for n in ("2024-2025/0001", "2024-2025/0002")
    ]
    signature = s.log.sign_batch(lan_auth, batch[:1])  # the prompt covered only the first
    s.log.v2(batch[0], signature)
    s.log.v2(batch[1], signature)
    report = verify(s.log, tmp_path)
    only(report, "decision-not-in-batch")
    assert [p.seq for p in report.problems] == [s.log.seq - 1]


def test_server_held_signature_on_a_passkey_key(tmp_path: Path) -> None:
    """The server signs for lan with a key of its own, naming lan's passkey."""
    s = school()
    decision, _ = _forward(s)
    s.log.v2(decision, s.log.sign(Ed25519PrivateKey.generate(), decision))
    only(verify(s.log, tmp_path), "signature-kind-mismatch")


def test_passkey_signature_on_a_server_held_key(tmp_path: Path) -> None:
    s = school()
    thu, _ = s.thu
    v1_submit(s, "2024-2025/0001")
    decision = s.log.step_decision("thu", thu, "forward", "2024-2025/0001", "forwarded", "reviewer")
    s.log.v2(decision, s.log.sign(SoftAuthenticator(), decision))
    assert "signature-kind-mismatch" in kinds(verify(s.log, tmp_path))


# --- Attacks on keys and roles. --------------------------------------------------------------------


def test_admin_enrolls_a_key_for_himself(tmp_path: Path) -> None:
    s = school()
    auth = SoftAuthenticator()
    kid = s.log.enroll_passkey("admin", auth, by="admin")
    s.log.confirm("admin", kid, auth)
    report = verify(s.log, tmp_path)
    only(report, "self-enrollment")


def test_admin_grants_himself_approver(tmp_path: Path) -> None:
    s = school()
    s.log.roles("admin", ["admin", "approver"], by="admin")
    report = verify(s.log, tmp_path)
    assert kinds(report) == {"self-grant", "admin-with-chain-role"}, report.problems
    assert verify(s.log, tmp_path, "c.zip").people["admin"]["flags"]["admin_with_chain_role"]


def test_admin_with_chain_role_granted_by_another_admin(tmp_path: Path) -> None:
    s = school()
    s.log.roles("root", ["admin"], by="setup")
    s.log.roles("admin", ["admin", "approver"], by="root")
    only(verify(s.log, tmp_path), "admin-with-chain-role")


def test_grant_by_someone_who_is_not_admin(tmp_path: Path) -> None:
    s = school()
    s.log.roles("hanh", ["proposer", "approver"], by="lan")
    only(verify(s.log, tmp_path), "not-admin")


def test_grants_without_by_from_older_logs_are_reported_unknown(tmp_path: Path) -> None:
    s = school()
    s.log.roles("old", ["auditor"], by=None)
    report = verify(s.log, tmp_path)
    assert report.valid, report.problems
    assert report.people["old"]["roles"][0]["granted_by"] == "unknown"


def test_step_by_an_unconfirmed_key(tmp_path: Path) -> None:
    s = school()
    auth = SoftAuthenticator()
    kid = s.log.enroll_passkey("tam", auth)
    s.log.roles("tam", ["reviewer"])
    v1_submit(s, "2024-2025/0001")
    s.log.step(auth, "tam", kid, "forward", "2024-2025/0001", "forwarded", "reviewer")
    only(verify(s.log, tmp_path), "key-unconfirmed")


def test_key_confirm_signed_by_another_key(tmp_path: Path) -> None:
    s = school()
    auth = SoftAuthenticator()
    kid = s.log.enroll_passkey("tam", auth)
    lan, lan_auth = s.lan
    decision = s.log.decision(
        actor="lan", key=lan, action="key.confirm", role="owner", data={"key_id": kid}
    )
    s.log.v2(decision, s.log.sign(lan_auth, decision))
    assert "forbidden-step" in kinds(verify(s.log, tmp_path))


def test_rotation_not_signed_by_the_old_key(tmp_path: Path) -> None:
    """The server makes a key.rotate with a key of its own for hanh and rotates to its passkey."""
    s = school()
    old, _ = s.hanh
    rogue = Ed25519PrivateKey.generate()
    auth = SoftAuthenticator()
    rotate = s.log.rotate("hanh", old, rogue, passkey_key_id(auth.spki))
    new = s.log.enroll_passkey("hanh", auth, by="hanh", method="rotation", rotated_by=rotate)
    s.log.revoke(old, reason="rotated", by="hanh")
    s.log.confirm("hanh", new, auth)
    report = verify(s.log, tmp_path)
    assert kinds(report) == {"bad-signature", "rotation-invalid"}, report.problems


def test_rotation_pointing_at_no_key_rotate(tmp_path: Path) -> None:
    s = school()
    auth = SoftAuthenticator()
    new = s.log.enroll_passkey("hanh", auth, by="hanh", method="rotation", rotated_by=3)
    s.log.confirm("hanh", new, auth)
    only(verify(s.log, tmp_path), "rotation-invalid")


def test_new_key_beside_a_valid_one_is_neither_rotation_nor_recovery(tmp_path: Path) -> None:
    s = school()
    auth = SoftAuthenticator()
    kid = s.log.enroll_passkey("lan", auth)  # lan's first passkey is still valid
    s.log.confirm("lan", kid, auth)
    only(verify(s.log, tmp_path), "enrollment-over-valid-key")


def test_step_by_a_locked_account(tmp_path: Path) -> None:
    s = school()
    s.log.active("lan", False)
    decision, signature = _forward(s)
    s.log.v2(decision, signature)
    report = verify(s.log, tmp_path)
    only(report, "forbidden-step")
    assert "locked" in report.problems[0].detail


def test_step_by_a_revoked_key(tmp_path: Path) -> None:
    s = school()
    lan, _ = s.lan
    s.log.revoke(lan, reason="lost phone")
    decision, signature = _forward(s)
    s.log.v2(decision, signature)
    only(verify(s.log, tmp_path), "key-not-valid")


# --- Attacks on the decision's place in the log. ---------------------------------------------------


def test_request_prev_pointing_elsewhere(tmp_path: Path) -> None:
    """lan's forward was signed before the proposer's re-submission: it decided on other content."""
    s = school()
    lan, lan_auth = s.lan
    v1_submit(s, "2024-2025/0001")
    v1_submit(s, "2024-2025/0002")
    elsewhere = s.log.heads["2024-2025/0002"]
    s.log.step(
        lan_auth,
        "lan",
        lan,
        "forward",
        "2024-2025/0001",
        "forwarded",
        "reviewer",
        request_prev=elsewhere,
    )
    report = verify(s.log, tmp_path)
    only(report, "request-prev-mismatch")
    assert report.problems[0].request == "2024-2025/0001"


def test_decision_issued_after_it_was_logged(tmp_path: Path) -> None:
    s = school()
    lan, lan_auth = s.lan
    v1_submit(s, "2024-2025/0001")
    decision = s.log.step_decision("lan", lan, "forward", "2024-2025/0001", "forwarded", "reviewer")
    decision["issued"] = "2025-02-01T00:00:00Z"
    s.log.v2(decision, s.log.sign(lan_auth, decision))
    only(verify(s.log, tmp_path), "issued-out-of-range")


def test_v2_step_replayed_like_v1_separation_of_duties(tmp_path: Path) -> None:
    """The forwarder approves too (actor_not_forwarder), signed with a valid passkey."""
    s = school()
    lan, lan_auth = s.lan
    s.log.roles("lan", ["reviewer", "approver"])
    v1_submit(s, "2024-2025/0001")
    s.log.step(lan_auth, "lan", lan, "forward", "2024-2025/0001", "forwarded", "reviewer")
    s.log.step(lan_auth, "lan", lan, "approve", "2024-2025/0001", "approved", "approver")
    only(verify(s.log, tmp_path), "forbidden-step")


def test_v2_step_on_changed_content(tmp_path: Path) -> None:
    s = school()
    lan, lan_auth = s.lan
    v1_submit(s, "2024-2025/0001")
    s.log.step(
        lan_auth,
        "lan",
        lan,
        "forward",
        "2024-2025/0001",
        "forwarded",
        "reviewer",
        request_content=content(amount=450_000),
    )
    only(verify(s.log, tmp_path), "content-mismatch")


def test_batch_decisions_verify_on_their_own(tmp_path: Path) -> None:
    """Each event of a batch carries the whole list and the one assertion: no order needed."""
    s = school()
    lan, lan_auth = s.lan
    v1_submit(s, "2024-2025/0001")
    v1_submit(s, "2024-2025/0002")
    batch = [
        s.log.step_decision("lan", lan, "forward", n, "forwarded", "reviewer")
        for n in ("2024-2025/0001", "2024-2025/0002")
    ]
    signature = s.log.sign_batch(lan_auth, batch)
    assert signature["batch"] == [decision_hash(d) for d in batch]
    s.log.v2(batch[1], signature)
    s.log.v2(batch[0], signature)
    report = verify(s.log, tmp_path)
    assert report.valid, report.problems


def test_webauthn_json_from_browser_is_what_the_log_holds() -> None:
    auth = SoftAuthenticator()
    answer = auth.get(b"\x01" * 32)
    signature = webauthn_signature_from_json(answer)
    assert signature["credential"] == b64url_encode(auth.credential_id)
