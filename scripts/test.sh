#!/usr/bin/env bash
# The whole test suite, on a fresh machine as on a developer's: builds once,
# then runs the Rust tests and the Python suites against the built binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bash scripts/services.sh

echo "== build"
cargo build --workspace --all-targets --locked
export CODEGATE_BIN="$root/target/debug/codegate"

echo "== Rust tests (domain, storage, server over HTTP)"
cargo test --workspace --locked

echo "== codegate-sdk 0.1.1 from PyPI against the server"
bash tests/compat/run.sh -q
