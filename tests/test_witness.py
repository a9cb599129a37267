"""The district as a witness (issue 16): it cosigns a school's checkpoint only when it extends the
last one it cosigned; a school that rewrote or cut its history gets no cosignature, and an auditor
holding the district's witness key notices. Tests named after the attack or problem they cover."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from expense_audit.checkpoint import open_checkpoint, sign_checkpoint
from expense_audit.cosignature import (
    Cosignature,
    CosignatureInvalid,
    CosignerKey,
    cosign,
    cosignature_message,
    cosignatures_in,
    verify_cosignature,
)
from expense_audit.merkle import consistency_proof
from expense_audit.verify import EXIT_INVALID, EXIT_UNREADABLE, EXIT_VALID, Report, verify_bundle
from expense_audit.verify.cosignatures import WitnessKeyInvalid
from workflow.audit import event_leaf, iter_events
from workflow.bundle import export_bundle
from workflow.cosigning import LocalWitness
from workflow.db import make_engine, session_factory
from workflow.models import AuditEvent, CheckpointCosignature, CheckpointRow, WitnessLog
from workflow.runtime import Runtime
from workflow.witness import (
    CheckpointNotSigned,
    ConsistencyRefused,
    ForkRefused,
    OldSizeMismatch,
    RollbackRefused,
    UnknownLog,
    Witness,
    WitnessKey,
)

from .factories import School

WITNESS_NAME = "phonggd.example.edu.vn/witness"


@dataclass
class District:
    key: WitnessKey
    sessions: sessionmaker[Session]
    engine: Engine
    runtime: Runtime

    def witness(self, session: Session) -> Witness:
        return Witness(session, key=self.key, clock=self.runtime.clock)

    def state(self) -> tuple[int, str | None, str | None]:
        with self.sessions() as session:
            row = session.get(WitnessLog, self.runtime.settings.origin)
            assert row is not None
            return row.size, row.root, row.note


@pytest.fixture
def district(runtime: Runtime, database_url: str, tmp_path: Path) -> Iterator[District]:
    """The district's witness, in its own database, with the school registered and configured."""
    # NOTE: on SQLite every transaction holds the file's write lock, so the witness needs its own
    # file; on PostgreSQL its table sits in the same database (as in the district's deployment).
    url = f"sqlite:///{tmp_path / 'witness.sqlite'}" if "sqlite" in database_url else database_url
    engine = make_engine(url)
    WitnessLog.__table__.create(engine, checkfirst=True)
    key = WitnessKey.create(tmp_path / "witness-keys", name=WITNESS_NAME, passphrase="district")
    sessions = session_factory(engine)
    with sessions.begin() as session:
        Witness(session, key=key, clock=runtime.clock).register_log(
            runtime.settings.origin, runtime.institution.public_raw
        )
    runtime.witness = LocalWitness(sessions, key=key, clock=runtime.clock)
    yield District(key, sessions, engine, runtime)
    engine.dispose()


def _checkpoint(runtime: Runtime) -> str:
    with runtime.transaction() as session:
        return runtime.checkpoint(session).note


def _cosignature_rows(runtime: Runtime) -> list[tuple[int, str]]:
    with runtime.transaction() as session:
        rows = session.scalars(select(CheckpointCosignature).order_by(CheckpointCosignature.id))
        return [(row.size, row.witness) for row in rows]


def _rewrite_event(runtime: Runtime, seq: int) -> None:
    """What whoever runs the database can do: turn off the append-only trigger, edit the past."""
    with runtime.transaction() as session:
        if runtime.engine.dialect.name == "sqlite":
            session.execute(text("DROP TRIGGER audit_events_no_update"))
        else:
            session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change"))
        session.execute(
            text("UPDATE audit_events SET hash = :h WHERE seq = :s"), {"h": "ab" * 32, "s": seq}
        )


# --- the format: facts and vectors of the spec --------------------------------------------------


