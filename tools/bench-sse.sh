#!/usr/bin/env bash
# tools/bench-sse.sh - build labelsyncd (release) and bench_sse, run the SSE
# fan-out benchmark (S subscribers x W PATCHes) against a fresh server per
# pace, stop each server while its S streams are still open to time its
# shutdown, and print a markdown report for docs/benchmarks.md.
#
# Each server gets its own throwaway copy of the gallery, so writes never
# touch spec/workspace and one run's RSS does not inherit another's events.
# Servers and bench_sse are stopped by PID (never by name) on every exit path.
#
# usage: tools/bench-sse.sh [--subscribers N] [--writes N] [--writers N]
#                           [--paces "lockstep burst"] [--threads N]
set -euo pipefail

cd "$(dirname "$0")/.."

SUBSCRIBERS=1000
WRITES=1000
WRITERS=1
PACES="lockstep burst"
THREADS=2
HOLD_SECONDS=60 # bench_sse keeps the streams open this long at most
STOP_BOUND=30   # seconds the server gets to exit on SIGTERM before SIGKILL
CMDLINE="tools/bench-sse.sh${*:+ $(printf '%q ' "$@")}"
CMDLINE="${CMDLINE% }"

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
    --subscribers) SUBSCRIBERS="${2:?--subscribers needs a value}"; shift 2 ;;
    --writes) WRITES="${2:?--writes needs a value}"; shift 2 ;;
    --writers) WRITERS="${2:?--writers needs a value}"; shift 2 ;;
    --paces) PACES="${2:?--paces needs a value}"; shift 2 ;;
    --threads) THREADS="${2:?--threads needs a value}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench-sse.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

BENCH=build/bench/bench_sse
SERVER=build/release/labelsyncd

echo "bench-sse.sh: building $SERVER and $BENCH" >&2
make --no-print-directory FLAVOR=release "$SERVER" >&2
mkdir -p build/bench
# shellcheck disable=SC2046 # pkg-config output is meant to split into flags
gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Wpedantic -Werror -Iimpl/include \
    impl/bench/bench_sse.c $(pkg-config --cflags --libs libcurl libcjson) -lm -o "$BENCH"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/labelsync-bench-sse.XXXXXX")
