"""A returned request on its page: the proposer sees what she will sign, and after she resubmits,
reviewer and principal see what changed since it was returned; an over-norm draft is said so."""

from __future__ import annotations

import re

from flask import Flask

from .factories import QUOTE, QUOTE2, School
from .web import Browser, text


def _amount(page: str) -> str:
    """The big amount at the top of the request's page."""
    match = re.search(r'<p class="amount big">([^<]*)</p>', page)
    return match.group(1) if match else ""


def _files(page: str) -> str:
    """The attachments listed on the request's main card."""
    match = re.search(r'<ul class="files">(.*?)</ul>', page, re.S)
    return match.group(1) if match else ""


def _changes(page: str) -> str:
    match = re.search(r'<section class="card changes" id="changes">(.*?)</section>', page, re.S)
    return match.group(1) if match else ""


def _edit(browser: Browser, number: str, **fields: str) -> str:
    browser.get(f"/requests/{number}/edit")
    data = {
        "title": "Gia hạn phần mềm quản lý tài sản công 2025",
        "line": "SW-ASSET",
        "amount": "1.800.000",
        "source": "NSNN-TX",
        "budget_year": "2024",
        "description": "",
    }
    data.update(fields)
    response = browser.post(f"/requests/{number}/edit", data, content_type="multipart/form-data")
    assert response.status_code == 302, text(response)[:1500]
    return text(browser.get(f"/requests/{number}"))


def test_after_saving_a_returned_request_the_proposer_sees_what_she_will_sign(
    app: Flask, school: School
) -> None:
    number = school.to_state("returned", budget_year=2024)
    hanh = Browser(app).login("hanh")
    with school.runtime.transaction() as session:  # the upload form stores files; here: swap
        school.runtime.service(session).update_draft(
            number, school.user("hanh"), attachments=[QUOTE2]
        )
    page = _edit(hanh, number, amount="1.500.000")
    assert "Đã lưu thay đổi." in page
    assert _amount(page) == "1.500.000 ₫"  # the new amount, not the signed one
    assert QUOTE2["name"] in _files(page) and QUOTE["name"] not in _files(page)
    assert 'id="unsigned">Đã lưu, chưa ký.' in page
    changes = _changes(page)
    assert "<del>1.800.000 ₫</del>" in changes and "<ins>1.500.000 ₫</ins>" in changes
    assert f"<ins>{QUOTE2['name']}</ins>" in changes and f"<del>{QUOTE['name']}</del>" in changes
    assert "Nguyễn Văn Long trả lại" in changes  # who returned it

    # Someone else never sees the unsigned draft: the reviewer still sees what was signed.
    long = Browser(app).login("long")
    seen = text(long.get(f"/requests/{number}"))
    assert (
        _amount(seen) == "1.800.000 ₫" and "1.500.000" not in seen and 'id="unsigned"' not in seen
    )


def test_reviewer_and_principal_see_what_changed_since_they_returned_it(
    app: Flask, school: School
) -> None:
    number = school.to_state("returned", budget_year=2024)
    with school.runtime.transaction() as session:
        school.runtime.service(session).update_draft(
            number,
            school.user("hanh"),
            amount="1.500.000",
            line="SW-IMAS",
            attachments=[QUOTE2],
        )
    school.act(number, "submit", "hanh")
    for login in ("long", "toan", "hanh"):
        changes = _changes(text(Browser(app).login(login).get(f"/requests/{number}")))
        assert "<del>1.800.000 ₫</del> → <ins>1.500.000 ₫</ins>" in changes, login
        assert "<del>Phần mềm quản lý tài sản công</del>" in changes, login
        assert "<ins>Phần mềm kế toán hành chính sự nghiệp Imas</ins>" in changes, login
        assert (
            f"<ins>{QUOTE2['name']}</ins>" in changes and f"<del>{QUOTE['name']}</del>" in changes
        )
    school.act(number, "forward", "long", comment="Đã bổ sung.")
    toan = text(Browser(app).login("toan").get(f"/requests/{number}"))
    assert "<ins>1.500.000 ₫</ins>" in _changes(toan)  # the principal sees it too after forwarding


def test_a_request_never_returned_shows_no_changes(app: Flask, school: School) -> None:
    number = school.to_state("submitted")
    assert _changes(text(Browser(app).login("long").get(f"/requests/{number}"))) == ""


def test_saving_an_over_norm_draft_says_at_once_it_cannot_be_submitted(app: Flask) -> None:
    hanh = Browser(app).login("hanh")
    hanh.get("/requests/new")
    response = hanh.post(
        "/requests/new",
        {
            "title": "Phần mềm tài sản",
            "line": "SW-ASSET",
            "amount": "3.000.000",
            "source": "NSNN-TX",
            "budget_year": "2025",
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    page = text(hanh.get(response.headers["Location"]))
    assert 'class="flash success"' not in page
    assert re.search(r'class="flash warning"[^>]*>[^<]*chưa thể gửi[^<]*Vượt định mức', page), page


def test_a_reviewer_on_her_own_request_reads_why_once_not_once_per_step(
    app: Flask, school: School
) -> None:
    number = school.draft(owner="long")
    school.act(number, "submit", "long")
    page = text(Browser(app).login("long").get(f"/requests/{number}"))
    notes = re.findall(r'<p class="flash info">([^<]*)</p>', page)
    assert notes and len(notes) == len(set(notes)), notes
