#!/usr/bin/env bash
# The whole test suite, on a fresh machine as on a developer's: builds once,
# then runs the Rust tests and the Python suites against the built binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# The signing tests (Rust and Python) check every signer against the shared
# vectors, which live beside the repository (../shared), not in it. Say so at
# once instead of failing half an hour in.
export CODEGATE_VECTORS="${CODEGATE_VECTORS:-$root/../shared/vectors/signature_v1.json}"
if [ ! -f "$CODEGATE_VECTORS" ]; then
    echo "signature vectors not found at $CODEGATE_VECTORS" >&2
    echo "(clone next to ../shared, or set CODEGATE_VECTORS to signature_v1.json)" >&2
    exit 1
fi

bash scripts/services.sh

echo "== build"
cargo build --workspace --all-targets --locked
export CODEGATE_BIN="$root/target/debug/codegate"

echo "== Rust tests (domain, storage, server over HTTP)"
cargo test --workspace --locked

echo "== codegate-sdk 0.1.1 from PyPI against the server"
bash tests/compat/run.sh -q

echo "== the Python SDK (sdk/python) against the server"
command -v uv >/dev/null || python3 -m pip install -q uv
(cd sdk/python && uv run --quiet pytest -q -p no:cacheprovider)

echo "== schemathesis against /openapi.json"
bash tests/schemathesis/run.sh

echo "== the console in headless Chromium"
bash tests/e2e/run.sh

# The whole behaviour suite again on PostgreSQL: every integration test of
# crates/cli/tests (the harness gives each test server a fresh database of its
# own there, dropped afterwards; tests that read the database directly query
# that database) and the codegate-sdk 0.1.1 compat suite.
echo "== again on PostgreSQL: every HTTP integration test and the compat suite"
export CODEGATE_TEST_DATABASE_URL="${CODEGATE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo test --locked -p codegate --tests
bash tests/compat/run.sh -q
