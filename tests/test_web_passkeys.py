"""Passkeys in the web app, driven through its JSON endpoints by a software authenticator
(tests/softauthn.py) that answers exactly as a phone's browser would."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask
from sqlalchemy import select

from expense_audit.decision import decision_hash
from expense_audit.webauthn import EDDSA, ES256, b64url_decode
from workflow.demo import DEMO_PASSWORD
from workflow.enrollment import SETUP
from workflow.models import AuditEvent, SigningFailure
from workflow.service import draft_content

from .factories import SECRET, School
from .softauthn import SoftAuthenticator
from .web import AuthActions, Browser, text

RP_ID = "chi.th-demo.edu.vn"  # the host of the test settings' base URL
ORIGIN = "https://chi.th-demo.edu.vn"
CODE = re.compile(r"\b[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}\b")


def _phone(alg: int = ES256) -> SoftAuthenticator:
    return SoftAuthenticator(alg=alg, rp_id=RP_ID, origin=ORIGIN)


def _register(
    browser: Browser, phone: SoftAuthenticator, *, password: str = DEMO_PASSWORD, **how: str
) -> dict[str, Any]:
    """Create the passkey and enter it (code or old secret); returns the confirmation payload."""
    browser.get("/signing-key")
    options = browser.post_json("/signing-key/passkey/options", {"password": password})
    assert options.status_code == 200, text(options)
    public_key = options.get_json()["publicKey"]
    assert public_key["authenticatorSelection"]["userVerification"] == "required"
    assert [p["alg"] for p in public_key["pubKeyCredParams"]] == [ES256, EDDSA]
    credential = phone.create(
        b64url_decode(public_key["challenge"]), user_id=b64url_decode(public_key["user"]["id"])
    )
    answer = browser.post_json(
        "/signing-key/passkey", {"password": password, "credential": credential, **how}
    )
    assert answer.status_code == 200, text(answer)
    return dict(answer.get_json())


def _confirm(browser: Browser, phone: SoftAuthenticator, pending: dict[str, Any]) -> None:
    credential = phone.get(b64url_decode(pending["publicKey"]["challenge"]))
    done = browser.post_json(
        "/signing-key/passkey/confirm", {"decision": pending["decision"], "credential": credential}
    )
    assert done.status_code == 200, text(done)


def _with_passkey(auth: AuthActions, login: str, alg: int = ES256) -> tuple[Browser, Any]:
    """A demo person (server-held key today) moves to a passkey and confirms it."""
    browser, phone = auth.session(login), _phone(alg)
    _confirm(browser, phone, _register(browser, phone, old_secret=SECRET))
    return browser, phone


def _sign(
    browser: Browser, phone: SoftAuthenticator, number: str, trigger: str, **fields: Any
) -> Any:
    prepared = browser.post_json(f"/requests/{number}/decision", {"trigger": trigger, **fields})
    assert prepared.status_code == 200, text(prepared)
    payload = prepared.get_json()
    credential = phone.get(b64url_decode(payload["publicKey"]["challenge"]))
    return browser.post_json(
        f"/requests/{number}/sign", {"decision": payload["decision"], "credential": credential}
    )


def _event(school: School, seq: int | None = None) -> dict[str, Any]:
    with school.runtime.transaction() as session:
        query = select(AuditEvent).order_by(AuditEvent.seq.desc())
        if seq is not None:
            query = query.where(AuditEvent.seq == seq)
        return dict(json.loads(session.scalars(query).first().body))  # type: ignore[union-attr]


def test_newcomer_registers_a_passkey_with_the_admins_code_and_signs_a_submit(
    app: Flask, auth: AuthActions, school: School
) -> None:
    with school.runtime.transaction() as session:
        school.runtime.directory(session).create_user(
            login="lan",
            name="Phạm Thị Lan",
            email="lan@th-demo.edu.vn",
            roles=["proposer"],
            password="lan-mat-khau-dai",
            signing_secret=None,
            by=SETUP,
        )
    admin = auth.session("admin")
    admin.get("/admin/users")
    issued = admin.post("/admin/users/lan/code", {"purpose": "enrollment"})
    code = CODE.search(text(issued))
    assert code, text(issued)[:2000]

    lan = Browser(app).login("lan", "lan-mat-khau-dai")
    assert "passkey" in text(lan.get("/signing-key"))
    phone = _phone(EDDSA)
    pending = _register(lan, phone, password="lan-mat-khau-dai", code=code.group(0))
    enroll = _event(school, pending["decision"] and None)
    assert enroll["action"] == "key.enroll" and enroll["data"]["by"] == "admin"
    # Until confirmed, the new key signs nothing else.
    number = school.draft(owner="lan")
    refused = lan.post_json(f"/requests/{number}/decision", {"trigger": "submit"})
    assert refused.status_code == 422 and "chưa được xác nhận" in refused.get_json()["message"]
    _confirm(lan, phone, pending)
    assert _event(school)["decision"]["action"] == "key.confirm"

    page = text(lan.get(f"/requests/{number}"))
    assert "sign.js" in page and 'name="secret"' not in page  # no secret form for a passkey
    signed = _sign(lan, phone, number, "submit")
    assert signed.status_code == 200 and signed.get_json()["ok"], text(signed)
    event = _event(school)
    assert event["v"] == 2 and event["decision"]["action"] == "submit"
    assert event["signature"]["kind"] == "webauthn" and event["signature"]["batch"] is None
    assert school.request(number).state == "submitted"  # type: ignore[union-attr]
    assert "Đã ký và ghi nhận" in text(lan.get(f"/requests/{number}"))
    assert (
        "Sai mật khẩu"
        in lan.post_json("/signing-key/passkey/options", {"password": "wrong"}).get_json()[
            "message"
        ]
    )


def test_code_is_single_use_and_the_registration_challenge_too(
    app: Flask, auth: AuthActions, school: School
) -> None:
    hanh = auth.session("hanh")
    phone = _phone()
    hanh.get("/signing-key")
    options = hanh.post_json("/signing-key/passkey/options", {"password": DEMO_PASSWORD})
    public_key = options.get_json()["publicKey"]
    credential = phone.create(b64url_decode(public_key["challenge"]), user_id=b"x")
    body = {"password": DEMO_PASSWORD, "credential": credential, "code": "AAAA-BBBB-CCCC-DDDD"}
    wrong_code = hanh.post_json("/signing-key/passkey", body)
    assert wrong_code.status_code == 422 and "Mã đăng ký" in wrong_code.get_json()["message"]
    again = hanh.post_json("/signing-key/passkey", {**body, "code": "", "old_secret": SECRET})
    assert again.status_code == 409  # the challenge was used up by the first answer
    assert school.runtime.directory  # the server-held key is still hers
    with school.runtime.transaction() as session:
        key = school.runtime.directory(session).active_key("hanh")
        assert key is not None and key.kind == "server-held"


def test_an_assertion_over_another_decision_is_refused_and_counted(
    app: Flask, auth: AuthActions, school: School
) -> None:
    hanh, phone = _with_passkey(auth, "hanh")
    number = school.draft()
    before = school.snapshot(number)
    prepared = hanh.post_json(f"/requests/{number}/decision", {"trigger": "submit"}).get_json()
    other = hanh.post_json(
        f"/requests/{number}/decision", {"trigger": "withdraw", "comment": "thôi"}
    ).get_json()
    # The phone is shown the withdrawal, the server is handed the submit: refused.
    credential = phone.get(b64url_decode(other["publicKey"]["challenge"]))
    refused = hanh.post_json(
        f"/requests/{number}/sign", {"decision": prepared["decision"], "credential": credential}
    )
    assert refused.status_code == 422
    assert "Chữ ký không hợp lệ" in refused.get_json()["message"]
    assert school.snapshot(number) == before
    with school.runtime.transaction() as session:
        failures = session.scalars(select(SigningFailure)).all()
        assert [(f.login, f.reason) for f in failures] == [("hanh", "passkey-refused")]
    assert "passkey bị từ chối" in text(hanh.get("/account")).lower()
    admin = auth.session("admin")
    assert "passkey bị từ chối" in text(admin.get("/admin/users")).lower()


def test_decision_shows_what_will_be_signed(app: Flask, auth: AuthActions, school: School) -> None:
    hanh, _phone_ = _with_passkey(auth, "hanh")
    number = school.draft()
    payload = hanh.post_json(
        f"/requests/{number}/decision", {"trigger": "submit", "comment": "kính trình"}
    ).get_json()
    decision = payload["decision"]
    assert decision["data"]["content"] == {**draft_content_of(school, number)}
    assert decision["comment"] == "kính trình"
    assert payload["summary"]["action"] == "Gửi đề xuất"
    assert payload["summary"]["line"].startswith("Phần mềm quản lý tài sản công")
    assert payload["publicKey"]["rpId"] == RP_ID
    assert payload["publicKey"]["userVerification"] == "required"


def draft_content_of(school: School, number: str) -> dict[str, Any]:
    with school.runtime.transaction() as session:
        current = school.runtime.service(session).current(number)
        assert current.draft is not None
        return draft_content(current.draft)


def test_concurrent_decision_says_who_acted_first(
    app: Flask, auth: AuthActions, school: School
) -> None:
    number = school.to_state("submitted")
    long, phone = _with_passkey(auth, "long")
    prepared = long.post_json(
        f"/requests/{number}/decision", {"trigger": "forward", "comment": "hợp lý"}
    ).get_json()
    school.act(number, "withdraw", "hanh")  # while Long looks at his phone
    credential = phone.get(b64url_decode(prepared["publicKey"]["challenge"]))
    late = long.post_json(
        f"/requests/{number}/sign", {"decision": prepared["decision"], "credential": credential}
    )
    assert late.status_code == 409
    message = late.get_json()["message"]
    assert "Võ Thị Hạnh" in message and "«Rút đề xuất»" in message and "trước bạn" in message
    assert re.search(r"lúc \d{2}:\d{2} \d{2}/\d{2}/\d{4}", message)  # Vietnam time
    assert school.request(number).state == "withdrawn"  # type: ignore[union-attr]


def test_bulk_approval_asks_once_and_each_event_carries_the_batch(
    app: Flask, auth: AuthActions, school: School
) -> None:
    numbers = [
        school.to_state("forwarded", line=line, amount=amount)
        for line, amount in (
            ("SW-ASSET", "1.800.000"),
            ("SW-IMAS", "1.800.000"),
            ("WEB", "2.400.000"),
        )
    ]
    toan, phone = _with_passkey(auth, "toan")
    toan.get("/approvals")
    prepared = toan.post_json(
        "/approvals/decisions", {"numbers": numbers, "comment": "Đồng ý"}
    ).get_json()
    assert prepared["ok"] and len(prepared["decisions"]) == 3
    assert prepared["hashes"] == [decision_hash(d) for d in prepared["decisions"]]
    phone_calls = phone.sign_count
    credential = phone.get(b64url_decode(prepared["publicKey"]["challenge"]))
    answer = toan.post_json(
        "/approvals/sign", {"decisions": prepared["decisions"], "credential": credential}
    ).get_json()
    assert answer["refused"] == []
    assert phone.sign_count == phone_calls + 1  # one prompt
    assert answer["approved"] == numbers and answer["refused"] == []
    for number in numbers:
        assert school.request(number).state == "approved"  # type: ignore[union-attr]
    with school.runtime.transaction() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(3)).all()
        batches = {tuple(json.loads(r.body)["signature"]["batch"]) for r in rows}
    assert batches == {tuple(prepared["hashes"])}


def test_a_cloned_passkey_claiming_a_batch_cannot_repeat_the_last_counter(
    app: Flask, auth: AuthActions, school: School
) -> None:
    """Toàn's phone approves a batch at counter n. A copy of his passkey signs another batch at
    the same counter n (a clone's trick to sign without raising the counter the real phone
    would trip on): refused, nothing recorded; the real batch's own steps were all accepted."""
    numbers = [school.to_state("forwarded"), school.to_state("forwarded", line="WEB")]
    later = school.to_state("forwarded", line="SW-IMAS", amount="1.800.000")
    toan, phone = _with_passkey(auth, "toan")
    prepared = toan.post_json("/approvals/decisions", {"numbers": numbers}).get_json()
    credential = phone.get(b64url_decode(prepared["publicKey"]["challenge"]))
    answer = toan.post_json(
        "/approvals/sign", {"decisions": prepared["decisions"], "credential": credential}
    ).get_json()
    assert answer["approved"] == numbers
    clone = toan.post_json("/approvals/decisions", {"numbers": [later]}).get_json()
    forged = phone.get(b64url_decode(clone["publicKey"]["challenge"]), sign_count=phone.sign_count)
    before = school.snapshot(later)
    refused = toan.post_json(
        "/approvals/sign", {"decisions": clone["decisions"], "credential": forged}
    ).get_json()
    assert refused["approved"] == [] and [r["number"] for r in refused["refused"]] == [later]
    assert "bộ đếm không tăng" in refused["refused"][0]["message"]
    assert school.snapshot(later) == before


