"""The accountant: approved requests awaiting payment, and the ledger with its exports."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

from flask import Response, render_template, request, send_file, stream_with_context

from expense_audit.budget import COMMITTED_STATES
from workflow import queries
from workflow.ledger import (
    LedgerFilter,
    csv_chunks,
    rows_from_database,
    totals_from_database,
    write_xlsx,
)
from workflow.policy import LEDGER_READERS

from ..context import db, roles_required, runtime
from ..params import parse_int
from ..uploads import temporary_path
from . import bp

PAGE = 100
MAX_PAGE = 10**9  # offsets stay far inside a BIGINT


@bp.get("/payments")
@roles_required("accountant", acting=True)
def payments() -> str:
    """Approved requests waiting to be paid, oldest first."""
    payments = runtime().definitions.workflow().queue("payments")
    rows = queries.waiting(db(), payments.state, limit=None)
    names = queries.names_of(db(), [r.owner for r in rows] + [r.approved_by for r in rows])
    return render_template("ledger/payments.html", rows=rows, names=names)


def _filter() -> LedgerFilter:
    args = request.args
    budget_year = args.get("budget_year")
    return LedgerFilter(
        school_year=args.get("school_year") or None,
        budget_year=parse_int(budget_year, maximum=9999),
        line=args.get("line") or None,
        source=args.get("source") or None,
        state=args.get("state") if args.get("state") in COMMITTED_STATES else None,
    )


@bp.get("/ledger")
@roles_required(*LEDGER_READERS)
def ledger() -> str:
    """Approved and paid expenses, filtered, with totals; one page of rows at a time."""
    selection = _filter()
    page = max(parse_int(request.args.get("page"), maximum=MAX_PAGE) or 1, 1)
    rows = list(
        rows_from_database(
            db(), selection, runtime().definitions, offset=(page - 1) * PAGE, limit=PAGE
        )
    )
    summary = totals_from_database(db(), selection)
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template(
        "ledger/ledger.html",
        ledger_states=COMMITTED_STATES,
        rows=rows,
        totals=summary,
        selection=selection,
        page=page,
        pages=max((summary["count"] + PAGE - 1) // PAGE, 1),
        args=args,
        query=urlencode(args),
    )


@bp.get("/ledger.csv")
@roles_required(*LEDGER_READERS)
def ledger_csv() -> Response:
    """The ledger as CSV (UTF-8 with BOM, so Excel shows Vietnamese), streamed."""
    selection = _filter()
    session = runtime().read_sessions()

    def generate() -> Iterator[str]:
        try:
            yield from csv_chunks(rows_from_database(session, selection, runtime().definitions))
        finally:
            session.close()

    response = Response(stream_with_context(generate()), mimetype="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = 'attachment; filename="so-chi-cntt.csv"'
    return response


@bp.get("/ledger.xlsx")
@roles_required(*LEDGER_READERS)
def ledger_xlsx() -> Response:
    """The ledger as XLSX with formatted đồng and a totals row."""
    path = temporary_path(".xlsx")
    write_xlsx(rows_from_database(db(), _filter(), runtime().definitions), str(path))
    response = send_file(
        path,
        as_attachment=True,
        download_name="so-chi-cntt.xlsx",
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    response.call_on_close(lambda: path.unlink(missing_ok=True))
    return response
