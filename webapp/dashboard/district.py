"""The district's read-only dashboard over the schools a district user is granted.

Which schools the visitor may read comes from the app's ``district_access`` (in
``app.extensions``), a ``DistrictAccess``: the district deployment answers from its registry of
district accounts and grants; tests answer from a mapping. Each school is a
``workflow.district_report.SchoolSource`` (code, name, read-only sessions, definitions), so the
pages read every school through its own read-only session and nothing here writes. An app
without a ``district_access`` has no district view (404).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol, cast

from flask import (
    Response,
    abort,
    current_app,
    render_template,
    send_file,
    stream_with_context,
    url_for,
)

from workflow import district_report as dr
from workflow import queries
from workflow.ledger import LedgerFilter, csv_chunks, write_xlsx
from workflow.models import Request

from ..uploads import temporary_path
from . import district_bp as bp
from . import figures
from .routes import school_page


class DistrictAccess(Protocol):
    """What the district pages ask the deployment."""

    layout: str  # the template the pages extend (the district's or the school's base)

    def granted(self) -> Sequence[dr.SchoolSource] | None:
        """The schools the visitor may read; None when no district user is signed in."""
        ...

    def now(self) -> datetime:
        """The deployment's clock."""
        ...


def _access() -> DistrictAccess:
    access = cast(DistrictAccess | None, current_app.extensions.get("district_access"))
    if access is None:
        abort(404)
    return access


def _granted() -> Sequence[dr.SchoolSource]:
    """The schools the visitor may read: 403 for anyone not a district user or granted none."""
    schools = _access().granted()
    if not schools:
        abort(403)
    return schools


def _school_or_404(code: str) -> dr.SchoolSource:
    found = dr.find_school(_granted(), code)
    if found is None:
        abort(404)  # NOTE: not granted and unknown look the same: no list of schools leaks
    return found


@bp.get("/dashboard")
def index() -> str:
    """Every granted school: spending against allocation, stuck requests, checkpoint, check."""
    reports = dr.district_report(_granted(), now=_access().now())
    return render_template(
        "dashboard/district.html",
        layout=_access().layout,
        reports=reports,
        chart=figures.schools_chart([(s.name, r) for s, r in reports]),
    )


@bp.get("/dashboard/<code>")
def school(code: str) -> str:
    """One granted school's dashboard, as the inspector of the school sees it."""
    source = _school_or_404(code)
    with source.sessions() as session:
        report = dr.school_report(
            session,
            source.definitions,
            now=_access().now(),
            last_verification=source.last_verification,
        )
    return school_page(
        report,
        school=source.name,
        line_url=lambda line: url_for(".line", code=code, line=line),
        request_url=lambda number: url_for(".request", code=code, number=number),
        back=url_for(".index"),
        layout=_access().layout,
    )


@bp.get("/dashboard/<code>/lines/<line>")
def line(code: str, line: str) -> str:
    """One budget line of a granted school and every request on it."""
    source = _school_or_404(code)
    with source.sessions() as session:
        report = dr.school_report(session, source.definitions, now=_access().now(), detail=False)
        figures_of = report.line(line)
        if figures_of is None:
            abort(404)
        requests = dr.line_requests(session, report.school_year, line)
    return render_template(
        "dashboard/line.html",
        layout=_access().layout,
        report=report,
        school=source.name,
        line=figures_of,
        requests=requests,
        request_url=lambda number: url_for(".request", code=code, number=number),
        back=url_for(".school", code=code),
        labels={n: s.label for n, s in dr.states_of(source.definitions).of.items()},
    )


@bp.get("/dashboard/<code>/requests/<reqno:number>")
def request(code: str, number: str) -> str:
    """A request of a granted school with its signed timeline (read-only)."""
    source = _school_or_404(code)
    with source.sessions() as session:
        row = session.get(Request, number)
        if row is None:
            abort(404)
        steps = queries.timeline(session, number)
        session.expunge(row)
    return render_template(
        "dashboard/request.html",
        layout=_access().layout,
        school=source.name,
        row=row,
        steps=steps,
        actions=dr.action_labels(source.definitions),
        catalogue=source.definitions.catalogues.get(row.school_year),
        labels={n: s.label for n, s in dr.states_of(source.definitions).of.items()},
        back=url_for(".school", code=code),
    )


@bp.get("/ledger.csv")
def ledger_csv() -> Response:
    """The ledger of every granted school, a school column first (CSV, streamed)."""
    schools = _granted()

    def generate() -> Iterator[str]:
        yield from csv_chunks(dr.district_ledger_rows(schools, LedgerFilter()), dr.DISTRICT_COLUMNS)

    response = Response(stream_with_context(generate()), mimetype="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = 'attachment; filename="so-chi-cntt-phong.csv"'
    return response


@bp.get("/ledger.xlsx")
def ledger_xlsx() -> Response:
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
