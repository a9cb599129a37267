from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from . import routes, signins  # noqa: E402,F401
