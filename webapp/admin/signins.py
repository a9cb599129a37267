"""Admin: failed sign-ins, so that guessing at passwords is seen by someone."""

from __future__ import annotations

from flask import render_template

from workflow.signin import SignIn

from ..context import db, roles_required
from . import bp


@bp.get("/sign-ins")
@roles_required("admin")
def sign_ins() -> str:
    """The latest failed sign-ins: when, which login was typed, from which address."""
    return render_template("admin/sign_ins.html", failures=SignIn(db()).recent_failures())
