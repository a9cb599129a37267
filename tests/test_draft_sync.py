"""Drafts synced from a phone: a retried sync never makes a second draft, a re-sent photo is
attached once, and a phone's id cannot reach another person's draft."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from expense_audit.errors import DataInvalid
from workflow.models import Draft

from .factories import QUOTE, QUOTE2, School


def _sync(school: School, login: str, client_id: str, **content: object) -> str:
    with school.runtime.transaction() as session:
        service = school.runtime.service(session)
        owner = service.directory.get_user(login)
        assert owner is not None
        return service.sync_draft(owner, client_id=client_id, **content).number


def _drafts(school: School, login: str) -> int:
    with school.runtime.transaction() as session:
        return session.scalar(select(func.count()).where(Draft.owner == login)) or 0


def test_a_retried_sync_whose_answer_was_lost_does_not_make_a_second_draft(school: School) -> None:
    phone_id = str(uuid.uuid4())
    before = _drafts(school, "hanh")
    first = _sync(school, "hanh", phone_id, title="Mua chuột", line="SW-ASSET")
    # The answer never reached the phone (the bus went into a tunnel): it sends again, with
    # what was typed since.
    again = _sync(school, "hanh", phone_id, title="Mua chuột không dây", line="SW-ASSET")
    assert again == first
    assert _drafts(school, "hanh") == before + 1
    with school.runtime.transaction() as session:
        draft = session.get(Draft, first)
        assert draft is not None
        assert draft.title == "Mua chuột không dây"
        assert draft.client_id == phone_id


def test_the_same_phone_id_from_another_person_makes_their_own_draft(school: School) -> None:
    phone_id = str(uuid.uuid4())
    mine = _sync(school, "hanh", phone_id, title="Của Hạnh")
    theirs = _sync(school, "toan", phone_id, title="Của người khác")
    assert mine != theirs
    with school.runtime.transaction() as session:
        kept = session.get(Draft, mine)
        assert kept is not None
        assert kept.title == "Của Hạnh"


@pytest.mark.parametrize(
    "bad", ["", "not-a-uuid", "1" * 36, "0F8FAD5B-D9CB-469F-A165-70867728950E"]
)
def test_a_malformed_phone_id_is_refused(school: School, bad: str) -> None:
    with pytest.raises(DataInvalid, match="Mã bản nháp trên điện thoại") as refused:
        _sync(school, "hanh", bad, title="x")
    assert refused.value.details.get("field") == "client_id"


def test_a_photo_sent_twice_after_a_dropped_upload_is_attached_once(school: School) -> None:
    number = school.draft(attachments=[QUOTE])
    with school.runtime.transaction() as session:
        service = school.runtime.service(session)
        hanh = service.directory.get_user("hanh")
        assert hanh is not None
        service.attach(number, hanh, QUOTE2)
        service.attach(number, hanh, QUOTE2)  # the retry of an upload that did arrive
        draft = session.get(Draft, number)
        assert draft is not None
        assert [a["sha256"] for a in draft.attachments] == [QUOTE["sha256"], QUOTE2["sha256"]]