def test_key_id_and_verifier_key_match_a_published_cosigner_key() -> None:
    # A native cosignature/v1 verifier key from transparency-dev/formats' tests: its key ID is
    # SHA-256(name || 0x0A || 0x04 || key)[:4], and the key type byte is 0x04.
    vkey = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
    key = CosignerKey.parse(vkey)
    assert key.key_id.hex() == "da77ade7"
    assert key.vkey == vkey


def test_timestamps_of_published_cosignatures_are_read_big_endian() -> None:
    # The example of C2SP tlog-cosignature (time 1679315147) and one of transparency-dev/formats.
    note = (
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
        "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
        "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
        "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dl"
        "rDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
    )
    (found,) = cosignatures_in(note)
    assert (found.name, found.key_id.hex(), found.timestamp) == (
        "witness.example.com/w1",
        "8d66cf3f",
        1679315147,
    )
    assert found.line == note.splitlines(keepends=True)[-1]  # read and written back byte for byte
    raw = base64.b64decode(
        "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFi"
        "EBYJXORmnFBOBA=="
    )
    assert struct.unpack(">Q", raw[4:12]) == (1727964367,)


def test_signed_message_is_header_time_line_and_whole_checkpoint_text() -> None:
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    assert cosignature_message(body, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\n" + body.encode()
    )
    with pytest.raises(CosignatureInvalid, match="2\\^63"):
        cosignature_message(body, 2**63)


def test_cosignature_covers_the_extension_lines_and_not_other_signatures() -> None:
    school, witness = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    checkpoint = sign_checkpoint("s.example/log", 5, b"\x07" * 32, school, now=datetime(2026, 1, 1))
    line = cosign(checkpoint.note, witness, name="w.example/w", timestamp=1767225600).line
    key = CosignerKey("w.example/w", witness.public_key().public_bytes_raw())
    assert verify_cosignature(checkpoint.note + line, key).timestamp == 1767225600
    retimed = checkpoint.note.replace("time 2026-01-01T00:00:00Z", "time 2026-01-02T00:00:00Z")
    with pytest.raises(CosignatureInvalid, match="does not verify"):
        verify_cosignature(retimed + line, key)


@pytest.mark.parametrize(
    ("vkey", "problem"),
    [
        ("w.example+12345678", "name\\+keyid\\+key"),
        ("w.example+00000000+" + base64.b64encode(b"\x04" + b"\x01" * 32).decode(), "key ID"),
        ("w.example+da77ade7+" + base64.b64encode(b"\x01" + b"\x01" * 32).decode(), "type 0x04"),
        ("w example+da77ade7+BOvN", "space"),
    ],
)
def test_malformed_witness_keys_are_refused(vkey: str, problem: str) -> None:
    with pytest.raises(CosignatureInvalid, match=problem):
        CosignerKey.parse(vkey)


# --- the witness ------------------------------------------------------------------------------


def test_valid_extension_is_cosigned(school: School, district: District) -> None:
    runtime = school.runtime
    school.to_state("submitted")
    first = _checkpoint(runtime)
    key = district.key.public
    assert verify_cosignature(first, key).name == WITNESS_NAME
    school.to_state("approved")
    second = _checkpoint(runtime)
    opened = open_checkpoint(second, runtime.institution.public_raw)
    assert verify_cosignature(second, key)
    assert district.state()[:2] == (opened.size, opened.root_hex)
    assert [size for size, _ in _cosignature_rows(runtime)] == [
        open_checkpoint(first, runtime.institution.public_raw).size,
        opened.size,
    ]


