#!/usr/bin/env bash
# Install everything into .venv and run the checks: ruff (lint + format), mypy on workflow/, pytest.
# Set TEST_DATABASE_URL=postgresql+psycopg://... to run the suite against PostgreSQL too.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
