#!/usr/bin/env bash
# Install everything into .venv and run the checks: ruff (lint + format), mypy --strict on verifier/,
# workflow/ and webapp/, then the
# pytest suite on SQLite and, where PostgreSQL is installed, again on a throw-away PostgreSQL cluster.
# REQUIRE_POSTGRES=1 (set by CI) makes a missing PostgreSQL an error instead of a skipped run.
# The suite runs on PYTEST_WORKERS pytest-xdist workers (2 by default, one per core of the CI
# machine; 0 runs it in one process); each worker migrates its own template databases.
set -euo pipefail
trap 'echo "scripts/test.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e ./verifier -e '.[test]'
# axe-core (npm registry) for the accessibility check of every page in the browser test.
(cd tests/e2e && npm ci --no-audit --no-fund --silent)
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

echo "== the verifier alone: its wheel in a fresh venv without Flask or SQLAlchemy"
inspector="$(mktemp -d)"
.venv/bin/pip wheel --quiet --no-deps ./verifier -w "$inspector/wheels"
python3 -m venv "$inspector/venv"
"$inspector/venv/bin/pip" install --quiet "$inspector"/wheels/expense_audit-*.whl
if "$inspector/venv/bin/python" -c "import flask" 2>/dev/null || "$inspector/venv/bin/python" -c "import sqlalchemy" 2>/dev/null; then
  echo "the verifier's venv has Flask or SQLAlchemy" >&2; exit 1
fi
if "$inspector/venv/bin/python" -c "import pyhanko" 2>/dev/null; then
  echo "the verifier's venv has pyHanko without asking for the pdf extra" >&2; exit 1
fi
demo="$inspector/demo"
mkdir -p "$demo"
EXPENSES_KEYS="$demo/keys" DATABASE_URL="sqlite:///$demo/d.sqlite" EXPENSES_SCRYPT_N=1024 \
  .venv/bin/flask --app wsgi demo --requests 6 >/dev/null
EXPENSES_KEYS="$demo/keys" DATABASE_URL="sqlite:///$demo/d.sqlite" \
  .venv/bin/flask --app wsgi audit export "$demo/bundle.zip" >/dev/null
fingerprint="$(EXPENSES_KEYS="$demo/keys" DATABASE_URL="sqlite:///$demo/d.sqlite" .venv/bin/flask --app wsgi keys fingerprint | sed -n 1p)"  # NOTE: sed reads to the end: head would break the pipe (pipefail)
"$inspector/venv/bin/audit-verify" "$demo/bundle.zip" --institution-key "$fingerprint"
rm -rf "$inspector"

workers=${PYTEST_WORKERS:-2}

echo "== pytest on SQLite"
.venv/bin/python -m pytest -n "$workers" "$@"

if ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  echo "== pytest on PostgreSQL"
  eval "$(bash scripts/pg.sh start)"
  trap 'bash scripts/pg.sh stop' EXIT
  .venv/bin/python -m pytest -n "$workers" "$@"
elif [ "${REQUIRE_POSTGRES:-0}" = 1 ]; then
  echo "PostgreSQL is required but not installed (apt-get install postgresql)" >&2
  exit 1
else
  echo "== PostgreSQL not installed: the PostgreSQL run was skipped"
fi