def test_rewritten_history_gets_no_cosignature_and_the_witness_keeps_its_state(
    school: School, district: District, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = school.runtime
    school.to_state("submitted")
    _checkpoint(runtime)
    before = district.state()
    _rewrite_event(runtime, 3)
    school.to_state("submitted")  # new events over the rewritten log, then a new checkpoint
    note = _checkpoint(runtime)
    assert open_checkpoint(note, runtime.institution.public_raw).size > before[0]
    assert cosignatures_in(note) == []
    assert "does not extend the one cosigned" in caplog.text  # refused as a fork, logged
    assert district.state() == before
    assert [size for size, _ in _cosignature_rows(runtime)] == [before[0]]


def test_fork_at_the_same_size_is_refused(school: School, district: District) -> None:
    runtime = school.runtime
    school.to_state("submitted")
    _checkpoint(runtime)
    before = district.state()
    forged = sign_checkpoint(
        runtime.settings.origin, before[0], b"\x01" * 32, runtime.institution.private
    )
    with district.sessions() as session, pytest.raises(ForkRefused, match="rewritten") as caught:
        district.witness(session).add_checkpoint(
            runtime.settings.origin, forged.note, old_size=before[0], proof=[]
        )
    assert caught.value.status == 409
    assert district.state() == before


def test_same_checkpoint_again_is_cosigned_again(school: School, district: District) -> None:
    runtime = school.runtime
    school.to_state("submitted")
    note = _checkpoint(runtime)
    plain = note[: note.index(f"\u2014 {WITNESS_NAME}")]  # the school's note, as submitted
    size = district.state()[0]
    with district.sessions() as session, session.begin():
        again = district.witness(session).add_checkpoint(
            runtime.settings.origin, plain, old_size=size, proof=[]
        )
    assert verify_cosignature(plain + again.line, district.key.public)
    assert district.state()[0] == size


def test_proof_that_does_not_verify_is_a_fork(school: School, district: District) -> None:
    runtime = school.runtime
    school.to_state("submitted")
    _checkpoint(runtime)
    before = district.state()
    school.to_state("submitted")
    with runtime.transaction() as session:
        leaves = [event_leaf(e.hash, e.sig) for e in iter_events(session)]
    from expense_audit.merkle import root_from_leaf_hashes

    bigger = sign_checkpoint(
        runtime.settings.origin,
        len(leaves),
        root_from_leaf_hashes(leaves),
        runtime.institution.private,
    )
    proof = consistency_proof(leaves, before[0])
    proof[0] = bytes(32)
    with district.sessions() as session, pytest.raises(ConsistencyRefused) as caught:
        district.witness(session).add_checkpoint(
            runtime.settings.origin, bigger.note, old_size=before[0], proof=proof
        )
    assert caught.value.status == 422
    assert district.state() == before


def test_rollback_to_an_older_checkpoint_is_refused(school: School, district: District) -> None:
    runtime = school.runtime
    school.to_state("submitted")
    older = _checkpoint(runtime)
    school.to_state("approved")
    _checkpoint(runtime)
    before = district.state()
    small = open_checkpoint(older, runtime.institution.public_raw)
    for old_size in (before[0], small.size):
        with district.sessions() as session, pytest.raises(RollbackRefused) as caught:
            district.witness(session).add_checkpoint(
                runtime.settings.origin, older, old_size=old_size, proof=[]
            )
        assert caught.value.latest_size == before[0]
    assert district.state() == before


def test_wrong_old_size_is_told_the_latest_size(school: School, district: District) -> None:
    runtime = school.runtime
    school.to_state("submitted")
    _checkpoint(runtime)
    size = district.state()[0]
    school.to_state("submitted")
    with runtime.transaction() as session:
        # The school lost its cosignature table: it asks from 0, is told the size, and retries.
        session.execute(CheckpointCosignature.__table__.delete())
    note = _checkpoint(runtime)
    assert district.state()[0] == open_checkpoint(note, runtime.institution.public_raw).size
    assert verify_cosignature(note, district.key.public)
    with district.sessions() as session, pytest.raises(OldSizeMismatch) as caught:
        district.witness(session).add_checkpoint(
            runtime.settings.origin, note, old_size=size, proof=[]
        )
    assert (caught.value.status, caught.value.latest_size) == (409, district.state()[0])


def test_unknown_origin_and_other_key_are_refused(school: School, district: District) -> None:
    runtime = school.runtime
    other = sign_checkpoint("other.edu.vn/expenses", 1, b"\x02" * 32, runtime.institution.private)
    with district.sessions() as session, pytest.raises(UnknownLog) as unknown:
        district.witness(session).add_checkpoint(
            "other.edu.vn/expenses", other.note, old_size=0, proof=[]
        )
    assert unknown.value.status == 404
    impostor = sign_checkpoint(
        runtime.settings.origin, 1, b"\x02" * 32, Ed25519PrivateKey.generate()
    )
    with district.sessions() as session, pytest.raises(CheckpointNotSigned) as unsigned:
        district.witness(session).add_checkpoint(
            runtime.settings.origin, impostor.note, old_size=0, proof=[]
        )
    assert unsigned.value.status == 403
    assert district.state() == (0, None, None)


def test_two_concurrent_submissions_are_not_both_cosigned(
    school: School, district: District
) -> None:
    runtime = school.runtime
    runtime.witness = None  # the school signs; the test submits by hand
    school.to_state("submitted")
    note = _checkpoint(runtime)
    origin = runtime.settings.origin
    outcome: list[object] = []
    first = district.sessions()
    first.begin()
    district.witness(first).add_checkpoint(origin, note, old_size=0, proof=[])

    def second() -> None:
        with district.sessions() as session, session.begin():
            try:
                district.witness(session).add_checkpoint(origin, note, old_size=0, proof=[])
                outcome.append("cosigned")
            except OldSizeMismatch as exc:
                outcome.append(exc.latest_size)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=0.5)  # it waits on the row lock while the first is open
    assert outcome == []
    first.commit()
    first.close()
    thread.join()
    assert outcome == [open_checkpoint(note, runtime.institution.public_raw).size]


