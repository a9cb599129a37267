"""On a phone with no signal: a draft typed offline survives a reload and reaches the school when
the connection returns, its 4000x3000 photo shrunk on the phone yet readable; pages seen before
open offline, marked as copies and read only; signing waits for the network."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from PIL import Image, ImageDraw, ImageFont, ImageStat
from playwright.sync_api import expect
from sqlalchemy import select

from workflow.models import Draft

from ..factories import School

PHOTO_LIMIT = 1_200_000  # bytes: a 4000x3000 quote photo arrives smaller than this
TITLE = "Mua ổ cứng cho phòng máy (gõ khi mất sóng)"


def _quote_photo(path: Path) -> Image.Image:
    """A phone photo of a printed quote: uneven light, paper grain, lines of small print."""
    width, height = 4000, 3000
    light = Image.linear_gradient("L").resize((width, height)).point(lambda v: 200 + v // 8)
    grain = Image.effect_noise((width, height), 6)
    paper = Image.blend(light, grain, 0.15).convert("RGB")
    draw = ImageDraw.Draw(paper)
    font = ImageFont.load_default(size=44)  # 22 px tall after halving: phone-readable print
    rng = random.Random(17)
    for row in range(40):
        words = " ".join(
            rng.choice(["Ổ cứng", "SSD", "1TB", "đơn giá", "1.250.000", "VAT 10%"])
            for _ in range(9)
        )
        draw.text((300, 250 + row * 62), f"{row + 1:02d}. {words}", fill=(20, 20, 30), font=font)
    paper.save(path, "JPEG", quality=95)
    return paper


def _kept(page: Any, path: str) -> None:
    """Wait until the service worker keeps ``path`` for offline use and controls the page (it
    claims its pages once active: until then, a page opened without signal is not its to
    answer, on a phone as here)."""
    page.wait_for_function(
        "p => caches.open('pages-v1').then(c => c.match(new URL(p, location.href).href))"
        ".then(Boolean)",
        arg=path,
    )
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")


def test_a_draft_typed_with_no_signal_survives_a_reload_and_reaches_the_school(
    phone: Callable[[str], Any], school: School, app: Flask, shots: Path, tmp_path: Path
) -> None:
    original = _quote_photo(tmp_path / "bao-gia.jpg")
    hanh = phone("hanh")
    _kept(hanh, "/requests/new")

    # 1. The signal drops; Hạnh types the request and photographs the quote.
    hanh.context.set_offline(True)
    hanh.goto("/requests/new")  # opens from the phone's copy
    expect(hanh.locator("[data-offline-note]")).to_contain_text("Ngoại tuyến")
    hanh.fill("#title", TITLE)
    hanh.select_option("#line", "SW-ASSET")
    hanh.fill("#amount", "1.250.000")
    hanh.select_option("#budget_year", "2025")
    hanh.set_input_files("input[type=file][multiple]", str(tmp_path / "bao-gia.jpg"))
    expect(hanh.locator("[data-phone-files] li")).to_contain_text("bao-gia.jpg")

    # 2. The page is reloaded (still no signal): what she typed is still there.
    hanh.reload()
    expect(hanh.locator("[data-draft-status]")).to_contain_text("điện thoại")
    assert hanh.input_value("#title") == TITLE
    assert hanh.input_value("#amount") == "1.250.000"
    expect(hanh.locator("[data-phone-files] li")).to_have_count(1)
    hanh.screenshot(path=shots / "phone-offline-draft.png", full_page=True)

    # 3. She saves it: it waits on the phone, and the school has nothing yet.
    hanh.click("button:text('Lưu nháp')")
    expect(hanh.locator("[data-draft-status]")).to_contain_text("chỉ lưu trên điện thoại")
    expect(hanh.locator("[data-phone-section]")).to_contain_text(TITLE)
    hanh.screenshot(path=shots / "phone-waiting.png", full_page=True)
    with school.runtime.transaction() as session:
        assert session.scalars(select(Draft).where(Draft.title == TITLE)).first() is None

    # 4. The signal returns: the draft and its photo reach the school, listed as such.
    hanh.context.set_offline(False)
    hanh.evaluate("window.dispatchEvent(new Event('online'))")
    expect(hanh.locator("[data-school-section]")).to_contain_text(TITLE, timeout=20000)
    expect(hanh.locator("[data-phone-section]")).to_be_hidden()
    expect(hanh.locator("[data-draft-status]")).not_to_contain_text("chỉ lưu trên điện thoại")
    hanh.screenshot(path=shots / "phone-synced.png", full_page=True)
    with school.runtime.transaction() as session:
        [draft] = session.scalars(select(Draft).where(Draft.title == TITLE)).all()
        assert draft.amount_vnd == 1_250_000
        [record] = draft.attachments
    stored = Path(app.config["ATTACHMENTS_DIR"]) / record["sha256"][:2] / record["sha256"]

    # 5. The photo: 2000x1500, under the stated size, and every line of print still ink on paper.
    assert record["type"] == "image/jpeg"
    assert record["size"] == stored.stat().st_size < PHOTO_LIMIT
    with Image.open(stored) as received:
        assert received.size == (2000, 1500)
        got = received.convert("L")
    expected = original.convert("L").resize((2000, 1500), Image.Resampling.LANCZOS)
    ink = expected.point(lambda v: 255 if v < 90 else 0)  # where the letters are
    ink_pixels = ImageStat.Stat(ink).mean[0] / 255 * 2000 * 1500
    assert ink_pixels > 20000
    still_dark = ImageStat.Stat(got.point(lambda v: 255 if v < 128 else 0), mask=ink)
    assert still_dark.mean[0] > 0.97 * 255  # the letters did not wash out
    paper = ImageStat.Stat(
        got.point(lambda v: 255 if v > 160 else 0), mask=ink.point(lambda v: 255 - v)
    )
    assert paper.mean[0] > 0.97 * 255  # nor did the paper between them fill in
    print(f"photo: {(tmp_path / 'bao-gia.jpg').stat().st_size} bytes -> {record['size']} bytes")


def test_pages_seen_before_open_offline_read_only_and_signing_waits_for_the_network(
    phone: Callable[[str], Any], school: School, shots: Path
) -> None:
    number = school.draft("hanh")
    hanh = phone("hanh")
    _kept(hanh, "/requests/mine")
    hanh.goto(f"/requests/{number}")
    _kept(hanh, f"/requests/{number}")

    hanh.context.set_offline(True)
    hanh.reload()
    note = hanh.locator("[data-offline-note]")
    expect(note).to_contain_text("Ngoại tuyến")
    expect(note).to_contain_text(":")  # the time the copy was kept
    assert number in hanh.inner_text("h1")
    # Signing from the copy is held back, and the page says why.
    held = hanh.evaluate(
        """() => { const form = [...document.querySelectorAll('main form')]
              .find(f => f.method === 'post' && (f.querySelector('input[type=password]')
                     || /\\/act$/.test(f.action) || f.matches('[data-signing]')));
            if (!form) return 'no signing form';
            const event = new Event('submit', {cancelable: true, bubbles: true});
            form.dispatchEvent(event); return event.defaultPrevented; }"""
    )
    assert held is True
    expect(note).to_contain_text("Ký cần có kết nối")
    hanh.screenshot(path=shots / "phone-offline-detail.png", full_page=True)

    # The list seen before opens too; a page never seen says plainly that it is not on the phone.
    hanh.goto("/requests/mine")
    expect(hanh.locator("[data-offline-note]")).to_contain_text("Ngoại tuyến")
    hanh.goto("/ledger")
    expect(hanh.locator("h1")).to_contain_text("Không có kết nối mạng")
