"""WSGI entry point: `flask --app wsgi ...` and `gunicorn wsgi:app`.

EXPENSES_MULTI_SCHOOL=1 (PostgreSQL): the district deployment, schools under /s/<code>/.
"""

import os

from webapp import create_app
from webapp.district.app import create_district_app

app = create_district_app() if os.environ.get("EXPENSES_MULTI_SCHOOL") == "1" else create_app()
