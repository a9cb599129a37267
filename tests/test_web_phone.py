"""The phone's endpoints: a draft synced twice (its answer lost) is one draft, a file uploaded
twice is one attachment, another person cannot attach to my draft, and the installable app's
worker and manifest are served with the headers they need."""

from __future__ import annotations

import io
import json
import uuid

from flask import Flask
from sqlalchemy import select

from workflow.models import Draft

from .factories import School
from .web import Browser

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x01" * 2000
FIELDS = {
    "title": "Mua bàn phím",
    "line": "PRINT",
    "amount": "100.000",
    "source": "NSNN-TX",
    "budget_year": "2025",
}


def _drafts(school: School) -> list[Draft]:
    with school.runtime.transaction() as session:
        rows = list(session.scalars(select(Draft).where(Draft.owner == "hanh")))
        session.expunge_all()
        return rows


def test_a_sync_retried_after_a_lost_answer_and_a_photo_sent_twice_make_one_of_each(
    app: Flask, school: School
) -> None:
    hanh = Browser(app).login("hanh")
    phone_id = str(uuid.uuid4())
    first = hanh.post("/requests/sync", {**FIELDS, "client_id": phone_id})
    again = hanh.post("/requests/sync", {**FIELDS, "client_id": phone_id, "title": "Mua chuột"})
    assert first.status_code == again.status_code == 200
    number = first.json["number"]  # type: ignore[index]
    assert again.json["number"] == number  # type: ignore[index]
    for _ in range(2):  # the first upload's answer was lost: the phone sends the photo again
        sent = hanh.post(
            f"/requests/{number}/attachments",
            {"file": (io.BytesIO(JPEG), "bao-gia.jpg")},
            content_type="multipart/form-data",
        )
        assert sent.status_code == 200, sent.get_data(as_text=True)
    [draft] = _drafts(school)
    assert draft.title == "Mua chuột"
    assert [a["name"] for a in draft.attachments] == ["bao-gia.jpg"]
    assert sent.json["attachments"] == [draft.attachments[0]["sha256"]]  # type: ignore[index]


def test_a_sync_the_school_refuses_says_why_and_saves_nothing(app: Flask, school: School) -> None:
    hanh = Browser(app).login("hanh")
    refused = hanh.post("/requests/sync", {**FIELDS, "title": "", "client_id": str(uuid.uuid4())})
    assert refused.status_code == 422
    assert "title" in refused.json["errors"]  # type: ignore[index]
    bad_id = hanh.post("/requests/sync", {**FIELDS, "client_id": "../../1"})
    assert bad_id.status_code == 422
    assert "Mã bản nháp" in bad_id.json["message"]  # type: ignore[index]
    assert _drafts(school) == []


def test_nobody_attaches_a_file_to_another_persons_draft(app: Flask, school: School) -> None:
    number = school.draft("hanh")
    nga = Browser(app).login("nga")
    response = nga.post(
        f"/requests/{number}/attachments",
        {"file": (io.BytesIO(JPEG), "x.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code in (403, 404)
    assert len(_drafts(school)[0].attachments) == 1


def test_the_worker_and_manifest_are_served_for_the_whole_site(app: Flask) -> None:
    client = Browser(app)
    worker = client.get("/sw.js")
    assert worker.headers["Service-Worker-Allowed"] == "/"
    assert "__VERSION__" not in worker.get_data(as_text=True)
    assert "/static/offline.html" in worker.get_data(as_text=True)
    assert (
        client.get("/sw.js", headers={"If-None-Match": worker.headers["ETag"]}).status_code == 304
    )
    manifest = json.loads(client.get("/manifest.webmanifest").get_data(as_text=True))
    assert manifest["lang"] == "vi"
    assert manifest["name"] == "Duyệt chi CNTT"
    assert {icon["sizes"] for icon in manifest["icons"]} == {"192x192", "512x512"}
    for icon in manifest["icons"]:
        response = client.get(icon["src"])
        assert response.status_code == 200
        assert response.mimetype == "image/png"
        response.close()
