"""The SVG charts: named and described for screen readers, every figure drawn as text, a name
typed with markup drawn as text, bars on their scale, nothing drawn beyond the chart's width."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from webapp.charts import WIDTH, Bar, bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # noqa: S314  our own output


def test_a_chart_is_an_image_with_a_title_and_a_description_holding_every_figure() -> None:
    bars = [
        Bar("In ấn", 300_000, "Đã chi 300.000 / 6.000.000 ₫", hatched=850_000, mark=6_000_000),
        Bar("Trang web", 0, "Đã chi 0 / 4.800.000 ₫", mark=4_800_000),
    ]
    svg = _parse(bar_chart(bars, title="Chi tiêu", summary="Theo từng dòng."))
    assert svg.get("role") == "img"
    title_id, desc_id = str(svg.get("aria-labelledby")).split()
    title = svg.find(f"{SVG}title")
    desc = svg.find(f"{SVG}desc")
    assert title is not None and title.get("id") == title_id and title.text == "Chi tiêu"
    assert desc is not None and desc.get("id") == desc_id
    assert desc.text == (
        "Theo từng dòng. In ấn: Đã chi 300.000 / 6.000.000 ₫. Trang web: Đã chi 0 / 4.800.000 ₫."
    )
    drawn = [t.text for t in svg.iter(f"{SVG}text")]
    assert drawn == ["In ấn", "Đã chi 300.000 / 6.000.000 ₫", "Trang web", "Đã chi 0 / 4.800.000 ₫"]


def test_a_name_typed_with_markup_is_drawn_as_text() -> None:
    name = 'Trường <script>alert("x")</script> & Co'
    markup = bar_chart([Bar(name, 1, "1 ₫")], title=name, summary="")
    assert "<script>" not in markup
    svg = _parse(markup)
    assert [t.text for t in svg.iter(f"{SVG}text")][0] == name


def test_bars_share_a_scale_or_each_fills_its_own_allocation() -> None:
    bars = [Bar("a", 1_000, "", mark=2_000), Bar("b", 4_000, "", mark=4_000)]

    def widths(own: bool) -> list[float]:
        svg = _parse(bar_chart(bars, title="t", summary="", own_scale=own))
        return [
            float(str(r.get("width"))) for r in svg.iter(f"{SVG}rect") if r.get("class") == "solid"
        ]

    usable = WIDTH - 8
    assert widths(False) == [usable / 4, usable]
    assert widths(True) == [usable / 2, usable]


def test_a_long_line_of_figures_is_fitted_to_the_chart_width_not_cut_off() -> None:
    long = "Đã chi 1.234.567.890 + đang xử lý 2.345.678.901 / 9.876.543.210 ₫"
    svg = _parse(bar_chart([Bar("x", 1, long), Bar("y", 1, "1 ₫")], title="t", summary=""))
    figures = [t for t in svg.iter(f"{SVG}text") if t.get("class") == "figures"]
    assert figures[0].get("textLength") == str(WIDTH - 8)
    assert figures[1].get("textLength") is None
