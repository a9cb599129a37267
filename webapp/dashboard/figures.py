"""The dashboard's charts in the reader's language, built from workflow.district_report figures."""

from __future__ import annotations

from collections.abc import Sequence

from flask_babel import gettext as _
from markupsafe import Markup

from expense_audit.money import format_vnd
from workflow.district_report import LineFigures, SchoolReport, StateTime

from ..charts import Bar, bar_chart
from ..templating import duration, label


def number(amount: int) -> str:
    """Đồng without the sign: 1.800.000 (the chart's figures end with one ₫)."""
    return format_vnd(amount).removesuffix(" ₫")


def _spending_bar(name: str, spent: int, committed: int, allocation: int) -> Bar:
    return Bar(
        label=name,
        solid=spent,
        hatched=committed,
        mark=allocation,
        figures=_(
            "Spent %(spent)s + in flight %(committed)s / %(allocation)s ₫",
            spent=number(spent),
            committed=number(committed),
            allocation=number(allocation),
        ),
    )


def _legend() -> list[tuple[str, str]]:
    return [("solid", _("Spent")), ("hatched", _("In flight")), ("mark", _("Allocation"))]


def lines_chart(lines: Sequence[LineFigures], school: str) -> Markup:
    """Spending against allocation per budget line of one school."""
    return bar_chart(
        [
            _spending_bar(label(line.name), line.spent_vnd, line.committed_vnd, line.allocation_vnd)
            for line in lines
        ],
        title=_("Spending against allocation per budget line, %(school)s", school=school),
        summary=_(
            "Per line: paid (solid bar), asked by requests in flight (hatched), and the "
            "allocation (marked line), in đồng."
        ),
        legend=_legend(),
        own_scale=True,
    )


def schools_chart(reports: Sequence[tuple[str, SchoolReport]]) -> Markup:
    """Spending against allocation per school (the plan in force of each)."""
    return bar_chart(
        [
            _spending_bar(name, r.spent_vnd, r.committed_vnd, r.allocation_vnd)
            for name, r in reports
        ],
        title=_("Spending against allocation per school"),
        summary=_(
            "Per school: paid (solid bar), asked by requests in flight (hatched), and the "
            "allocation of the plan in force (marked line), in đồng."
        ),
        legend=_legend(),
        own_scale=True,
    )


def time_chart(times: Sequence[StateTime], school: str) -> Markup:
    """Median time finished requests spent in each state."""
    return bar_chart(
        [
            Bar(
                label=label(t.label),
                solid=t.median_seconds,
                figures=_(
                    "median %(median)s, mean %(mean)s, %(n)s stays",
                    median=duration(t.median_seconds),
                    mean=duration(t.mean_seconds),
                    n=t.stays,
                ),
            )
            for t in times
        ],
        title=_("Time spent per state by finished requests, %(school)s", school=school),
        summary=_("How long a finished request stayed in each state (the bar: the median)."),
    )
