"""The accountant: approved requests awaiting payment, and the ledger with its exports."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import urlencode

from flask import (
    Response,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from expense_audit.budget import COMMITTED_STATES
from expense_audit.errors import WorkflowError
from workflow import bookkeeping, queries
from workflow.ledger import (
    LedgerFilter,
    csv_chunks,
    rows_from_database,
    totals_from_database,
    write_xlsx,
)
from workflow.policy import LEDGER_READERS, PERSONAL_DATA_READERS

from ..context import db, roles_required, runtime
from ..errors import message_for
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
        bookkeeper=bool(PERSONAL_DATA_READERS & set(current_user.roles)),
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


# The bookkeeping import sheet holds payees' tax codes if the mapping asks for them: the
# accountant and auditors only (workflow.policy.PERSONAL_DATA_READERS).
BOOKKEEPERS = tuple(sorted(PERSONAL_DATA_READERS))


def _day(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name) or "")
    except ValueError:
        return None


def _bookkeeping_rows() -> tuple[bookkeeping.BookkeepingMap, Iterator[dict[str, Any]]]:
    """The mapping (read now, so the accountant's edit applies) and the rows of the selection."""
    mapping = runtime().bookkeeping()
    requests = bookkeeping.paid_requests(
        db(),
        _filter(),
        paid_from=_day("paid_from"),
        paid_to=_day("paid_to"),
    )
    return mapping, bookkeeping.entries(requests, mapping, runtime().definitions)


@bp.get("/ledger/bookkeeping.xlsx")
@roles_required(*BOOKKEEPERS)
def bookkeeping_xlsx() -> BaseResponse:
    """Paid requests as the voucher-import sheet of the accounting software (XLSX)."""
    try:
        mapping, rows = _bookkeeping_rows()
    except WorkflowError as error:
        flash(message_for(error), "error")
        return redirect(url_for("ledger.ledger"))
    path = temporary_path(".xlsx")
    try:
        bookkeeping.write_xlsx(rows, mapping, str(path))
    except WorkflowError as error:
        path.unlink(missing_ok=True)
        flash(message_for(error), "error")
        return redirect(url_for("ledger.ledger"))
    response = send_file(
        path,
        as_attachment=True,
        download_name="nhap-chung-tu.xlsx",
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    response.call_on_close(lambda: path.unlink(missing_ok=True))
    return response


@bp.get("/ledger/bookkeeping.csv")
@roles_required(*BOOKKEEPERS)
def bookkeeping_csv() -> BaseResponse:
    """Paid requests as the voucher-import sheet (CSV, UTF-8 with BOM)."""
    try:
        mapping, rows = _bookkeeping_rows()
        text = "".join(bookkeeping.csv_chunks(rows, mapping))
    except WorkflowError as error:
        flash(message_for(error), "error")
        return redirect(url_for("ledger.ledger"))
    response = Response(text, mimetype="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = 'attachment; filename="nhap-chung-tu.csv"'
    return response
