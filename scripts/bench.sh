#!/usr/bin/env bash
# The DESIGN §7 benchmark: builds the release server and the bench, then runs
# the bench (which starts its own server on a fresh temp data directory).
# Any arguments go to codegate-bench, e.g.:
#   scripts/bench.sh --codes 1000000 --duration-secs 5
#   scripts/bench.sh --json > bench.json
#   scripts/bench.sh --database-url postgres://codegate:codegate@127.0.0.1/codegate
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

cargo build --release --locked -p codegate -p codegate-bench >&2
release="${CARGO_TARGET_DIR:-$root/target}/release"
exec "$release/codegate-bench" --server-bin "$release/codegate" "$@"