def test_witness_key_is_encrypted_at_rest(tmp_path: Path) -> None:
    key = WitnessKey.create(tmp_path, name=WITNESS_NAME, passphrase="district secret")
    assert b"ENCRYPTED" in (tmp_path / "witness.key").read_bytes()
    assert (tmp_path / "witness.key").stat().st_mode & 0o077 == 0
    assert WitnessKey.from_directory(tmp_path, passphrase="district secret").vkey == key.vkey
    from workflow.witness import WitnessKeyMissing

    with pytest.raises(WitnessKeyMissing):
        WitnessKey.from_directory(tmp_path, passphrase="wrong")


# --- the bundle and audit-verify -----------------------------------------------------------------


@pytest.fixture
def cosigned_bundle(school: School, district: District, tmp_path: Path) -> Path:
    runtime = school.runtime
    school.to_state("submitted")
    _checkpoint(runtime)
    school.to_state("approved")
    path = tmp_path / "bundle.zip"
    with runtime.transaction() as session:
        export_bundle(
            session, path, institution=runtime.institution, now=runtime.now(), cosign=runtime.cosign
        )
    return path


def _verify(path: Path, school: School, *keys: str, now: datetime | None = None) -> Report:
    return verify_bundle(
        path,
        institution_key=school.runtime.institution.fingerprint,
        witness_keys=keys,
        now=now,
    )


def _kinds(report: Report) -> set[str]:
    return {p.kind for p in report.problems}


def _checkpoint_lines(path: Path) -> list[dict[str, object]]:
    with zipfile.ZipFile(path) as archive:
        raw = archive.read("checkpoints.jsonl").decode()
    return [json.loads(line) for line in raw.splitlines()]


def _replace_final_note(path: Path, target: Path, note: str) -> Path:
    entries = _checkpoint_lines(path)
    entries[-1]["note"] = note
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    files["checkpoints.jsonl"] = "".join(json.dumps(e) + "\n" for e in entries).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return target


