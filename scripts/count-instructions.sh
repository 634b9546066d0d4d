#!/usr/bin/env bash
# Counts the instructions the server runs per verify and per /healthz, with
# valgrind's callgrind (user space only, all of the server's threads).
#
# Requests/s on a shared VM move by ±20 % between two runs of the same build;
# an instruction count repeats to within about 2 %, so it shows what a change
# to the server saves. It does not count the kernel (TCP, syscalls), and it
# says nothing about latency: scripts/bench.sh stays the measure of §7.
#
# It runs codegate-bench with the server started under callgrind, collection
# switched off, turns collection on a second into the verify step (and again
# into the /healthz step), and divides the instructions of a window by the
# requests the server's /metrics counted in it.
#
#   scripts/count-instructions.sh                     # 64 connections, 10 s windows
#   scripts/count-instructions.sh --connections 16 --seconds 8
#   scripts/count-instructions.sh --server-bin /path/to/other/codegate   # A/B
#   KEEP=1 scripts/count-instructions.sh              # keeps the callgrind files
#                                                     # (for callgrind_annotate)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

connections=64
seconds=10
codes=30000
server_bin=""
while [ $# -gt 0 ]; do
    case "$1" in
        --connections) connections="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --codes) codes="$2"; shift 2 ;;
        --server-bin) server_bin="$(realpath "$2")"; shift 2 ;;
        *) echo "unknown option $1 (use --connections N, --seconds S, --codes N, --server-bin PATH)" >&2; exit 2 ;;
    esac
done
if [ "$seconds" -lt 4 ]; then
    echo "--seconds must be at least 4 (one second of warm-up, one of slack)" >&2
    exit 2
fi

if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y -q valgrind >&2 || { apt-get update -q >&2 && apt-get install -y -q valgrind >&2; }
    else
        echo "valgrind is needed (apt-get install valgrind)" >&2
        exit 1
    fi
fi

cargo build --release --locked -p codegate -p codegate-bench >&2
release="${CARGO_TARGET_DIR:-$root/target}/release"
# The tree's own build unless another server binary is given.
server_bin="${server_bin:-$release/codegate}"

work="$(mktemp -d)"
bench_pid=""
cleanup() {
    [ -n "$bench_pid" ] && kill "$bench_pid" 2>/dev/null || true
    if [ "${KEEP:-}" = 1 ]; then echo "callgrind files kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The bench starts `codegate init` and `codegate serve` through this wrapper;
# only `serve` runs under callgrind.
cat > "$work/codegate" <<EOF
#!/bin/sh
if [ "\$1" = serve ]; then
    exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/callgrind.out" "$server_bin" "\$@"
fi
exec "$server_bin" "\$@"
EOF
chmod +x "$work/codegate"

"$release/codegate-bench" --server-bin "$work/codegate" --codes "$codes" \
    --connections "$connections" --healthz-connections "$connections" \
    --duration-secs "$seconds" --read-secs 1 >"$work/bench.out" 2>"$work/bench.log" &
bench_pid=$!

wait_for() {
    until grep -q "$1" "$work/bench.log"; do
        if ! kill -0 "$bench_pid" 2>/dev/null; then
            echo "the bench stopped before '$1':" >&2
            tail -20 "$work/bench.log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

wait_for "listening on http://"
pid="$(grep -o 'server pid [0-9]*' "$work/bench.log" | head -1 | grep -o '[0-9]*$')"
url="$(grep -o 'http://127.0.0.1:[0-9]*' "$work/bench.log" | head -1)"

# Requests the server answered on one route (all methods and statuses).
answered() {
    curl -s "$url/metrics" | awk -v route="route=\"$1\"" \
        '$1 ~ /^codegate_http_requests_total\{/ && index($1, route) { n += $2 } END { printf "%d\n", n }'
}

# Instructions per request over a window inside the step that `marker` starts.
measure() {
    local name="$1" marker="$2" route="$3"
    wait_for "$marker"
    sleep 1
    callgrind_control -z "$pid" >/dev/null
    callgrind_control -i on "$pid" >/dev/null
    local before after
    before="$(answered "$route")"
    sleep $((seconds - 2))
    after="$(answered "$route")"
    callgrind_control -d "$name" "$pid" >/dev/null
    callgrind_control -i off "$pid" >/dev/null
    local dump instructions requests=$((after - before))
    dump="$(ls -t "$work"/callgrind.out.* | head -1)"
    instructions="$(awk '/^summary:/ { print $2 }' "$dump")"
    if [ "$requests" -le 0 ]; then
        echo "$name: no requests counted in the window" >&2
        exit 1
    fi
    printf '%-8s %3d connections: %9d instructions per request (%d requests, %s)\n' \
        "$name" "$connections" $((instructions / requests)) "$requests" "$(basename "$dump")"
}

echo "Instructions per request, callgrind (user space, every server thread):"
measure verify "verify at $connections connections" "/api/v1/projects/{pid}/codes/verify"
measure healthz "/healthz at" "/healthz"
wait "$bench_pid" || true
bench_pid=""
