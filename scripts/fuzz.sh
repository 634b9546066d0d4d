#!/usr/bin/env bash
# Runs every cargo-fuzz target for a short, bounded time and fails on a crash.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     (default: 20 s, all targets)
#
# Needs only the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# -Z sanitizer flags. Installs cargo-fuzz from crates.io when it is missing.
# Crashing inputs are kept in fuzz/artifacts/<target>/; reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail

SECONDS_PER_TARGET="${1:-20}"
shift || true
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT/fuzz"
export RUSTC_BOOTSTRAP=1

# Idempotent: installs once per machine, then finds it on PATH.
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz…"
    cargo install cargo-fuzz --locked
fi

TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(signing normalize import)
fi

# Seeds, so each run starts from shapes the parsers care about.
seed() { # target name content
    mkdir -p "corpus/$1"
    printf '%b' "$3" >"corpus/$1/seed-$2"
}
seed normalize plain 'ABCD-EFGH-JKLM'
seed normalize unicode 'stra\xc3\x9fe \xc7\x85 \xef\xac\x81-x'
seed signing vector 'POST\x00/api/v1/projects/p/codes/by-code/A%2FB\x00page=2&search=a+b&status=used\x00{"code":"X"}\x00secret\x00\x01n1\x00deadbeef'
seed import csv '\x00code,expires_at,max_uses,metadata,disabled,use_count,verified_at,verified_by\nSEED-1,1900000000,2,"{""plan"":""pro""}",false,1,1767225600,me\n'
seed import jsonl '\x01{"code":"SEED-2","max_uses":3,"metadata":{"a":1}}\n\n{"code":"SEED-3","disabled":true}\n'

# One optimised build of every target (the import target needs the server, so
# all of them are built with it): the shared dependencies are compiled once.
# -O: an optimised build runs many more inputs in the same time.
started=$SECONDS
echo "== building the fuzz targets"
if ! cargo fuzz build -O --features server >/tmp/fuzz-build.log 2>&1; then
    tail -40 /tmp/fuzz-build.log
    echo "could not build the fuzz targets"
    exit 2
fi
echo "built in $((SECONDS - started))s"

# Run the built binaries as `cargo fuzz run` would (same options), without its
# second freshness check and build: the time goes to fuzzing.
BIN_DIR="$ROOT/fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"

failed=()
for target in "${TARGETS[@]}"; do
    echo "== fuzzing $target for ${SECONDS_PER_TARGET}s"
    mkdir -p "artifacts/$target" "corpus/$target"
    # libFuzzer exits non-zero on a crash, a leak, a timeout or running out of memory.
    if ! "$BIN_DIR/$target" -artifact_prefix="$ROOT/fuzz/artifacts/$target/" \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 "corpus/$target" 2>"/tmp/fuzz-$target.log"; then
        failed+=("$target")
        tail -40 "/tmp/fuzz-$target.log"
    fi
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done)' "/tmp/fuzz-$target.log" || true
done
echo "fuzzing took $((SECONDS - started))s in all"

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "fuzzing: ${#TARGETS[@]} target(s), no crash"