PID=""
BPID=""
cleanup() {
    if [ -n "$BPID" ] && kill -0 "$BPID" 2>/dev/null; then
        kill -TERM "$BPID" 2>/dev/null || true
        wait "$BPID" 2>/dev/null || true
    fi
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# field NAME FILE: the value of "NAME: value" in bench_sse's output.
field() {
    awk -v k="$1:" '$1 == k { print $2; exit }' "$2"
}

# ms A B: (B - A) nanoseconds as milliseconds with one decimal; "-" if either is 0/absent.
ms() {
    if [ -z "$1" ] || [ -z "$2" ] || [ "$1" = 0 ] || [ "$2" = 0 ]; then
        echo "-"
    else
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'
    fi
}

# us2ms N: microseconds as milliseconds with two decimals.
us2ms() {
    awk -v u="${1:-0}" 'BEGIN { printf "%.2f", u / 1000 }'
}

# listen_overflows: the kernel's TcpExt ListenOverflows counter (whole machine).
# A rise during the connect phase means SYNs met a full accept queue, and those
# clients wait for the 1 s SYN retransmit.
listen_overflows() {
    awk '$1 == "TcpExt:" { if (!n) { for (i = 2; i <= NF; i++) if ($i == "ListenOverflows") c = i; n = 1 } else { print $c; exit } }' /proc/net/netstat
}

kb2mb() {
    awk -v k="${1:-0}" 'BEGIN { printf "%.1f", k / 1024 }'
}

ROWS1=""
ROWS2=""
FAILED=0
for pace in $PACES; do
    ws="$TMP/ws-$pace"
    out="$TMP/bench-$pace.out"
    err="$TMP/bench-$pace.err"
    cp -r spec/workspace "$ws"
    "$SERVER" --root "$ws" --port 0 --max-connections 2000 --max-subscribers 5000 \
        --threads "$THREADS" >"$TMP/server-$pace.out" 2>"$TMP/server-$pace.err" &
    PID=$!

    # Wait (bounded: 10 s) for the one-line "ready" URL on stdout.
    URL=""
    for _ in $(seq 1 100); do
        URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*/' "$TMP/server-$pace.out" 2>/dev/null |
            head -n 1 || true)
        [ -n "$URL" ] && break
        if ! kill -0 "$PID" 2>/dev/null; then
            echo "bench-sse.sh: labelsyncd exited early:" >&2
            cat "$TMP/server-$pace.err" >&2
            exit 1
        fi
        sleep 0.1
    done
    if [ -z "$URL" ]; then
        echo "bench-sse.sh: labelsyncd did not print its URL within 10 s" >&2
        exit 1
    fi
    echo "bench-sse.sh: $pace: server pid $PID at $URL; $SUBSCRIBERS subscribers x $WRITES writes" >&2

    # bench_sse bounds itself (--max-seconds 600 by default, then the hold), so
    # waiting for its "hold: ready" line while it is alive is bounded too.
    : >"$out"
    LO0=$(listen_overflows)
    "$BENCH" --url "$URL" --subscribers "$SUBSCRIBERS" --writes "$WRITES" --writers "$WRITERS" \
        --pace "$pace" --server-pid "$PID" --hold-seconds "$HOLD_SECONDS" >"$out" 2>"$err" &
    BPID=$!
    while kill -0 "$BPID" 2>/dev/null && ! grep -q '^hold: ready' "$out"; do
        sleep 0.05
    done
    LO=$(($(listen_overflows) - LO0))
    HELD=0
    grep -q '^hold: ready' "$out" && HELD=1

    # Stop the server with the streams still open and time its exit.  The kill
    # time is taken just before the signal (one fork of date: ~1 ms early).
    T_KILL=$(date +%s%N)
    kill -TERM "$PID"
    STOPPED=1
    for _ in $(seq 1 $((STOP_BOUND * 100))); do
        kill -0 "$PID" 2>/dev/null || { STOPPED=0; break; }
        sleep 0.01
    done
    T_GONE=$(date +%s%N)
    if [ "$STOPPED" = 1 ]; then
        echo "bench-sse.sh: $pace: labelsyncd still running ${STOP_BOUND} s after SIGTERM; SIGKILL" >&2
        kill -KILL "$PID" 2>/dev/null || true
        FAILED=1
    fi
    SRV_RC=0
    wait "$PID" || SRV_RC=$?
    PID=""
    BRC=0
    wait "$BPID" || BRC=$?
    BPID=""
    if [ "$BRC" != 0 ] || [ "$HELD" = 0 ]; then
        echo "bench-sse.sh: $pace: bench_sse exit status $BRC; its stderr:" >&2
        sed 's/^/    | /' "$err" >&2
        FAILED=1
    elif [ -s "$err" ]; then
        sed 's/^/bench_sse: /' "$err" >&2
    fi
    if [ -s "$TMP/server-$pace.err" ]; then
        echo "bench-sse.sh: $pace: server stderr ($(wc -l <"$TMP/server-$pace.err") lines):" >&2
        tail -n 5 "$TMP/server-$pace.err" | sed 's/^/    | /' >&2
    fi

    EXIT_MS=$(ms "$T_KILL" "$(field hold_server_exit_unix_ns "$out")")
    [ "$EXIT_MS" = "-" ] && EXIT_MS="≤ $(ms "$T_KILL" "$T_GONE") (poll)"
    ROWS1+="| $pace | $(field subscribers "$out") | $(field writes_ok "$out") "
    ROWS1+="| $(field deliveries "$out") / $(field deliveries_expected "$out") "
    ROWS1+="| $(field missing "$out") | $(field duplicates "$out") "
    ROWS1+="| $(field out_of_order "$out") | $(field resyncs "$out") "
    ROWS1+="| $(us2ms "$(field event_last_send_us_p50 "$out")") "
    ROWS1+="| $(us2ms "$(field event_last_send_us_p99 "$out")") "
    ROWS1+="| $(us2ms "$(field event_last_send_us_max "$out")") "
    ROWS1+="| $(us2ms "$(field latency_send_us_p50 "$out")") "
    ROWS1+="| $(us2ms "$(field latency_send_us_p99 "$out")") "
    ROWS1+="| $(us2ms "$(field event_last_ack_us_p50 "$out")") "
    ROWS1+="| $(us2ms "$(field event_first_send_us_p50 "$out")") "
    ROWS1+="| $(us2ms "$(field patch_rtt_us_p50 "$out")") "
    ROWS1+="| $(field writes_per_s "$out") | $(field deliveries_per_s "$out") "
    ROWS1+="| $(field wall_seconds "$out") | $(field result "$out") |"$'\n'
    ROWS2+="| $pace | $(field connect_ms "$out") | $LO "
    ROWS2+="| $(kb2mb "$(field server_rss_kb_before "$out")") "
    ROWS2+="| $(kb2mb "$(field server_rss_kb_connected "$out")") "
    ROWS2+="| $(kb2mb "$(field server_rss_kb_after "$out")") "
    ROWS2+="| $(field server_rss_bytes_per_subscriber "$out") "
    ROWS2+="| $(field server_cpu_us_per_delivery "$out") | $(field client_cpu_us_per_delivery "$out") "
    ROWS2+="| $(field server_cpu_pct "$out") | $(field client_cpu_pct "$out") "
    ROWS2+="| $(field machine_cpu_pct "$out") "
    ROWS2+="| $(field hold_streams_open_at_start "$out") "
    ROWS2+="| $(ms "$T_KILL" "$(field hold_first_end_unix_ns "$out")") "
    ROWS2+="| $(ms "$T_KILL" "$(field hold_last_end_unix_ns "$out")") "
    ROWS2+="| $EXIT_MS | $SRV_RC "
    ROWS2+="| $(field hold_streams_ended_clean "$out") / $(field hold_streams_ended_partial "$out") "
    ROWS2+="/ $(field hold_streams_ended_error "$out") "
    ROWS2+="/ $(field hold_streams_still_open "$out") |"$'\n'
    cp "$out" "build/bench/bench_sse-$pace.out"
