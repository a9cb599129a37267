"""The inspector's read-only dashboard of this school (the district's is in ``district.py``).

Every view here is a GET that reads through a read-only session; nothing on these pages posts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, render_template, url_for

from workflow import district_report as dr
from workflow.policy import DASHBOARD_READERS

from ..context import db, roles_required, runtime
from ..templating import label
from . import bp, figures

# --- this school --------------------------------------------------------------------------------


def school_page(
    report: dr.SchoolReport,
    *,
    school: str,
    line_url: Callable[[str], str],
    request_url: Callable[[str], str],
    **extra: Any,
) -> str:
    return render_template(
        "dashboard/school.html",
        layout=extra.pop("layout", "base.html"),
        report=report,
        school=school,
        lines_chart=figures.lines_chart(report.lines, school),
        time_chart=figures.time_chart(report.time_in_state, school),
        line_url=line_url,
        request_url=request_url,
        **extra,
    )


@bp.get("/audit/dashboard")
@roles_required(*DASHBOARD_READERS)
def school() -> str:
    """This school's spending per line, waiting requests and time per state (read-only)."""
    rt = runtime()
    report = dr.school_report(
        db(),
        rt.definitions,
        now=rt.now(),
        last_verification=dr.recorded_verification(rt.settings.origin),
    )
    return school_page(
        report,
        school=label(report.school),
        line_url=lambda code: url_for("dashboard.line", code=code),
        request_url=lambda number: url_for("requests.detail", number=number),
    )


@bp.get("/audit/dashboard/lines/<code>")
@roles_required(*DASHBOARD_READERS)
def line(code: str) -> str:
    """One budget line of the plan in force: its figures and every request on it."""
    rt = runtime()
    report = dr.school_report(db(), rt.definitions, now=rt.now(), detail=False)
    figures_of = report.line(code)
    if figures_of is None:
        abort(404)
    return render_template(
        "dashboard/line.html",
        layout="base.html",
        report=report,
        school=label(report.school),
        line=figures_of,
        requests=dr.line_requests(db(), report.school_year, code),
        request_url=lambda number: url_for("requests.detail", number=number),
        back=url_for("dashboard.school"),
        labels={name: state.label for name, state in dr.states_of(rt.definitions).of.items()},
    )