def test_bulk_approval_reports_the_refused_ones(
    app: Flask, auth: AuthActions, school: School
) -> None:
    first = school.to_state("forwarded")
    second = school.to_state("forwarded", line="WEB", amount="2.400.000")
    toan, phone = _with_passkey(auth, "toan")
    prepared = toan.post_json("/approvals/decisions", {"numbers": [first, second]}).get_json()
    # Meanwhile, on his other tab, Toàn approves the second one on its own.
    assert _sign(toan, phone, second, "approve").status_code == 200
    credential = phone.get(b64url_decode(prepared["publicKey"]["challenge"]))
    answer = toan.post_json(
        "/approvals/sign", {"decisions": prepared["decisions"], "credential": credential}
    ).get_json()
    assert answer["approved"] == [first]
    assert [r["number"] for r in answer["refused"]] == [second]
    assert "trước bạn" in answer["refused"][0]["message"]
    flashed = text(toan.get("/approvals"))
    assert f"Đã duyệt: {first}" in flashed and "trước bạn" in flashed


def test_bulk_approval_with_an_altered_decision_records_nothing(
    app: Flask, auth: AuthActions, school: School
) -> None:
    first = school.to_state("forwarded")
    second = school.to_state("forwarded", line="WEB", amount="2.400.000")
    toan, phone = _with_passkey(auth, "toan")
    prepared = toan.post_json("/approvals/decisions", {"numbers": [first, second]}).get_json()
    credential = phone.get(b64url_decode(prepared["publicKey"]["challenge"]))
    # Someone alters the second decision on the way: the list the phone signed no longer matches.
    decisions = [prepared["decisions"][0], {**prepared["decisions"][1], "comment": "xen vào"}]
    before = school.snapshot(first), school.snapshot(second)
    answer = toan.post_json(
        "/approvals/sign", {"decisions": decisions, "credential": credential}
    ).get_json()
    assert answer["approved"] == [] and len(answer["refused"]) == 2
    assert (school.snapshot(first), school.snapshot(second)) == before


