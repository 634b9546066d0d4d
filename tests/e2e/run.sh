#!/usr/bin/env bash
# Runs the console's browser tests against an already built server binary
# ($CODEGATE_BIN, default target/debug/codegate). Installs what is missing:
# Debian's chromium and playwright-core (from the committed lock file).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export CODEGATE_BIN="${CODEGATE_BIN:-$repo/target/debug/codegate}"

if [ ! -x /usr/bin/chromium ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && { npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error; })
fi
if [ ! -x "$CODEGATE_BIN" ]; then
  echo "no server binary at $CODEGATE_BIN: run 'cargo build -p codegate' or set CODEGATE_BIN" >&2
  exit 1
fi
cd "$here"
exec node --test --test-concurrency=1 --test-reporter=tap "$@" console.test.mjs
