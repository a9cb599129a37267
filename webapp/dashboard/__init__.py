from flask import Blueprint

# The inspector's dashboard of this school (under /audit/), and the district's over the schools
# it is granted (under /district/: in the district deployment's app, or wherever a
# ``district_access`` is configured; see district.py).
bp = Blueprint("dashboard", __name__)
district_bp = Blueprint("district_dashboard", __name__, url_prefix="/district")

from . import district, routes  # noqa: E402,F401