def test_json_endpoints_refuse_a_post_without_the_csrf_token(
    app: Flask, auth: AuthActions, school: School
) -> None:
    hanh = auth.session("hanh")
    number = school.draft()
    response = hanh.client.post(f"/requests/{number}/decision", json={"trigger": "submit"})
    assert response.status_code == 400
    assert response.get_json()["ok"] is False


def test_first_sign_in_forces_a_new_password(app: Flask, auth: AuthActions) -> None:
    admin = auth.session("admin")
    admin.get("/admin/users")
    created = admin.post(
        "/admin/users",
        {
            "login": "binh",
            "name": "Đỗ Văn Bình",
            "email": "binh@th-demo.edu.vn",
            "language": "vi",
            "password": "mat-khau-tam-thoi",
            "roles": ["accountant"],
        },
    )
    assert created.status_code == 302, text(created)[-2500:]
    binh = Browser(app).login("binh", "mat-khau-tam-thoi")
    page = binh.get("/payments")
    assert page.status_code == 302 and page.headers["Location"].endswith("/password")
    assert "Hãy đặt mật khẩu của riêng bạn" in text(binh.get("/password"))
    changed = binh.post(
        "/password",
        {
            "current": "mat-khau-tam-thoi",
            "new": "ca-phe-sua-da-sang",
            "confirm": "ca-phe-sua-da-sang",
        },
    )
    assert changed.status_code == 302
    assert binh.get("/payments").status_code == 200


