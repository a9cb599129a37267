"""Charts as server-rendered SVG: horizontal bars that fit a phone (no script, no library).

Each chart is an ``<svg role="img">`` named by its ``<title>`` and described by its ``<desc>``
(every figure in words), and every bar carries its label and figures as text, so nothing is told
by colour alone: the spent part is solid, the committed part hatched, the allocation a marked line.
The SVG scales to its container's width (viewBox), so it never scrolls sideways.

NOTE: written here rather than with a chart library (pygal, matplotlib): the charts are two kinds
of bar, and what matters (names and descriptions for screen readers, Vietnamese figures, a phone's
width) is easier to hold in 100 lines than to configure and test around a library's output.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 360  # viewBox units; the SVG is drawn at 100% of its container
PAD = 4
BAR = 14
ROW = 56  # label line, bar, figures line
MAX_LABEL = 46  # characters of a label drawn in the chart (the whole label is in <desc>)
FIT = 56  # figures longer than this (characters, at 12 px) are fitted to the width
_ids = itertools.count(1)


@dataclass(frozen=True)
class Bar:
    """One row: ``solid`` then ``hatched`` (e.g. spent, then committed), and an optional mark
    (e.g. the allocation); ``figures`` is the text drawn under the bar and read in <desc>."""

    label: str
    solid: int | float
    figures: str
    hatched: int | float = 0
    mark: int | float | None = None


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1].rstrip() + "…"


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    summary: str,
    legend: Sequence[tuple[str, str]] = (),
    own_scale: bool = False,
    css_class: str = "chart",
) -> Markup:
    """Horizontal bars on one scale (the largest bar or mark fills the width), or with
    ``own_scale`` each on its own (its mark or its length fills the width: a share of each
    line's allocation, whatever its size).

    ``legend`` pairs a kind ("solid", "hatched", "mark") with its meaning; ``summary`` opens the
    description that screen readers read, followed by each bar's label and figures.
    """
    uid = f"chart{next(_ids)}"
    common = max([max(b.solid + b.hatched, b.mark or 0) for b in bars] + [1])
    usable = WIDTH - 2 * PAD
    legend_height = 22 if legend else 0
    height = legend_height + ROW * len(bars) + PAD
    desc = " ".join([summary, *(f"{b.label}: {b.figures}." for b in bars)])
    parts = [
        f'<svg class="{escape(css_class)}" role="img" aria-labelledby="{uid}-t {uid}-d" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{uid}-t">{escape(title)}</title>',
        f'<desc id="{uid}-d">{escape(desc)}</desc>',
        f'<defs><pattern id="{uid}-h" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" class="hatch-bg"/>'
        '<line x1="0" y1="0" x2="0" y2="6" class="hatch"/></pattern></defs>',
    ]
    if legend:
        parts.append(_legend(legend, uid))
    for index, bar in enumerate(bars):
        top = legend_height + index * ROW
        scale = max(bar.solid + bar.hatched, bar.mark or 0, 1) if own_scale else common
        solid = usable * bar.solid / scale
        hatched = usable * bar.hatched / scale
        parts.append(
            f'<g class="bar"><text x="{PAD}" y="{top + 14}" class="label">'
            f"{escape(_short(bar.label))}</text>"
            f'<rect x="{PAD}" y="{top + 20}" width="{usable}" height="{BAR}" class="track"/>'
        )
        if solid:
            parts.append(
                f'<rect x="{PAD}" y="{top + 20}" width="{solid:.1f}" height="{BAR}" class="solid"/>'
            )
        if hatched:
            parts.append(
                f'<rect x="{PAD + solid:.1f}" y="{top + 20}" width="{hatched:.1f}" '
                f'height="{BAR}" fill="url(#{uid}-h)" class="hatched"/>'
            )
        if bar.mark is not None:
            x = PAD + usable * bar.mark / scale
            parts.append(
                f'<path d="M{x:.1f} {top + 17}v{BAR + 6}" class="mark"/>'
                f'<path d="M{x - 4:.1f} {top + 16}h8l-4 5z" class="mark-head"/>'
            )
        # NOTE: a long line of figures (amounts of billions) is squeezed to the chart's width
        # rather than cut off at its edge.
        fit = (
            f' textLength="{usable}" lengthAdjust="spacingAndGlyphs"'
            if len(bar.figures) > FIT
            else ""
        )
        parts.append(
            f'<text x="{PAD}" y="{top + 49}" class="figures"{fit}>{escape(bar.figures)}</text></g>'
        )
    parts.append("</svg>")
    # NOTE: every text in ``parts`` went through escape(); the rest are numbers and fixed markup.
    return Markup("".join(parts))  # noqa: S704


def _legend(legend: Sequence[tuple[str, str]], uid: str) -> str:
    """Swatches with words, laid out left to right (three short items fit 360 units)."""
    x = PAD
    items = []
    for kind, text in legend:
        if kind == "mark":
            swatch = f'<path d="M{x + 5} 4v14" class="mark"/>'
        elif kind == "hatched":
            swatch = (
                f'<rect x="{x}" y="5" width="12" height="12" fill="url(#{uid}-h)" class="hatched"/>'
            )
        else:
            swatch = f'<rect x="{x}" y="5" width="12" height="12" class="solid"/>'
        items.append(f'{swatch}<text x="{x + 16}" y="15" class="legend">{escape(text)}</text>')
        x += 16 + 7 * len(text) + 14
    return "<g>" + "".join(items) + "</g>"