def _final_note(path: Path) -> str:
    note = _checkpoint_lines(path)[-1]["note"]
    assert isinstance(note, str)
    return note


def test_bundle_carries_cosigned_checkpoints_and_old_verifier_rules_still_pass(
    cosigned_bundle: Path, school: School, district: District
) -> None:
    entries = _checkpoint_lines(cosigned_bundle)
    assert all(set(e) == {"size", "root", "note"} for e in entries)  # the line form is unchanged
    assert len(cosignatures_in(_final_note(cosigned_bundle))) == 1
    with school.runtime.transaction() as session:  # the stored note stays the school's alone
        assert all(
            cosignatures_in(row.note) == [] for row in session.scalars(select(CheckpointRow))
        )
    report = _verify(cosigned_bundle, school)
    assert report.valid, report.problems
    assert {c["verified"] for c in report.cosignatures} == {None}  # found, not checked


def test_verifier_with_the_witness_key_reports_and_accepts(
    cosigned_bundle: Path, school: School, district: District
) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "expense_audit.verify",
            str(cosigned_bundle),
            "--institution-key",
            school.runtime.institution.fingerprint,
            "--witness-key",
            district.key.vkey,
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == EXIT_VALID, run.stdout + run.stderr
    result = json.loads(run.stdout)
    final = _checkpoint_lines(cosigned_bundle)[-1]["size"]
    assert result["witnesses"] == [district.key.vkey]
    found = [c for c in result["cosignatures"] if c["checkpoint_size"] == final]
    assert found and found[0]["witness"] == WITNESS_NAME and found[0]["verified"] is True
    assert found[0]["key_id"] == district.key.public.key_id.hex()
    text_run = subprocess.run(
        [sys.executable, "-m", "expense_audit.verify", str(cosigned_bundle)],
        capture_output=True,
        text=True,
    )
    assert f"cosignature: {WITNESS_NAME} (key {found[0]['key_id']})" in text_run.stdout


def test_uncosigned_final_checkpoint_is_refused_given_the_witness_key(
    school: School, district: District, tmp_path: Path
) -> None:
    school.to_state("submitted")
    path = tmp_path / "plain.zip"
    with school.runtime.transaction() as session:  # exported without the witness
        export_bundle(
            session, path, institution=school.runtime.institution, now=school.runtime.now()
        )
    assert _verify(path, school).valid
    report = _verify(path, school, district.key.vkey)
    assert _kinds(report) == {"cosignature-missing"}
    assert report.exit_code == EXIT_INVALID


def test_forged_cosignature_is_refused(
    cosigned_bundle: Path, school: School, district: District, tmp_path: Path
) -> None:
    note = _final_note(cosigned_bundle)
    (found,) = cosignatures_in(note)
    forged = Cosignature(found.name, found.key_id, found.timestamp, bytes(64)).line
    tampered = _replace_final_note(
        cosigned_bundle, tmp_path / "t.zip", note.replace(found.line, forged)
    )
    assert "cosignature-invalid" in _kinds(_verify(tampered, school, district.key.vkey))


def test_cosignature_by_another_key_does_not_count(
    cosigned_bundle: Path, school: School, district: District, tmp_path: Path
) -> None:
    note = _final_note(cosigned_bundle)
    (found,) = cosignatures_in(note)
    other = Ed25519PrivateKey.generate()  # same witness name, the insider's own key
    line = cosign(note, other, name=WITNESS_NAME, timestamp=found.timestamp).line
    tampered = _replace_final_note(
        cosigned_bundle, tmp_path / "t.zip", note.replace(found.line, line)
    )
    report = _verify(tampered, school, district.key.vkey)
    assert _kinds(report) == {"cosignature-missing"}
    assert [c["verified"] for c in report.cosignatures if c["key_id"] != found.key_id.hex()] == [
        None
    ]


