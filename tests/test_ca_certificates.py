"""A person's CA certificate bound to them in the log, after they prove they hold its key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from expense_audit.errors import DataInvalid, NotPermitted
from expense_audit.verify import verify_bundle
from workflow.bundle import export_bundle
from workflow.models import AuditEvent

from .ca_tools import BASE, Authority, Person
from .factories import School


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority()


@pytest.fixture(scope="module")
def principal_cert(authority: Authority) -> Person:
    return authority.issue("NGUYỄN VĂN TOÀN")


def register(school: School, login: str, person: Person, *, by: str = "admin") -> str:
    """Admin starts, the person signs the challenge with the certificate's key; returns sha256."""
    runtime = school.runtime
    with runtime.transaction() as session:
        registry = runtime.certificates(session)
        directory = runtime.directory(session)
        user, admin = directory.get_user(login), directory.get_user(by)
        assert user is not None and admin is not None
        challenge = registry.start(user, person.der, by=admin)
        cert = registry.complete(user, challenge.nonce, person.sign(challenge.message))
        return cert.sha256


def test_certificate_registered_by_admin_is_in_the_log_and_the_verifier_lists_it(
    school: School, principal_cert: Person, tmp_path: Path
) -> None:
    sha = register(school, "toan", principal_cert)
    runtime = school.runtime
    with runtime.transaction() as session:
        event = session.query(AuditEvent).order_by(AuditEvent.seq.desc()).first()
        assert event is not None and event.action == "cert.register"
        bundle = tmp_path / "b.zip"
        export_bundle(session, bundle, institution=runtime.institution, now=runtime.now())
    report = verify_bundle(bundle, institution_key=runtime.institution.fingerprint)
    assert report.valid, report.problems
    (cert,) = report.people["toan"]["certificates"]
    assert cert["sha256"] == sha
    assert cert["subject"].startswith("CN=NGUYỄN VĂN TOÀN")
    assert cert["issuer"] == "CN=Test Issuing CA,O=Test CA Việt Nam,C=VN"
    assert cert["registered_by"] == "admin"
    assert cert["serial"] == format(principal_cert.cert.serial_number, "x")


def test_certificate_without_proof_of_possession_is_refused(
    school: School, authority: Authority, principal_cert: Person
) -> None:
    impostor = authority.issue("KẺ GIẢ MẠO")  # holds another key, not the certificate's
    runtime = school.runtime
    with runtime.transaction() as session:
        registry = runtime.certificates(session)
        directory = runtime.directory(session)
        toan, admin = directory.get_user("toan"), directory.get_user("admin")
        assert toan is not None and admin is not None
        challenge = registry.start(toan, principal_cert.der, by=admin)
        with pytest.raises(DataInvalid, match="token"):
            registry.complete(toan, challenge.nonce, impostor.sign(challenge.message))
        assert registry.of("toan") == []


def test_nobody_registers_a_certificate_for_themselves(
    school: School, authority: Authority
) -> None:
    runtime = school.runtime
    with runtime.transaction() as session:
        admin = runtime.directory(session).get_user("admin")
        assert admin is not None
        with pytest.raises(NotPermitted):
            runtime.certificates(session).start(admin, authority.issue("ADMIN").der, by=admin)


def test_another_person_cannot_finish_someone_elses_registration(
    school: School, principal_cert: Person
) -> None:
    runtime = school.runtime
    with runtime.transaction() as session:
        registry = runtime.certificates(session)
        directory = runtime.directory(session)
        toan, mai, admin = (directory.get_user(x) for x in ("toan", "mai", "admin"))
        assert toan is not None and mai is not None and admin is not None
        challenge = registry.start(toan, principal_cert.der, by=admin)
        with pytest.raises(NotPermitted):
            registry.complete(mai, challenge.nonce, principal_cert.sign(challenge.message))


def test_expired_certificate_cannot_be_registered(school: School, authority: Authority) -> None:
    old = authority.issue("HẾT HẠN", not_before=BASE - timedelta(days=800), days=30)
    runtime = school.runtime
    with runtime.transaction() as session:
        directory = runtime.directory(session)
        toan, admin = directory.get_user("toan"), directory.get_user("admin")
        assert toan is not None and admin is not None
        with pytest.raises(DataInvalid, match="hết hạn"):
            runtime.certificates(session).start(toan, old.der, by=admin)
