#!/usr/bin/env bash
# Install into .venv, create the demo school on SQLite (instance/expenses.sqlite) and start the app.
#   PORT=5201 bash scripts/run.sh          another port (mail links follow it)
#   DEMO_REQUESTS=200 bash scripts/run.sh  more signed demo requests (default 40)
#   bash scripts/run.sh --reset            throw the old demo database away and start afresh
# Mails go to instance/demo-mail.txt (a background `notify worker`) unless EXPENSES_SMTP_HOST is set.
set -euo pipefail
cd "$(dirname "$0")/.."
reset=no
for arg in "$@"; do
  case "$arg" in
    --reset) reset=yes ;;
    *) echo "usage: bash scripts/run.sh [--reset]" >&2; exit 2 ;;
  esac
done
port="${PORT:-5000}"
export EXPENSES_BASE_URL="${EXPENSES_BASE_URL:-http://localhost:$port}"  # passkeys need a host name, not an IP
database="${DATABASE_URL:-sqlite:///instance/expenses.sqlite}"
mail_file="${EXPENSES_DEMO_MAIL:-instance/demo-mail.txt}"
mkdir -p instance "$(dirname "$mail_file")"

# pip only when the project's requirements changed since the last install
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.installed-$(cat pyproject.toml verifier/pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "Installing the application into .venv ..."
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e ./verifier -e .
  rm -f .venv/.installed-* && touch "$stamp"
fi

sqlite_file="${database#sqlite:///}"
if [ "$sqlite_file" != "$database" ] && [ -e "$sqlite_file" ]; then
  if [ "$reset" = yes ]; then
    rm -f "$sqlite_file" "$mail_file"
    echo "Removed the old demo database $sqlite_file."
  else
    reused="Reusing the demo database $sqlite_file from an earlier run (bash scripts/run.sh --reset starts afresh)."
  fi
fi
logins=$(.venv/bin/flask --app wsgi demo --requests "${DEMO_REQUESTS:-40}")
: >"$mail_file"
.venv/bin/flask --app wsgi notify worker --interval 5 >>"$mail_file" 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null || true' EXIT
echo
echo "$logins"
[ -n "${reused:-}" ] && echo "$reused"
echo "Mail is written to $mail_file (links point to $EXPENSES_BASE_URL)."
echo "Open $EXPENSES_BASE_URL and sign in with one of the logins above."
echo
.venv/bin/flask --app wsgi run --host 127.0.0.1 --port "$port"