def test_cosignature_moved_from_another_checkpoint_is_refused(
    cosigned_bundle: Path, school: School, district: District, tmp_path: Path
) -> None:
    entries = _checkpoint_lines(cosigned_bundle)
    earlier = next(str(e["note"]) for e in entries[:-1] if cosignatures_in(str(e["note"])))
    (moved,) = cosignatures_in(earlier)
    note = _final_note(cosigned_bundle)
    (own,) = cosignatures_in(note)
    tampered = _replace_final_note(
        cosigned_bundle, tmp_path / "t.zip", note.replace(own.line, moved.line)
    )
    assert "cosignature-invalid" in _kinds(_verify(tampered, school, district.key.vkey))


@pytest.mark.parametrize("shift", [timedelta(days=-2), timedelta(days=400)])
def test_cosignature_with_an_implausible_time_is_refused(
    cosigned_bundle: Path, school: School, district: District, tmp_path: Path, shift: timedelta
) -> None:
    note = _final_note(cosigned_bundle)
    (own,) = cosignatures_in(note)
    # Signed by the witness's own key (a witness with a wrong clock, or a stolen key).
    line = cosign(
        note,
        district.key.private,
        name=WITNESS_NAME,
        timestamp=own.timestamp + int(shift.total_seconds()),
    ).line
    tampered = _replace_final_note(
        cosigned_bundle, tmp_path / "t.zip", note.replace(own.line, line)
    )
    now = datetime.fromtimestamp(own.timestamp, UTC) + timedelta(days=1)
    report = _verify(tampered, school, district.key.vkey, now=now)
    assert _kinds(report) == {"cosignature-time-implausible"}


