"""The inspector's dashboards on a phone (390x844, Vietnamese): the charts are drawn, named and
described, nothing is wider than the screen, and axe-core finds no serious or critical violation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

from ..factories import GrantedSchools, School, pay_data, source_of
from .test_phone_pages import WIDTH, english_codes, problems_of


def _history(school: School) -> None:
    """Paid, approved, waiting and refused requests on several lines."""
    paid = school.to_state("approved", line="SW-IMAS", amount="1.700.000")
    school.act(paid, "pay", "mai", data=pay_data(1_700_000))
    school.to_state("approved", line="PRINT", amount="450.000")
    school.to_state("submitted", line="PRINT", amount="400.000")
    school.to_state("forwarded", line="WEB", amount="2.000.000")
    school.to_state("rejected", line="PRINT", amount="200.000")


def _charts(page: Any) -> list[dict[str, Any]]:
    """Each chart as drawn: its accessible name, description, and box on the screen."""
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll("svg[role=img]")].map((svg) => {
                const r = svg.getBoundingClientRect();
                const [t, d] = svg.getAttribute("aria-labelledby").split(" ");
                return {title: document.getElementById(t).textContent,
                        desc: document.getElementById(d).textContent,
                        left: r.left, right: r.right, height: r.height,
                        bars: svg.querySelectorAll("g.bar").length};
            })"""
        )
    )


def test_the_dashboards_show_their_charts_on_a_phone_without_scrolling_sideways(
    app: Flask,
    phone: Callable[[str], Any],
    school: School,
    second_school: School,
    axe_source: str,
    shots: Path,
) -> None:
    _history(school)
    _history(second_school)
    app.extensions["district_access"] = GrantedSchools(
        {
            "kiem": [
                source_of(school, "th-a", "Trường Tiểu học A"),
                source_of(second_school, "th-b", "Trường Tiểu học B"),
            ]
        },
        school.runtime.now,
    )
    codes = english_codes(school.runtime)
    kiem = phone("kiem")
    failures: list[str] = []
    expected = {
        "/audit/dashboard": 2,  # spending per line, time per state
        "/district/dashboard": 1,  # spending per school
        "/district/dashboard/th-b": 2,
        "/audit/dashboard/lines/PRINT": 0,
    }
    for path, count in expected.items():
        response = kiem.goto(path)
        assert response is not None and response.status == 200, path
        kiem.screenshot(path=shots / f"dashboard{path.replace('/', '-')}.png", full_page=True)
        charts = _charts(kiem)
        assert len(charts) == count, path
        for chart in charts:
            assert chart["title"] and chart["desc"], path
            assert chart["bars"] > 0 and chart["height"] > 40, path
            assert chart["left"] >= 0 and chart["right"] <= WIDTH, (path, chart)
        failures += [f"{path}: {p}" for p in problems_of(kiem, axe_source, codes)]
    assert not failures, "\n".join(failures)
    kiem.goto("/audit/dashboard")
    [spending, _] = _charts(kiem)
    assert "Đã chi 1.700.000 + đang xử lý 0 / " in spending["desc"]  # Imas: paid in full
    # the drill-down from a school's line to a request's signed timeline, by tapping
    kiem.goto("/district/dashboard")
    kiem.click("#school-th-b h2 a")
    kiem.click("#lines a:has-text('Imas')")
    kiem.click("#line-requests a >> nth=0")
    assert kiem.locator("#timeline li").count() == 4  # submit, forward, approve, pay
    kiem.screenshot(path=shots / "dashboard-district-request.png", full_page=True)
    assert problems_of(kiem, axe_source, codes) == []  # fits the phone, passes axe
