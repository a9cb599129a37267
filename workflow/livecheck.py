"""`audit verify` on the live database: the log verifies, and every row equals its replay."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from expense_audit.projection import PROJECTION_FIELDS
from expense_audit.verify import Report, verify_bundle

from .budget_totals import expected_totals, stored_totals
from .bundle import export_bundle
from .keys import InstitutionKey
from .models import LogHead, Request
from .service import projection_of
from .verifications import record_verification


def verify_live(
    session: Session,
    *,
    institution: InstitutionKey,
    now: datetime,
    source: str | None = None,
    trusted_checkpoint: str | None = None,
) -> Report:
    """Export the log to a temporary bundle, verify it, and compare the request tables to it.

    With ``source`` ("cli", "web") the outcome is kept (workflow.verifications) in the caller's
    transaction, for the audit page, the district's dashboard and the metrics.
    ``trusted_checkpoint``: a checkpoint kept elsewhere (a witness's) the log must extend.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "live.zip"
        export_bundle(session, path, institution=institution, now=now)
        report = verify_bundle(
            path, institution_key=institution.fingerprint, trusted_checkpoint=trusted_checkpoint
        )
    replayed = report.requests
    stored = {row.number: projection_of(row) for row in session.scalars(select(Request))}
    for number in sorted(set(replayed) | set(stored)):
        row, replay = stored.get(number), replayed.get(number)
        if row is None:
            report.add(
                replay["last_seq"] if replay else None,
                "row-missing",
                "the log has events for a request the table lacks",
                number,
            )
            continue
        if replay is None:
            report.add(
                None, "row-without-events", "the table holds a request the log never saw", number
            )
            continue
        changed = [name for name in PROJECTION_FIELDS if row.get(name) != replay.get(name)]
        if changed:
            details = ", ".join(
                f"{name}: table {row.get(name)!r}, log {replay.get(name)!r}" for name in changed[:4]
            )
            report.add(replay["last_seq"], "row-differs-from-log", details, number)
    # The running budget totals are a projection too.
    implied, kept = expected_totals(replayed.values()), stored_totals(session)
    for total in sorted(set(implied) | set(kept)):
        if implied.get(total, 0) != kept.get(total, 0):
            school_year, line, year = total
            report.add(
                None,
                "budget-totals-differ",
                f"{line} {school_year} budget year {year}: table {kept.get(total, 0)}, log {implied.get(total, 0)}",
            )
    report.problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    if source is not None:
        origin = report.origin or session.scalars(select(LogHead.origin)).first() or ""
        record_verification(session, report, origin=origin, now=now, source=source)
    return report