def test_malformed_witness_key_is_exit_2(cosigned_bundle: Path) -> None:
    with pytest.raises(WitnessKeyInvalid):
        verify_bundle(cosigned_bundle, witness_keys=["not-a-key"])
    run = subprocess.run(
        [sys.executable, "-m", "expense_audit.verify", str(cosigned_bundle), "--witness-key", "x"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == EXIT_UNREADABLE


def test_rows_of_rewritten_history_do_not_reach_the_bundle_as_cosigned(
    school: School, district: District, tmp_path: Path
) -> None:
    school.to_state("submitted")
    _checkpoint(school.runtime)
    _rewrite_event(school.runtime, 3)
    school.to_state("submitted")
    path = tmp_path / "bundle.zip"
    runtime = school.runtime
    with runtime.transaction() as session:
        export_bundle(
            session, path, institution=runtime.institution, now=runtime.now(), cosign=runtime.cosign
        )
    report = _verify(path, school, district.key.vkey)
    assert "cosignature-missing" in _kinds(report)
    with runtime.transaction() as session:
        assert session.get(AuditEvent, 3) is not None


# --- the witness as its own service: tlog-witness over HTTP ---------------------------------------


@pytest.fixture
def service(district: District, tmp_path: Path) -> Iterator[str]:
    """The district's witness app on a loopback port, over the district's database and key."""
    from werkzeug.serving import make_server

    from webapp.witness_service import WitnessSettings, create_witness_app

    settings = WitnessSettings(
        database_url=str(district.engine.url.render_as_string(hide_password=False)),
        keys_dir=tmp_path / "witness-keys",
        passphrase="district",
    )
    app = create_witness_app({"WITNESS_SETTINGS": settings, "CLOCK": district.runtime.clock})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    app.extensions["witness"].engine.dispose()


def test_school_is_cosigned_over_http_and_retries_after_a_409(
    school: School, district: District, service: str
) -> None:
    from workflow.cosigning import HttpWitness

    runtime = school.runtime
    runtime.witness = HttpWitness(service)
    runtime.witness_key = district.key.public  # the school checks what comes back
    school.to_state("submitted")
    first = _checkpoint(runtime)
    assert verify_cosignature(first, district.key.public)
    school.to_state("submitted")
    with runtime.transaction() as session:  # lost track of what was cosigned: asks from 0
        session.execute(CheckpointCosignature.__table__.delete())
    second = _checkpoint(runtime)
    assert verify_cosignature(second, district.key.public)
    assert district.state()[0] == open_checkpoint(second, runtime.institution.public_raw).size


def test_http_answers_follow_tlog_witness(school: School, district: District, service: str) -> None:
    import urllib.error
    import urllib.request

    from workflow.witness import add_checkpoint_body

    runtime = school.runtime
    runtime.witness = None
    school.to_state("submitted")
    note = _checkpoint(runtime)
    size = open_checkpoint(note, runtime.institution.public_raw).size

    def post(body: bytes) -> tuple[int, str, str]:
        url = f"{service}/add-checkpoint"  # http on loopback
        request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request) as response:  # noqa: S310
                return response.status, response.headers["Content-Type"], response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()

    status, _, body = post(add_checkpoint_body(0, [], note))
    assert status == 200 and body.startswith(f"\u2014 {WITNESS_NAME} ")
    assert verify_cosignature(note + body, district.key.public)
    status, kind, body = post(add_checkpoint_body(0, [], note))
    assert (status, kind, body) == (409, "text/x.tlog.size", f"{size}\n")
    assert post(add_checkpoint_body(size + 1, [], note))[0] == 400
    assert post(b"old 0\n\nnot a note\n")[0] == 404
    forged = sign_checkpoint(runtime.settings.origin, 1, b"\x02" * 32, Ed25519PrivateKey.generate())
    assert post(add_checkpoint_body(0, [], forged.note))[0] == 403
    assert post(b"old 01\n\n" + note.encode())[0] == 400


def test_witness_cli_creates_the_key_registers_a_school_and_shows_it(
    runner: object, school: School, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask.testing import FlaskCliRunner

    assert isinstance(runner, FlaskCliRunner)
    monkeypatch.setenv("WITNESS_DATABASE_URL", f"sqlite:///{tmp_path / 'district.sqlite'}")
    monkeypatch.setenv("WITNESS_KEYS", str(tmp_path / "district-keys"))
    monkeypatch.setenv("WITNESS_KEY_PASSPHRASE", "district secret")
    created = runner.invoke(args=["witness", "init", WITNESS_NAME])
    assert created.exit_code == 0, created.output
    vkey = created.output.split("verifier key: ")[1].strip()
    assert CosignerKey.parse(vkey).name == WITNESS_NAME
    origin, public = school.runtime.settings.origin, school.runtime.institution.public_raw.hex()
    registered = runner.invoke(args=["witness", "register", origin, public])
    assert registered.exit_code == 0, registered.output
    shown = runner.invoke(args=["witness", "show"])
    assert f"verifier key: {vkey}" in shown.output and f"{origin}: size 0" in shown.output
    again = runner.invoke(args=["witness", "register", origin, "ab" * 32])
    assert again.exit_code == 1 and "another institution key" in again.output


def test_downloaded_bundle_and_cli_export_carry_the_final_cosignature(
    app: object, runner: object, school: School, district: District, tmp_path: Path
) -> None:
    from flask import Flask
    from flask.testing import FlaskCliRunner

    from .web import Browser

    assert isinstance(app, Flask) and isinstance(runner, FlaskCliRunner)
    school.to_state("submitted")
    kiem = Browser(app).login("kiem")
    download = kiem.post("/audit/bundle.zip")
    (tmp_path / "web.zip").write_bytes(download.data)
    download.close()
    assert _verify(tmp_path / "web.zip", school, district.key.vkey).valid
    school.to_state("submitted")
    exported = runner.invoke(args=["audit", "export", str(tmp_path / "cli.zip")])
    assert exported.exit_code == 0, exported.output
    report = _verify(tmp_path / "cli.zip", school, district.key.vkey)
    assert report.valid, report.problems
    printed = runner.invoke(args=["checkpoint"])
    assert f"\u2014 {WITNESS_NAME} " in printed.output  # `flask checkpoint` shows it cosigned