def test_account_page_lists_keys_with_how_and_when(
    app: Flask, auth: AuthActions, school: School
) -> None:
    hanh, _ = _with_passkey(auth, "hanh")
    page = text(hanh.get("/account"))
    assert "passkey" in page and "khóa giữ trên máy chủ" in page
    assert "đổi khóa, ký bởi khóa trước" in page and "đã thu hồi" in page


def test_relying_party_comes_from_the_base_url_unless_configured(app: Flask) -> None:
    from webapp.passkey import origins, rp_id

    with app.test_request_context():
        assert (rp_id(), origins()) == (RP_ID, [ORIGIN])
        app.config.update(
            RP_ID="th-demo.edu.vn",
            WEBAUTHN_ORIGINS="https://chi.th-demo.edu.vn, https://duyet.th-demo.edu.vn/",
        )
        assert rp_id() == "th-demo.edu.vn"
        assert origins() == ["https://chi.th-demo.edu.vn", "https://duyet.th-demo.edu.vn"]


def test_a_passkey_made_on_a_look_alike_site_is_not_registered(
    app: Flask, auth: AuthActions, school: School
) -> None:
    hanh = auth.session("hanh")
    hanh.get("/signing-key")
    options = hanh.post_json("/signing-key/passkey/options", {"password": DEMO_PASSWORD})
    challenge = b64url_decode(options.get_json()["publicKey"]["challenge"])
    phishing = SoftAuthenticator(rp_id=RP_ID, origin="https://chi-th-demo.edu.vn.example")
    answer = hanh.post_json(
        "/signing-key/passkey",
        {
            "password": DEMO_PASSWORD,
            "old_secret": SECRET,
            "credential": phishing.create(challenge, user_id=b"hanh"),
        },
    )
    assert answer.status_code == 422 and "từ một trang khác" in answer.get_json()["message"]
    with school.runtime.transaction() as session:
        key = school.runtime.directory(session).active_key("hanh")
        assert key is not None and key.kind == "server-held"


