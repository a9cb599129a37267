from flask import Blueprint

bp = Blueprint("mandates", __name__)

from . import routes  # noqa: E402,F401
