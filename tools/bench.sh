#!/usr/bin/env bash
# tools/bench.sh - build labelsyncd (release) and bench_http, run the standard
# HTTP benchmark matrix against a fresh server on a temp copy of
# spec/workspace, and print a markdown report for docs/benchmarks.md.
#
# The server gets a throwaway copy of the gallery so benchmark writes never
# touch spec/workspace, and is stopped by its PID (never by name) on every
# exit path.  Server and load generator share the machine's cores, so the
# numbers are a floor for the server alone; see docs/benchmarks.md.
#
# usage: tools/bench.sh [--seconds S] [--warmup S] [--connections "1 16 64"]
#                       [--modes "get patch"] [--threads N]
set -euo pipefail

cd "$(dirname "$0")/.."

SECONDS_PER_POINT=5
WARMUP=1
CONNECTIONS="1 16 64"
MODES="get patch"
THREADS=2
CMDLINE="tools/bench.sh${*:+ $(printf '%q ' "$@")}"
CMDLINE="${CMDLINE% }"

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) SECONDS_PER_POINT="${2:?--seconds needs a value}"; shift 2 ;;
    --warmup) WARMUP="${2:?--warmup needs a value}"; shift 2 ;;
    --connections) CONNECTIONS="${2:?--connections needs a value}"; shift 2 ;;
    --modes) MODES="${2:?--modes needs a value}"; shift 2 ;;
    --threads) THREADS="${2:?--threads needs a value}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

BENCH=build/bench/bench_http
SERVER=build/release/labelsyncd

echo "bench.sh: building $SERVER and $BENCH" >&2
make --no-print-directory FLAVOR=release "$SERVER" build/release/bench_http >&2
mkdir -p build/bench
cp build/release/bench_http "$BENCH"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/labelsync-bench.XXXXXX")
PID=""
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp -r spec/workspace "$TMP/workspace"
"$SERVER" --root "$TMP/workspace" --port 0 --threads "$THREADS" >"$TMP/server.out" \
    2>"$TMP/server.err" &
PID=$!

# Wait (bounded: 10 s) for the one-line "ready" URL on stdout.
URL=""
for _ in $(seq 1 100); do
    URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*/' "$TMP/server.out" 2>/dev/null | head -n 1 || true)
    [ -n "$URL" ] && break
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "bench.sh: labelsyncd exited early:" >&2
        cat "$TMP/server.err" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$URL" ]; then
    echo "bench.sh: labelsyncd did not print its URL within 10 s" >&2
    exit 1
fi
echo "bench.sh: server pid $PID at $URL" >&2

# field NAME FILE: the value of "NAME: value" in bench_http's output.
field() {
    awk -v k="$1:" '$1 == k { print $2 }' "$2"
}

ROWS=""
NEWCONN=0
for mode in $MODES; do
    for c in $CONNECTIONS; do
        out="$TMP/$mode-$c.txt"
        echo "bench.sh: $mode, $c connections, ${SECONDS_PER_POINT}s" >&2
        "$BENCH" --url "$URL" --mode "$mode" --connections "$c" --seconds "$SECONDS_PER_POINT" \
            --warmup "$WARMUP" --server-pid "$PID" >"$out"
        ROWS+="| $mode | $c | $(field requests "$out") | $(field rps "$out") "
        ROWS+="| $(field latency_us_p50 "$out") | $(field latency_us_p90 "$out") "
        ROWS+="| $(field latency_us_p99 "$out") | $(field latency_us_max "$out") "
        ROWS+="| $(field status_200 "$out") | $(field status_409 "$out") "
        ROWS+="| $(field status_other "$out") | $(field errors "$out") "
        ROWS+="| $(field server_cpu_pct "$out") | $(field client_cpu_pct "$out") "
        ROWS+="| $(field machine_cpu_pct "$out") | $(field server_cpu_us_per_req "$out") |"$'\n'
        ITEMS=$(field health_items "$out")
        NEWCONN=$((NEWCONN + $(field new_connections "$out")))
    done
done

RSS=$(awk '/^VmRSS:/ { print $2, $3 }' "/proc/$PID/status")
HWM=$(awk '/^VmHWM:/ { print $2, $3 }' "/proc/$PID/status")
kill -TERM "$PID"
wait "$PID" || true
PID=""

MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
cat <<EOF
## $(date -u +%Y-%m-%d) — $($SERVER --version 2>/dev/null | head -n 1)

- command: \`$CMDLINE\` (server: \`labelsyncd --root <copy of spec/workspace> --port 0 --threads $THREADS\`; each point: \`bench_http --url URL --mode M --connections N --seconds $SECONDS_PER_POINT --warmup $WARMUP --server-pid PID\`)
- machine: $(nproc) CPUs, ${MODEL:-unknown}, $(uname -sr); server and load generator share these CPUs
- items served (GET /health): ${ITEMS:-?}; patch items: /scratch/s01.png … s12.png, round-robin over connections
- CPU % is of one CPU (200 % = both); server CPU from /proc/PID/stat, client from getrusage, machine (all processes) from /proc/stat, over the measured window only; machine minus server minus client is whatever else was running
- connections opened after the warm-ups (0 = keep-alive held): $NEWCONN
- server RSS after the runs: VmRSS $RSS (peak VmHWM $HWM)

| mode | conns | requests | req/s | p50 µs | p90 µs | p99 µs | max µs | 200 | 409 | other | errors | server CPU % | client CPU % | machine CPU % | server CPU µs/req |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$ROWS
EOF
