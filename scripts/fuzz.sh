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

failed=()
for target in "${TARGETS[@]}"; do
    features=()
    [ "$target" = import ] && features=(--features server)
    echo "== fuzzing $target for ${SECONDS_PER_TARGET}s"
    if ! cargo fuzz build -O "${features[@]}" "$target" >"/tmp/fuzz-build-$target.log" 2>&1; then
        tail -40 "/tmp/fuzz-build-$target.log"
        echo "could not build fuzz target $target"
        exit 2
    fi
    # -O: an optimised build runs many more inputs in the same time.
    if ! cargo fuzz run -O "${features[@]}" "$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 2>"/tmp/fuzz-$target.log"; then
        failed+=("$target")
        tail -40 "/tmp/fuzz-$target.log"
    fi
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done)' "/tmp/fuzz-$target.log" || true
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "fuzzing: ${#TARGETS[@]} target(s), no crash"