done

MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
cat <<EOF
## $(date -u +%Y-%m-%d) — $($SERVER --version 2>/dev/null | head -n 1), SSE fan-out (GET /events)

- command: \`$CMDLINE\`
  - server, fresh per pace: \`labelsyncd --root <copy of spec/workspace> --port 0 --max-connections 2000 --max-subscribers 5000 --threads $THREADS\` (keepalive 15 s, backlog 1024, ring 4096: defaults)
  - bench: \`bench_sse --url URL --subscribers $SUBSCRIBERS --writes $WRITES --writers $WRITERS --pace P --server-pid PID --hold-seconds $HOLD_SECONDS\`; then SIGTERM to the server with the streams open
- machine: $(nproc) CPUs, ${MODEL:-unknown}, $(uname -sr); server and bench_sse share these CPUs
- latency is CLOCK_MONOTONIC in bench_sse; "send" = the PATCH was handed to libcurl and written, "ack" = its 200 had been read; publish → last = per event, the last subscriber's receive
- raw outputs: build/bench/bench_sse-<pace>.out

| pace | subs | writes | deliveries | missing | dup | out of order | resync | send → last p50 ms | p99 ms | max ms | per delivery p50 ms | p99 ms | ack → last p50 ms | send → first p50 ms | PATCH rtt p50 ms | writes/s | deliveries/s | wall s | result |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
$ROWS1
| pace | connect ms | listen overflows | RSS before MB | RSS connected MB | RSS after MB | bytes/subscriber | server CPU µs/delivery | client CPU µs/delivery | server CPU % | client CPU % | machine CPU % | streams at SIGTERM | SIGTERM → first close ms | SIGTERM → last close ms | SIGTERM → exit ms | exit status | streams: clean end / no last chunk / other error / still open |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
$ROWS2
EOF
exit "$FAILED"
