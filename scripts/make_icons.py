"""Draw the app's icons (webapp/static/icons) from the favicon's design: a white tick on blue.

Usage: .venv/bin/python scripts/make_icons.py   (needs Pillow, a test dependency)
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

BLUE = (29, 78, 216, 255)
SCALE = 4  # drawn large, then reduced: smooth edges without an SVG renderer


def icon(size: int, *, maskable: bool = False) -> Image.Image:
    """One icon; a maskable one fills the square and keeps the tick inside the safe circle."""
    big = size * SCALE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    if maskable:
        draw.rectangle((0, 0, big, big), fill=BLUE)
    else:
        draw.rounded_rectangle((0, 0, big - 1, big - 1), radius=big * 14 // 64, fill=BLUE)
    shrink = 0.62 if maskable else 1.0  # the favicon's tick, scaled about the centre
    points = [(17, 33), (27, 43), (47, 21)]
    pts = [
        (big / 2 + (x - 32) * shrink * big / 64, big / 2 + (y - 32) * shrink * big / 64)
        for x, y in points
    ]
    width = round(7 * shrink * big / 64)
    draw.line(pts, fill="white", width=width, joint="curve")
    for x, y in (pts[0], pts[-1]):
        draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill="white")
    return image.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    folder = Path(__file__).resolve().parent.parent / "webapp" / "static" / "icons"
    folder.mkdir(parents=True, exist_ok=True)
    icon(192).save(folder / "icon-192.png", optimize=True)
    icon(512).save(folder / "icon-512.png", optimize=True)
    icon(512, maskable=True).save(folder / "maskable-512.png", optimize=True)
    # iOS ignores transparency and rounds the corners itself: a full square on blue.
    icon(180, maskable=True).convert("RGB").save(folder / "apple-touch-icon.png", optimize=True)


if __name__ == "__main__":
    main()
