"""Signing for someone on the web (issue 15): the principal grants and revokes a mandate on a
page, signed like every step (server-held secret, or a passkey through tests/softauthn.py); the
deputy then works the approval queue under it, and the request page says who signed and how."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from expense_audit.webauthn import b64url_decode
from workflow.models import AuditEvent, MandateRow, SigningFailure

from .conftest import SteppingClock
from .factories import SECRET, School
from .test_web_passkeys import _with_passkey
from .web import AuthActions, Browser, text

KT = {
    "delegate": "long",
    "role": "approver",
    "kind": "KT",
    "valid_from": "2025-03-10",
    "valid_to": "2025-03-21",
}
SIGNED_AS = "KT. HIỆU TRƯỞNG / PHÓ HIỆU TRƯỞNG Nguyễn Văn Long"


def at(clock: SteppingClock, day: date, hour_local: int = 9) -> None:
    clock.now = datetime(day.year, day.month, day.day, hour_local - 7, 0)


def forwarded_by(school: School, reviewer: str) -> str:
    number = school.draft()
    school.act(number, "submit", "hanh")
    school.act(number, "forward", reviewer, comment="Hợp lý.")
    return number


def mandates(school: School) -> list[MandateRow]:
    with school.runtime.transaction() as session:
        rows = list(session.scalars(select(MandateRow).order_by(MandateRow.seq)))
        session.expunge_all()
        return rows


def grant_on_page(toan: Browser, **fields: Any) -> Any:
    toan.get("/mandates")
    return toan.post("/mandates", {**KT, "secret": SECRET, **fields})


def test_principal_grants_kt_mandate_on_the_page_and_deputy_approves_from_his_queue(
    auth: AuthActions, school: School, clock: SteppingClock
) -> None:
    """Toàn signs the mandate with his secret; from 10/03 Long has the approval queue, approves
    what Dung forwarded, and the timeline signs it "KT. HIỆU TRƯỞNG / PHÓ HIỆU TRƯỞNG ..."."""
    at(clock, date(2025, 3, 7))
    from_dung = forwarded_by(school, "dung")
    from_long = forwarded_by(school, "long")
    toan = auth.session("toan")
    page = text(toan.get("/mandates"))
    assert "Ủy quyền khi bạn vắng mặt" in page and "Nguyễn Văn Long" in page
    done = grant_on_page(toan, comment="Đi tập huấn.")
    assert done.status_code == 302, text(done)[:2000]
    listed = text(toan.get("/mandates"))
    assert "Đã ký và ghi nhận giấy ủy quyền" in listed and "chưa bắt đầu" in listed
    [row] = mandates(school)
    assert (row.delegator, row.delegate, row.kind, row.valid_to) == (
        "toan",
        "long",
        "KT",
        "2025-03-21",
    )

    long = auth.session("long")
    assert long.get("/approvals").status_code == 403  # not before 10/03
    at(clock, date(2025, 3, 12))
    long.get("/")
    queue = text(long.get("/approvals"))
    assert "Bạn ký KT. hiệu trưởng đến hết ngày 21/03/2025" in queue
    assert from_dung in queue and 'href="/approvals"' in queue  # the tab shows while acting
    # The request Long forwarded himself waits for Toàn, and the queue says why.
    assert "Người đã trình đề xuất không được tự duyệt đề xuất đó" in queue
    assert f'value="{from_long}"' not in queue and f'value="{from_dung}"' in queue
    detail = text(long.get(f"/requests/{from_dung}"))
    assert "Duyệt chi" in detail and 'value="approve"' in detail
    approved = long.act(from_dung, "approve")
    assert approved.status_code == 302, text(approved)[:2000]
    timeline = text(long.get(f"/requests/{from_dung}"))
    assert SIGNED_AS in timeline
    assert school.request(from_dung).state == "approved"  # type: ignore[union-attr]

    at(clock, date(2025, 3, 22))
    assert long.get("/approvals").status_code == 403  # the mandate has ended
    assert long.act(from_long, "approve").status_code == 403


def test_principal_revokes_on_the_page_and_the_deputys_queue_closes(
    auth: AuthActions, school: School, clock: SteppingClock
) -> None:
    """Toàn comes back early: one signed revocation and Long's approvals are refused at once;
    Long cannot revoke Toàn's mandate himself."""
    at(clock, date(2025, 3, 9))
    toan = auth.session("toan")
    assert grant_on_page(toan).status_code == 302
    [row] = mandates(school)
    at(clock, date(2025, 3, 12))
    number = forwarded_by(school, "dung")
    long = auth.session("long")
    assert long.get("/approvals").status_code == 200
    long.get("/mandates")
    long.post(f"/mandates/{row.seq}/revoke", {"secret": SECRET})
    assert "Chỉ người ủy quyền mới được thu hồi" in text(long.get("/mandates"))
    page = text(toan.get("/mandates"))
    assert "Thu hồi ngay" in page and "đang hiệu lực" in page
    toan.post(f"/mandates/{row.seq}/revoke", {"secret": SECRET, "comment": "Đã về sớm."})
    revoked = toan.get("/mandates")
    assert "Đã thu hồi ủy quyền" in text(revoked) and "đã thu hồi" in text(revoked)
    assert mandates(school)[0].revoked_seq is not None
    assert long.get("/approvals").status_code == 403
    assert long.act(number, "approve").status_code == 403
    assert school.request(number).state == "forwarded"  # type: ignore[union-attr]


