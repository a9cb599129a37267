"""WSGI entry point of the district's witness service: `gunicorn witness_wsgi:app`."""

from webapp.witness_service import create_witness_app

app = create_witness_app()
