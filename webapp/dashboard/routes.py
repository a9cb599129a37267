"""Read-only dashboards: the inspector's for this school, and the district's over its schools.

Every view here is a GET that reads through a read-only session; nothing on these pages posts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from flask import (
    Response,
    abort,
    current_app,
    render_template,
    send_file,
    stream_with_context,
    url_for,
)
from flask_login import current_user

from workflow import district_report as dr
from workflow import queries
from workflow.ledger import LedgerFilter, csv_chunks, write_xlsx
from workflow.models import Request
from workflow.policy import DASHBOARD_READERS

from ..context import db, login_required, roles_required, runtime
from ..templating import label
from ..uploads import temporary_path
from . import bp, figures

# --- this school --------------------------------------------------------------------------------


def _school_page(
    report: dr.SchoolReport,
    *,
    school: str,
    line_url: Callable[[str], str],
    request_url: Callable[[str], str],
    **extra: Any,
) -> str:
    return render_template(
        "dashboard/school.html",
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
    report = dr.school_report(db(), rt.definitions, now=rt.now())
    return _school_page(
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
    report = dr.school_report(db(), rt.definitions, now=rt.now())
    figures_of = report.line(code)
    if figures_of is None:
        abort(404)
    return render_template(
        "dashboard/line.html",
        report=report,
        school=label(report.school),
        line=figures_of,
        requests=dr.line_requests(db(), report.school_year, code),
        request_url=lambda number: url_for("requests.detail", number=number),
        back=url_for("dashboard.school"),
        labels={name: state.label for name, state in rt.definitions.workflow().states.items()},
    )


# --- the district -------------------------------------------------------------------------------


def _granted() -> Sequence[dr.SchoolSource]:
    """The schools the signed-in person may read; 404 outside a district deployment, 403 for
    someone granted none."""
    district = cast(dr.District | None, current_app.extensions.get("district"))
    if district is None:
        abort(404)
    schools = district.schools_for(current_user.login)
    if not schools:
        abort(403)
    return schools


def _school_or_404(code: str) -> dr.SchoolSource:
    found = dr.find_school(_granted(), code)
    if found is None:
        abort(404)  # NOTE: not granted and unknown look the same: no list of schools leaks
    return found


@bp.get("/district/dashboard")
@login_required
def district() -> str:
    """Every granted school: spending against allocation, stuck requests, checkpoint, check."""
    reports = dr.district_report(_granted(), now=runtime().now())
    return render_template(
        "dashboard/district.html",
        reports=reports,
        chart=figures.schools_chart([(s.name, r) for s, r in reports]),
    )


@bp.get("/district/dashboard/<code>")
@login_required
def district_school(code: str) -> str:
    """One granted school's dashboard, as the inspector of the school sees it."""
    source = _school_or_404(code)
    with source.sessions() as session:
        report = dr.school_report(
            session,
            source.definitions,
            now=runtime().now(),
            last_verification=source.last_verification,
        )
    return _school_page(
        report,
        school=source.name,
        line_url=lambda line: url_for("dashboard.district_line", code=code, line=line),
        request_url=lambda number: url_for("dashboard.district_request", code=code, number=number),
        back=url_for("dashboard.district"),
    )


@bp.get("/district/dashboard/<code>/lines/<line>")
@login_required
def district_line(code: str, line: str) -> str:
    """One budget line of a granted school and every request on it."""
    source = _school_or_404(code)
    with source.sessions() as session:
        report = dr.school_report(session, source.definitions, now=runtime().now())
        figures_of = report.line(line)
        if figures_of is None:
            abort(404)
        requests = dr.line_requests(session, report.school_year, line)
    return render_template(
        "dashboard/line.html",
        report=report,
        school=source.name,
        line=figures_of,
        requests=requests,
        request_url=lambda number: url_for("dashboard.district_request", code=code, number=number),
        back=url_for("dashboard.district_school", code=code),
        labels={n: s.label for n, s in source.definitions.workflow().states.items()},
    )


@bp.get("/district/dashboard/<code>/requests/<reqno:number>")
@login_required
def district_request(code: str, number: str) -> str:
    """A request of a granted school with its signed timeline (read-only)."""
    source = _school_or_404(code)
    workflow = source.definitions.workflow()
    with source.sessions() as session:
        row = session.get(Request, number)
        if row is None:
            abort(404)
        steps = queries.timeline(session, number)
        session.expunge(row)
    return render_template(
        "dashboard/request.html",
        school=source.name,
        row=row,
        steps=steps,
        workflow=workflow,
        catalogue=source.definitions.catalogues.get(row.school_year),
        labels={n: s.label for n, s in workflow.states.items()},
        back=url_for("dashboard.district_school", code=code),
    )


@bp.get("/district/ledger.csv")
@login_required
def district_ledger_csv() -> Response:
    """The ledger of every granted school, a school column first (CSV, streamed)."""
    schools = _granted()

    def generate() -> Any:
        yield from csv_chunks(dr.district_ledger_rows(schools, LedgerFilter()), dr.DISTRICT_COLUMNS)

    response = Response(stream_with_context(generate()), mimetype="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = 'attachment; filename="so-chi-cntt-phong.csv"'
    return response


@bp.get("/district/ledger.xlsx")
@login_required
def district_ledger_xlsx() -> Response:
    """The ledger of every granted school, a school column first (XLSX)."""
    path = temporary_path(".xlsx")
    write_xlsx(dr.district_ledger_rows(_granted(), LedgerFilter()), str(path), dr.DISTRICT_COLUMNS)
    response = send_file(
        path,
        as_attachment=True,
        download_name="so-chi-cntt-phong.xlsx",
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    response.call_on_close(lambda: path.unlink(missing_ok=True))
    return response