def test_mandate_page_refusals_say_why_and_a_wrong_secret_counts(
    auth: AuthActions, school: School, clock: SteppingClock
) -> None:
    """KT. is for the principal's role only; a mandate already over is refused; a wrong secret
    is recorded toward the key's lockout like any signature; nothing is granted."""
    at(clock, date(2025, 3, 9))
    long = auth.session("long")
    kt_review = long.post(
        "/mandates", {**KT, "delegate": "dung", "role": "reviewer", "secret": SECRET}
    )
    assert kt_review.status_code == 422 and "Ký thay (KT.) chỉ dành cho" in text(kt_review)
    toan = auth.session("toan")
    past = grant_on_page(toan, valid_from="2025-03-01", valid_to="2025-03-05")
    assert past.status_code == 422 and "Thời hạn ủy quyền đã qua" in text(past)
    wrong = grant_on_page(toan, secret="not-the-secret")
    assert wrong.status_code == 422 and "Mã ký không đúng" in text(wrong)
    with school.runtime.transaction() as session:
        failures = session.scalars(select(SigningFailure.login)).all()
    assert failures == ["toan"]
    assert mandates(school) == []
    # The delegate list never offers the admin or the auditor (no one outside the chain signs).
    page = text(toan.get("/mandates"))
    assert 'value="admin"' not in page and 'value="kiem"' not in page


def test_passkey_grant_and_revoke_sign_the_decision_the_page_showed(
    auth: AuthActions, school: School, clock: SteppingClock
) -> None:
    """With a passkey, the page prepares the mandate.grant decision, the phone signs its
    challenge, and the server records exactly that; the revocation goes the same way."""
    at(clock, date(2025, 3, 9))
    toan, phone = _with_passkey(auth, "toan")
    page = text(toan.get("/mandates"))
    assert "mandate.js" in page and 'name="secret"' not in page
    body = {**KT, "lines": "sw-*, WEB", "max_amount": "5.000.000", "csrf_token": toan.token}
    prepared = toan.post_json("/mandates/decision", body)
    assert prepared.status_code == 200, text(prepared)
    payload = prepared.get_json()
    assert payload["decision"]["data"]["lines"] == ["SW-*", "WEB"]
    assert payload["decision"]["data"]["max_amount_vnd"] == 5_000_000
    assert payload["summary"]["delegate"] == "Nguyễn Văn Long"
    credential = phone.get(b64url_decode(payload["publicKey"]["challenge"]))
    # A decision altered after the prompt is refused: the signature covers the one shown.
    forged = json.loads(json.dumps(payload["decision"]))
    forged["data"]["max_amount_vnd"] = 500_000_000
    refused = toan.post_json("/mandates/sign", {"decision": forged, "credential": credential})
    assert refused.status_code == 422 and mandates(school) == []
    credential = phone.get(b64url_decode(payload["publicKey"]["challenge"]))
    signed = toan.post_json(
        "/mandates/sign", {"decision": payload["decision"], "credential": credential}
    )
    assert signed.status_code == 200 and signed.get_json()["ok"], text(signed)
    [row] = mandates(school)
    with school.runtime.transaction() as session:
        event = session.get(AuditEvent, row.seq)
        assert event is not None
        body_json = json.loads(event.body)
    assert body_json["signature"]["kind"] == "webauthn"
    assert body_json["decision"]["action"] == "mandate.grant"

    revoke = toan.post_json(f"/mandates/{row.seq}/decision", {"csrf_token": toan.token})
    assert revoke.status_code == 200, text(revoke)
    revoke_payload = revoke.get_json()
    assert revoke_payload["decision"]["data"] == {"seq": row.seq, "hash": row.hash}
    credential = phone.get(b64url_decode(revoke_payload["publicKey"]["challenge"]))
    done = toan.post_json(
        "/mandates/sign", {"decision": revoke_payload["decision"], "credential": credential}
    )
    assert done.status_code == 200, text(done)
    assert mandates(school)[0].revoked_seq is not None
    assert "đã thu hồi" in text(toan.get("/mandates"))


def test_acting_principal_sees_in_his_review_queue_that_dung_reviews(
    auth: AuthActions, school: School, clock: SteppingClock
) -> None:
    """While Long signs for Toàn, a new request in his review queue says Dung reviews it, and
    he is offered no forward button on its page."""
    at(clock, date(2025, 3, 9))
    assert grant_on_page(auth.session("toan")).status_code == 302
    at(clock, date(2025, 3, 11))
    number = school.draft()
    school.act(number, "submit", "hanh")
    long = auth.session("long")
    queue = text(long.get("/review"))
    assert number in queue and "Đề xuất này do Phạm Thị Dung xem xét" in queue
    page = text(long.get(f"/requests/{number}"))
    assert "Phạm Thị Dung xem xét" in page and 'value="forward"' not in page
    assert 'value="forward"' in text(auth.session("dung").get(f"/requests/{number}"))
