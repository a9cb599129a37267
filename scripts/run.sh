#!/usr/bin/env bash
# Install into .venv, create the demo school on SQLite (instance/expenses.sqlite) and start the app.
# Mails are printed in this terminal by a background `notify worker` unless EXPENSES_SMTP_HOST is set.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e ./verifier -e .
.venv/bin/flask --app wsgi demo --requests "${DEMO_REQUESTS:-40}"
.venv/bin/flask --app wsgi notify worker --interval 5 &
worker=$!
trap 'kill $worker 2>/dev/null || true' EXIT
.venv/bin/flask --app wsgi run --host 127.0.0.1 --port "${PORT:-5000}"
