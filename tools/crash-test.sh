#!/usr/bin/env bash
# tools/crash-test.sh - build labelsyncd (release) and crash_test, then run the
# kill -9 durability test: writers PATCH, the server gets SIGKILL at a random
# moment, is restarted on the same workspace, and every acknowledged write
# must still be there (docs/crash-test.md).
#
# usage: tools/crash-test.sh [--cycles N] [--short] [--fsync always|batch|never]
#                            [--writers W] [--seed S] [--server-args "..."] [--keep]
#   --short   CI mode: 8 cycles with shorter write phases (20..150 ms)
#   --fsync   passed to the server as --fsync MODE (default: the server's own)
# Exit status is crash_test's: 0 pass, 1 durability violation, 2 set-up error.
set -euo pipefail

cd "$(dirname "$0")/.."

CYCLES=50
MIN_MS=50
MAX_MS=400
WRITERS=4
SEED=""
FSYNC=""
SERVER_ARGS=""
KEEP=""

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
    --cycles) CYCLES="${2:?--cycles needs a value}"; shift 2 ;;
    --short) CYCLES=8 MIN_MS=20 MAX_MS=150; shift ;;
    --fsync) FSYNC="${2:?--fsync needs a value}"; shift 2 ;;
    --writers) WRITERS="${2:?--writers needs a value}"; shift 2 ;;
    --seed) SEED="${2:?--seed needs a value}"; shift 2 ;;
    --server-args) SERVER_ARGS="${2?--server-args needs a value}"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "crash-test.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

SERVER=build/release/labelsyncd
BIN=build/bench/crash_test

echo "crash-test.sh: building $SERVER and $BIN" >&2
make --no-print-directory FLAVOR=release "$SERVER" build/release/crash_test >&2
mkdir -p build/bench
cp build/release/crash_test "$BIN"

cp "$SERVER" build/bench/labelsyncd
SERVER=build/bench/labelsyncd

if [ -n "$FSYNC" ]; then
    # Fail early and clearly on a server that predates the durability flags.
    if ! "$SERVER" --help 2>&1 | grep -q -- '--fsync'; then
        echo "crash-test.sh: $SERVER has no --fsync option yet" >&2
        exit 2
    fi
    SERVER_ARGS="--fsync $FSYNC${SERVER_ARGS:+ $SERVER_ARGS}"
fi

ARGS=(--server-bin "$SERVER" --workspace-template spec/workspace --cycles "$CYCLES"
    --writers "$WRITERS" --min-run-ms "$MIN_MS" --max-run-ms "$MAX_MS")
[ -n "$SEED" ] && ARGS+=(--seed "$SEED")
[ -n "$SERVER_ARGS" ] && ARGS+=(--server-args "$SERVER_ARGS")
[ -n "$KEEP" ] && ARGS+=(--keep)

exec "$BIN" "${ARGS[@]}"
