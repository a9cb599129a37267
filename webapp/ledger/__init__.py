from flask import Blueprint

bp = Blueprint("ledger", __name__)

from . import routes  # noqa: E402,F401
