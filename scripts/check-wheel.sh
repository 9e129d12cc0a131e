#!/usr/bin/env bash
# Builds the wheel and sdist (python -m build), installs the wheel into a fresh virtual environment
# outside the repository and with pipx, and serves from each: the package must work without the
# source tree (templates, migrations and schema files included as package data).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
work="$(mktemp -d)"
server=""
# Stop a server still running (a failed probe), never `kill 0`: that would signal our whole process group.
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

rm -rf dist/*.whl dist/*.tar.gz
"$PYTHON" -m build --outdir dist . >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
wheel="$(ls dist/provisor-*.whl)"
echo "check-wheel: built $wheel and $(ls dist/provisor-*.tar.gz)"

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

serve_and_probe() {  # $1: the provisor executable
  local exe="$1" port db token
  port="$(free_port)"
  db="$work/$(basename "$(dirname "$(dirname "$exe")")").db"
  (cd "$work" && "$exe" migrate --database-url "sqlite:///$db" >/dev/null)
  token="$(cd "$work" && "$exe" token create --name check-wheel --database-url "sqlite:///$db" 2>/dev/null | tail -n 1)"
  (cd "$work" && exec "$exe" serve --port "$port" --database-url "sqlite:///$db" --log-level warning) &
  server=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$port/scim/v2/ServiceProviderConfig" >/dev/null
  curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$port/scim/v2/Users" | grep -q ListResponse
  kill "$server"; wait "$server" 2>/dev/null || true; server=""
  echo "check-wheel: $exe served on port $port"
}

"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$wheel" 2>/dev/null
serve_and_probe "$work/venv/bin/provisor"

PIPX_HOME="$work/pipx" PIPX_BIN_DIR="$work/pipx-bin" "$PYTHON" -m pipx install --quiet "$wheel" >/dev/null 2>&1 \
  || { echo "check-wheel: pipx install failed" >&2; exit 1; }
serve_and_probe "$work/pipx-bin/provisor"
echo "check-wheel: OK"
