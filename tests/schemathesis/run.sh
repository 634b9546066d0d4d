#!/usr/bin/env bash
# Property-based API testing with schemathesis (from PyPI) against the running
# server's own /openapi.json: no 5xx, and every documented answer matches the
# document's schema. Uses $CODEGATE_BIN (default target/debug/codegate).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${CODEGATE_BIN:-$root/target/debug/codegate}"
[ -x "$bin" ] || { echo "schemathesis: no server binary at $bin (cargo build -p codegate)" >&2; exit 1; }
venv="$root/.venv-schemathesis"
[ -x "$venv/bin/schemathesis" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q "schemathesis>=4,<5"; }

work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
token="$("$bin" init --data-dir "$work/data" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
CODEGATE_RATE_LIMITS=off CODEGATE_LOG=warn "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
base="$(sed -n 's/^listening on //p' "$work/out" | head -1)"
[ -n "$base" ] || { cat "$work/err" >&2; exit 1; }
# A project and a code so that the project routes have something to act on.
pid_json="$(curl -sf -X POST "$base/api/v1/projects" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{"name":"schemathesis"}')"
echo "schemathesis: server at $base, project $(echo "$pid_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"

"$venv/bin/schemathesis" run "$base/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,response_schema_conformance \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-25}" \
  --request-timeout 30 \
  --exclude-path /api/v1/auth/logout \
  "$@"