def test_new_phone_takes_over_when_the_old_passkey_signs_the_hand_over(
    app: Flask, auth: AuthActions, school: School
) -> None:
    hanh, old_phone = _with_passkey(auth, "hanh")
    assert "Đổi điện thoại?" in text(hanh.get("/signing-key"))
    new_phone = _phone(EDDSA)
    handover = _register(hanh, new_phone)["rotate"]
    assert handover["decision"]["action"] == "key.rotate"
    # The new phone cannot sign its own hand-over: only the current passkey may.
    forged = new_phone.get(b64url_decode(handover["publicKey"]["challenge"]))
    refused = hanh.post_json(
        "/signing-key/passkey/rotate", {"decision": handover["decision"], "credential": forged}
    )
    assert refused.status_code == 422
    assert _event(school)["decision"]["action"] == "key.confirm"  # nothing was written
    # The refusal spent the kept registration: the person starts again, and the old phone signs.
    handover = _register(hanh, new_phone)["rotate"]
    signed = old_phone.get(b64url_decode(handover["publicKey"]["challenge"]))
    answer = hanh.post_json(
        "/signing-key/passkey/rotate", {"decision": handover["decision"], "credential": signed}
    )
    assert answer.status_code == 200, text(answer)
    revoked = _event(school)
    enrolled = _event(school, revoked["seq"] - 1)
    rotation = _event(school, enrolled["data"]["rotated_by"])
    assert rotation["decision"]["action"] == "key.rotate"
    assert rotation["signature"]["kind"] == "webauthn"
    assert enrolled["data"]["method"] == "rotation" and revoked["data"]["reason"] == "rotation"
    _confirm(hanh, new_phone, answer.get_json())

    number = school.draft(owner="hanh")
    assert _sign(hanh, new_phone, number, "submit").get_json()["ok"]
    other = school.draft(owner="hanh")
    assert _sign(hanh, old_phone, other, "submit").status_code == 422  # the old key is revoked
    report = school.verification()
    assert report.valid, report.problems


def test_a_kept_new_passkey_serves_one_hand_over_and_only_its_owner(
    app: Flask, auth: AuthActions, school: School
) -> None:
    hanh, old_phone = _with_passkey(auth, "hanh")
    handover = _register(hanh, _phone())["rotate"]
    signed = old_phone.get(b64url_decode(handover["publicKey"]["challenge"]))
    body = {"decision": handover["decision"], "credential": signed}
    assert hanh.post_json("/signing-key/passkey/rotate", body).status_code == 200
    again = hanh.post_json("/signing-key/passkey/rotate", body)
    assert again.status_code == 409  # the kept registration is used up
    nga = auth.session("nga")
    assert nga.post_json("/signing-key/passkey/rotate", body).status_code == 409
