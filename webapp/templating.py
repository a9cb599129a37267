"""Template filters and globals: đồng, Vietnamese dates, state labels, navigation by role."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from flask import Flask
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup

from expense_audit.money import format_vnd
from workflow import policy

from .context import acting_roles, roles_now, runtime

VN_OFFSET = timedelta(hours=7)


def local_time(ts: str | datetime | None) -> str:
    """'2025-01-14T03:15:00Z' -> '14/01/2025 10:15' (Vietnam time)."""
    if not ts:
        return ""
    moment = ts if isinstance(ts, datetime) else datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")
    return (moment + VN_OFFSET).strftime("%d/%m/%Y %H:%M")


def vn_date(value: str | date | None) -> str:
    """'2025-01-14' -> '14/01/2025'."""
    if not value:
        return ""
    day = value if isinstance(value, date) else date.fromisoformat(value)
    return day.strftime("%d/%m/%Y")


def duration(seconds: float) -> str:
    """A stage's length, roughly: '2 ngày 3 giờ' / '2 d 3 h'."""
    english = str(get_locale()) == "en"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = []
    if days:
        parts.append(f"{days} {'d' if english else 'ngày'}")
    if hours:
        parts.append(f"{hours} {'h' if english else 'giờ'}")
    if not days and (minutes or not parts):
        parts.append(f"{minutes} {'min' if english else 'phút'}")
    return " ".join(parts)


def role_label(role: str) -> str:
    """A role as people at school call it."""
    names = {
        "proposer": _("proposer"),
        "reviewer": _("deputy principal (review)"),
        "approver": _("principal (approval)"),
        "accountant": _("accountant"),
        "auditor": _("auditor"),
        "admin": _("administrator"),
        "district_finance": _("district finance officer"),
        "institution": _("school (institution key)"),
    }
    return str(names.get(role, role))


def method_label(method: str, by: str | None = None) -> str:
    """How a key came: enrollment with an admin's code, rotation, recovery, the set-up."""
    if by == "setup":
        return str(_("made by the server set-up (command line or demo)"))
    names = {
        "enrollment": _("enrolled with an admin's code"),
        "rotation": _("rotation signed by the previous key"),
        "recovery": _("recovery with an admin's code"),
        "legacy": _("registered before enrollment codes"),
    }
    return str(names.get(method, method))


def failure_label(reason: str) -> str:
    """Why a signature failed, as the owner and the admin read it."""
    names = {
        "wrong-secret": _("wrong signing secret"),
        "passkey-refused": _("passkey answer refused"),
    }
    return str(names.get(reason, reason))


def label(mapping: Any) -> str:
    """Pick the user's language from a {vi, en} mapping of a definition."""
    lang = str(get_locale())
    return str(mapping.get(lang) or mapping.get("vi") or "")


def reqno(number: str | None) -> Markup:
    """A request number kept on one line ("2024-2025/0036" never breaks at "-" or "/")."""
    return Markup('<span class="reqno">%s</span>') % (number or "")


def line_name(code: str | None, school_year: str | None = None) -> str:
    """A budget line's name in the user's language, not its code (PRINT, SW-ASSET...)."""
    return _catalogue_name(code, school_year, "lines")


def source_name(code: str | None, school_year: str | None = None) -> str:
    """A funding source's name in the user's language, not its code (NSNN-TX...)."""
    return _catalogue_name(code, school_year, "sources")


def _catalogue_name(code: str | None, school_year: str | None, kind: str) -> str:
    if not code:
        return ""
    catalogues = runtime().definitions.catalogues
    wanted = [catalogues[school_year]] if school_year in catalogues else []
    for catalogue in [*wanted, *reversed(list(catalogues.values()))]:
        entry = getattr(catalogue, kind).get(code)
        if entry is not None:
            return label(entry.name if kind == "lines" else entry)
    return code


def register_filters(app: Flask) -> None:
    """The filters that need no school's runtime (also for the district deployment's app)."""
    app.add_template_filter(format_vnd, "vnd")
    app.add_template_filter(local_time, "local_time")
    app.add_template_filter(vn_date, "vn_date")
    app.add_template_filter(duration, "duration")
    app.add_template_filter(label, "label")
    app.add_template_filter(role_label, "role_label")
    app.add_template_filter(reqno, "reqno")


def register(app: Flask) -> None:
    register_filters(app)
    app.add_template_filter(line_name, "line_name")
    app.add_template_filter(source_name, "source_name")
    app.add_template_global(method_label, "method_label")
    app.add_template_global(failure_label, "failure_label")

    @app.context_processor
    def globals_() -> dict[str, Any]:
        rt = runtime()
        workflow = rt.definitions.workflow()
        # every state a request may be in, whichever workflow it follows (the district's too)
        states = dict(workflow.states)
        for other in rt.definitions.workflows.values():
            for name, state in other.states.items():
                states.setdefault(name, state)
        return {
            "states": states,
            "workflow": workflow,
            "catalogues": rt.definitions.catalogues,
            "lang": str(get_locale()),
            "has_role": lambda role: current_user.is_authenticated and current_user.has_role(role),
            # own roles, or one a live mandate gives today (the deputy signing for the principal)
            "acts_as": lambda role: current_user.is_authenticated and role in roles_now(),
            "may_delegate": lambda: (
                current_user.is_authenticated
                and bool(policy.delegable_roles(current_user.roles) or acting_roles())
            ),
        }
