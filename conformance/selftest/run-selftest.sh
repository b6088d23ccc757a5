#!/usr/bin/env bash
# run-selftest.sh - self-tests of labelsync-check against a scripted fake server.
#
# Proves that every matcher and every step kind (stream steps included, with
# scripted event streams) fails on a wrong response and passes on the right
# one (cases/*.json, each with "selftest_expect"), and checks the runner's
# exit codes, --expect-fail, --list, --filter, --level, --origin, -v,
# --timeout-scale, reports and --lint.  The lifecycle cases (selftest.life.*)
# run with --server, which starts the fake server itself (options in
# fake_server.c) on copies of workspace/; the script then checks that no
# server process and no scratch directory is left behind, also after the
# runner is killed by SIGTERM.  Everything runs on 127.0.0.1, every runner
# call is bounded by `timeout`, and the fake server is stopped by its PID.
#
# Usage: run-selftest.sh [BUILD_DIR]      (default build/release; also $SELFTEST_BUILD)
# Environment:
#   RUNNER            labelsync-check binary   (default BUILD_DIR/labelsync-check)
#   FAKE              fake server binary       (default BUILD_DIR/selftest/fake_server)
#   SELFTEST_VALGRIND 1 = run every runner invocation under valgrind (errors exit 99)
#   RUNNER_WRAP       any other command prefix for the runner
#   SCALE             --timeout-scale for the per-case runs (default 1, 10 under valgrind)
#   VERBOSE           non-empty: also list passing checks
# Exit status: 0 when every check passed, 1 otherwise.
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-${SELFTEST_BUILD:-build/release}}
case "$BUILD" in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
RUNNER=${RUNNER:-$BUILD/labelsync-check}
FAKE=${FAKE:-$BUILD/selftest/fake_server}
case "$RUNNER" in /*) ;; *) RUNNER=$PWD/$RUNNER ;; esac
case "$FAKE" in /*) ;; *) FAKE=$PWD/$FAKE ;; esac
WRAP=${RUNNER_WRAP:-}
SCALE=${SCALE:-1}
if [ "${SELFTEST_VALGRIND:-0}" = 1 ]; then
    WRAP="valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
--errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
--suppressions=$ROOT/tools/valgrind.supp"
    [ "$SCALE" = 1 ] && SCALE=10
fi
SELF=$ROOT/conformance/selftest
BAD=$SELF/malformed
SCHEMA=$ROOT/spec/schema/fixture.schema.json
CLOSED=http://127.0.0.1:1   # nothing listens on port 1: connection refused
LIMIT=300                   # seconds per runner invocation

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lsc-selftest.XXXXXX")
RT=$TMP/rt                  # TMPDIR of the runner: its --server scratch directories
mkdir -p "$RT"
LIFE_CMD="$FAKE --port {port} --root {workspace} {args}"
FAKE_PID=
passed=0
failed=0

cleanup() {
    if [ -n "$FAKE_PID" ]; then
        kill "$FAKE_PID" 2>/dev/null
        wait "$FAKE_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

for bin in "$RUNNER" "$FAKE"; do
    if [ ! -x "$bin" ]; then
        echo "run-selftest: missing binary $bin" >&2
        exit 1
    fi
done

"$FAKE" >"$TMP/port" 2>"$TMP/fake.err" &
FAKE_PID=$!
for _ in $(seq 1 50); do
    [ -s "$TMP/port" ] && break
    sleep 0.1
done
PORT=$(head -n1 "$TMP/port" 2>/dev/null)
if [ -z "$PORT" ] || [ "$PORT" = 0 ]; then
    echo "run-selftest: the fake server did not start" >&2
    exit 1
fi
URL=http://127.0.0.1:$PORT

ok() {
    passed=$((passed + 1))
    if [ -n "${VERBOSE:-}" ]; then echo "ok   $1"; fi
    return 0
}

bad() {
    failed=$((failed + 1))
    echo "FAIL $1"
    shift
    for line in "$@"; do echo "     $line"; done
    echo "     --- runner stdout ---"
    sed -n '1,40p' "$TMP/out" | sed 's/^/     /'
    echo "     --- runner stderr ---"
    sed -n '1,20p' "$TMP/err" | sed 's/^/     /'
    return 0
}

# run ARGS... : run the runner, output in $TMP/out and $TMP/err, exit code in $rc.
run() {
    TMPDIR=$RT timeout "$LIMIT" $WRAP "$RUNNER" "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
}

# expect NAME RC [grep-pattern...] : check $rc and that each pattern occurs in stdout+stderr.
expect() {
    local name=$1 want=$2 p
    shift 2
    if [ "$rc" != "$want" ]; then
        bad "$name" "exit code $rc, expected $want"
        return
    fi
    for p in "$@"; do
        if ! cat "$TMP/out" "$TMP/err" | grep -qF -- "$p"; then
            bad "$name" "output lacks: $p"
            return
        fi
    done
    ok "$name"
}

# expect_absent NAME PATTERN : PATTERN must not occur in stdout.
expect_absent() {
    if grep -qF -- "$2" "$TMP/out"; then
        bad "$1" "output unexpectedly contains: $2"
    else
        ok "$1"
    fi
}

closing_line_ok() {
    tail -n1 "$TMP/out" | grep -Eq '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$'
}

# 1. Every self-test case on its own: outcome, exit code, console line, repro.
#    Lifecycle cases run with --server; their failures end with the server's state
#    instead of (or after) a curl command.
for f in "$SELF"/cases/*.json; do
    id=$(basename "$f" .json)
    want=$(sed -n 's/.*"selftest_expect": *"\([a-z]*\)".*/\1/p' "$f" | head -n1)
    tail_line="reproduce: "
    case "$id" in
    selftest.life.*)
        run --server "$LIFE_CMD" --spec "$SELF" --filter "$id" --timeout-scale "$SCALE"
        tail_line="    server: " ;;
    *) run --url "$URL" --spec "$SELF" --filter "$id" --timeout-scale "$SCALE" ;;
    esac
    case "$want" in
    pass) expect "$id" 0 "PASS $id" "1 passed, 0 failed, 0 skipped" ;;
    fail) expect "$id" 1 "FAIL $id" "0 passed, 1 failed, 0 skipped" "$tail_line" ;;
    skip) expect "$id" 0 "SKIP $id (" "0 passed, 0 failed, 1 skipped" ;;
    *) bad "$id" "bad or missing selftest_expect" ;;
    esac
    closing_line_ok || bad "$id: closing line" "last line is not 'N passed, N failed, N skipped'"
done

# 2. Exit code 2: fixture errors are found before any request (the URL is a closed port,
#    so a runner that sent anything would exit 3 instead).
for id in bad.unparseable bad.unknown-step bad.unknown-matcher bad.bad-regex \
          bad.unbounded-repeat bad.selftest-field bad.id-mismatch bad.nul-escape \
          bad.sse-unopened bad.sse-closed bad.sse-reopen bad.sse-shape \
          bad.life-no-requires bad.life-request-stopped bad.life-files-running \
          bad.life-path-escape bad.life-args-shell bad.life-restart-stopped \
          bad.life-expect-shape; do
    run --url "$CLOSED" --spec "$BAD" --filter "$id"
    expect "exit 2: $id" 2 "nothing was run"
done
run --url "$CLOSED" --spec "$BAD" --filter bad.unknown-matcher
expect "exit 2 names the unknown matcher" 2 'unknown matcher $frob'
run --url "$CLOSED" --spec "$BAD" --filter bad.unknown-step
expect "exit 2 names the unknown step kind" 2 'unknown step kind'
run --url "$CLOSED" --spec "$BAD" --filter bad.sse-unopened
expect "exit 2: a stream step on a stream never opened" 2 'sse_expect on stream "s", which is not open here'
run --url "$CLOSED" --spec "$BAD" --filter bad.sse-closed
expect "exit 2: a stream step after sse_close" 2 'sse_check on stream "s", which is not open here'
run --url "$CLOSED" --spec "$BAD" --filter bad.sse-reopen
expect "exit 2: sse_open of an open stream" 2 'stream "s" is already open'
run --url "$CLOSED" --spec "$BAD"
expect "exit 2: whole malformed directory" 2 "bad.unparseable.json: invalid JSON"
run --url "$CLOSED" --spec "$BAD" --list
expect "exit 2: --list checks fixtures too" 2
run --url "$CLOSED" --spec "$SELF" --filter 'no.such.case'
expect "exit 2: a filter that matches nothing" 2 "matches the filters"
run --url "$URL" --spec "$SELF" --frobnicate
expect "exit 2: unknown option" 2 "unknown argument"
run --spec "$SELF"
expect "exit 2: missing --url" 2 "--url is required"
run --url "$URL" --spec "$SELF" --level OFTEN
expect "exit 2: bad --level" 2
run --url "$URL" --spec "$SELF" --timeout-scale -1
expect "exit 2: bad --timeout-scale" 2
run --url "ftp://127.0.0.1:$PORT" --spec "$SELF"
expect "exit 2: bad --url scheme" 2
run --url "$URL" --spec "$SELF" --expect-fail "$TMP/no-such-file"
expect "exit 2: unreadable --expect-fail file" 2

# 3. Exit code 3: unreachable server.
run --url "$CLOSED" --spec "$SELF" --filter selftest.status.pass
expect "exit 3: closed port" 3 "server unreachable"
run --url "$URL/echo?status=500&x=" --spec "$SELF" --filter selftest.status.pass
expect "exit 2: a URL with a query is a usage error" 2

# 4. --expect-fail: XFAIL does not fail the run, XPASS does.
printf '# known failures\n\nselftest.status.f*   # glob, trailing comment\n' >"$TMP/xf1"
run --url "$URL" --spec "$SELF" --filter 'selftest.status.*' --expect-fail "$TMP/xf1"
expect "expect-fail: XFAIL" 0 "XFAIL selftest.status.fail" "PASS selftest.status.pass" \
    "1 expected failures (XFAIL)" "1 passed, 0 failed, 0 skipped"
printf 'selftest.status.pass\n' >"$TMP/xf2"
run --url "$URL" --spec "$SELF" --filter 'selftest.status.pass' --expect-fail "$TMP/xf2"
expect "expect-fail: XPASS fails the run" 1 "XPASS selftest.status.pass" "0 passed, 1 failed, 0 skipped"
printf 'selftest.requires.skip\nselftest.nothing-matches\n' >"$TMP/xf3"
run --url "$URL" --spec "$SELF" --filter 'selftest.requires.skip' --expect-fail "$TMP/xf3"
expect "expect-fail: a skipped listed case stays SKIP; stale entries warn" 0 \
    "SKIP selftest.requires.skip" "matches no case"

# 5. --list (no server needed), --filter, --level.
run --spec "$SELF" --list --filter 'selftest.status.*'
expect "--list prints id, level, spec, requires, title" 0 \
    "$(printf 'selftest.status.fail\tMUST\t0\t-\tstatus: exact integer (wrong response fails)')" \
    "$(printf 'selftest.status.pass\tMUST\t0\t-\t')"
[ "$(wc -l <"$TMP/out")" -eq 2 ] && ok "--list honours --filter" || bad "--list honours --filter" "expected 2 lines"
run --spec "$SELF" --list --filter 'selftest.requires.*'
expect "--list shows requires" 0 "$(printf 'MUST\t0\torigin-check\t')" "$(printf 'items,etag\t')"
run --spec "$SELF" --list --filter 'selftest.disabled.*'
expect "--list shows disabled" 0 "[disabled: kept to test the runner]"
run --spec "$SELF" --list --filter 'selftest.level.*'
expect "--list default level shows all" 0 "selftest.level.should" "selftest.level.may"
run --spec "$SELF" --list --filter 'selftest.level.*' --level SHOULD
expect "--level SHOULD shows SHOULD" 0 "selftest.level.should"
expect_absent "--level SHOULD hides MAY" "selftest.level.may"
run --spec "$SELF" --list --filter 'selftest.level.*' --level MUST
expect "--level MUST runs only MUST" 0
[ ! -s "$TMP/out" ] && ok "--level MUST hides SHOULD and MAY" || bad "--level MUST hides SHOULD and MAY"
run --url "$URL" --spec "$SELF" --filter 'selftest.level.*' --filter selftest.status.pass --level MUST
expect "--level MUST at run time" 0 "1 passed, 0 failed, 0 skipped"
run --url "$URL" --spec "$SELF" --filter 'selftest.status.*' --filter 'selftest.requires.*' \
    --filter 'selftest.disabled.*'
expect "--filter is repeatable; skips are counted" 1 "2 passed, 1 failed, 2 skipped" \
    "SKIP selftest.requires.skip (server lacks feature 'origin-check')" \
    "SKIP selftest.disabled.skip (disabled: kept to test the runner)"
closing_line_ok && ok "closing line format" || bad "closing line format"

run --url "$URL" --spec "$SELF" --filter 'selftest.requires.*' --features all
expect "--features all runs every case" 0 "PASS selftest.requires.skip" "2 passed, 0 failed, 0 skipped"
run --url "$URL" --spec "$SELF" --filter 'selftest.requires.*' --features items,origin-check
expect "--features LIST replaces /health's list" 0 "PASS selftest.requires.skip" \
    "SKIP selftest.requires.pass (server lacks feature 'etag')"

# 6. --origin, -v, --timeout-scale.
run --url "$URL" --spec "$SELF" --filter selftest.origin.absent --origin http://evil.example:9
expect "--origin adds the header to every request" 1 "FAIL selftest.origin.absent" \
    '"http://evil.example:9"' "-H 'Origin: http://evil.example:9'"
run --url "$URL" --spec "$SELF" --filter selftest.status.pass -v
expect "-v prints a wire trace" 0 "> GET /echo?status=200 HTTP/1.1" "< HTTP/1.1 200" \
    "> X-Client-Id: r"
run --url "$URL" --spec "$SELF" --filter selftest.body-raw.pass -v
expect "-v shows request bodies" 0 '> {"a": 1 }'
run --url "$URL" --spec "$SELF" --filter selftest.timeout.fail --timeout-scale 50
expect "--timeout-scale stretches step timeouts" 0 "PASS selftest.timeout.fail"
run --url "$URL" --spec "$SELF" --filter selftest.sse-missing.fail --timeout-scale 50
expect "--timeout-scale stretches stream waits" 0 "PASS selftest.sse-missing.fail"

# Streams in the wire trace; stream bytes are parsed while a request step runs: the
# "during" event (sent 200 ms after the stream opened) is traced before the 600 ms request
# that was in flight at the time, and with its own arrival time.
run --url "$URL" --spec "$SELF" --filter selftest.sse-interleave.pass -v
expect "-v traces streams" 0 "--- sse live: GET " "< Content-Type: text/event-stream" \
    "~ live +" ': retry 2000' 'event #1 "item-updated" id "10": {"path":"/x.png","version":5}' \
    ": comment : ping" "closed by the runner"
during=$(grep -n '~ slow +[0-9]* ms: event #1 "during"' "$TMP/out" | head -n1)
slowreq=$(grep -n -- '--- GET .*/sse?chunk=600' "$TMP/out" | head -n1 | cut -d: -f1)
at=$(echo "$during" | sed -n 's/.*~ slow +\([0-9]*\) ms.*/\1/p')
if [ -n "$during" ] && [ -n "$slowreq" ] && [ "${during%%:*}" -lt "$slowreq" ] &&
    [ "${at:-9999}" -lt 550 ]; then
    ok "stream events are parsed while a request step is in flight"
else
    bad "stream events are parsed while a request step is in flight" \
        "event line: '$during', request trace at line '$slowreq'"
fi

run --url "$URL" --spec "$SELF" --filter selftest.var-nested.fail
expect "\$var names the first differing member" 1 '/a/b/1: differs from $var doc here; expected 2, got 5'

# The printed reproduction must be runnable and send the same bytes (binary body, quotes).
run --url "$URL" --spec "$SELF" --filter selftest.repro-binary.fail
expect "repro: printed" 1 "reproduce: { printf"
sed -n 's/^ *reproduce: //p' "$TMP/out" | head -n1 >"$TMP/repro.sh"
want=00ff27255c0a09$(printf '7a%.0s' $(seq 1 100))c3a9
got=$(sh "$TMP/repro.sh" 2>/dev/null | tail -n1 |
      sed -n 's/.*"body_hex":"\([0-9a-f]*\)".*/\1/p')
if [ "$got" = "$want" ] && sh "$TMP/repro.sh" 2>/dev/null | grep -q "x-q\":\"it's\""; then
    ok "repro: runs under sh and sends the same bytes"
else
    bad "repro: runs under sh and sends the same bytes" "got body_hex '$got'"
fi

# 7. Reports.
run --url "$URL" --spec "$SELF" --filter 'selftest.status.*' --filter selftest.requires.skip \
    --report-json "$TMP/r.json" --report-junit "$TMP/r.xml" --expect-fail "$TMP/xf1"
expect "reports: run" 0
if command -v python3 >/dev/null 2>&1; then
    if python3 - "$TMP/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
assert r["runner"]["name"] == "labelsync-check" and r["runner"]["version"]
assert s["passed"] == 1 and s["failed"] == 0 and s["skipped"] == 1 and s["xfail"] == 1, s
assert "items" in r["server"]["features"]
st = {c["id"]: c for c in r["cases"]}
assert st["selftest.status.fail"]["status"] == "xfail" and "status: expected 200" in st["selftest.status.fail"]["message"]
assert st["selftest.requires.skip"]["status"] == "skip" and st["selftest.status.pass"]["level"] == "MUST"
assert st["selftest.status.pass"]["spec"] == ["0"] and isinstance(st["selftest.status.pass"]["duration_ms"], (int, float))
PY
    then ok "report-json content"; else bad "report-json content"; fi
else
    ok "report-json content (python3 missing: not checked)"
fi
if command -v xmllint >/dev/null 2>&1; then
    if xmllint --noout "$TMP/r.xml" 2>"$TMP/xml.err" && grep -q '<skipped message=' "$TMP/r.xml"; then
        ok "report-junit is well-formed XML"
    else
        bad "report-junit is well-formed XML" "$(cat "$TMP/xml.err")"
    fi
else
    grep -q '</testsuites>' "$TMP/r.xml" && ok "report-junit written" || bad "report-junit written"
fi
run --url "$URL" --spec "$SELF" --filter selftest.json-not-json.fail --filter selftest.regex.fail \
    --report-junit "$TMP/f.xml" --report-json "$TMP/f.json"
expect "reports: failures" 1
if command -v xmllint >/dev/null 2>&1; then
    xmllint --noout "$TMP/f.xml" 2>/dev/null && grep -q '<failure type="fail"' "$TMP/f.xml" &&
        ok "report-junit failure elements" || bad "report-junit failure elements"
fi
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$TMP/f.json" 2>/dev/null &&
    ok "report-json with failures parses" || bad "report-json with failures parses"

# 8. Lint.
run --lint --spec "$SELF" --schema "$SCHEMA"
expect "lint: self-test cases are clean" 0
run --lint --spec "$BAD" --schema "$SCHEMA"
expect "lint: malformed fixtures" 2 "bad.unparseable.json: invalid JSON" 'unknown matcher $frob' \
    "unknown step kind" "must contain {{run}}" "{{p}} is used before it is defined" \
    "{{i}} is only defined inside a parallel group" '$var "v" is used before' \
    'unknown feature "time-travel"' "id must equal the file name" \
    'unknown key "selftest_expect"' "max_attempts" "sleep_ms" "does not compile" \
    'sse_expect on stream "s", which is not open here' 'stream "s" is already open' \
    "{{before}} is used before it is defined" '$var "never" is used before' \
    'capture "x" must be "id" or "data:/pointer"' "sse_check needs retry and/or comments_min" \
    'server_start is a lifecycle step: the case must list "lifecycle" in requires' \
    "request while the server is not running" "workspace_files while the server runs" \
    '"../outside" must be a relative path inside the workspace' "args must be at most" \
    "server_restart while the server is not running" 'size makes no sense with "exists": false' \
    'signal must be "TERM" or "KILL"' 'expect must be "fail"'
expect_absent "lint: a capture of an earlier sse_expect event counts as defined" \
    "{{after}} is used before"
run --lint --spec "$SELF" --schema "$TMP/no-such-schema.json"
expect "lint: missing schema" 2

# 9. --server: lifecycle mode.
run --url "$URL" --spec "$SELF" --filter selftest.life.start-stop.pass
expect "--url: lifecycle cases are skipped" 0 \
    "SKIP selftest.life.start-stop.pass (lifecycle cases need --server)" "0 passed, 0 failed, 1 skipped"
run --url "$URL" --spec "$SELF" --filter selftest.life.start-stop.pass --features all
expect "--url --features all: lifecycle cases are still skipped" 0 \
    "SKIP selftest.life.start-stop.pass (lifecycle cases need --server)"
run --server "$LIFE_CMD" --spec "$SELF" --filter 'selftest.status.*' --filter 'selftest.requires.*'
expect "--server: ordinary cases run on a shared server" 1 "PASS selftest.status.pass" \
    "FAIL selftest.status.fail" "SKIP selftest.requires.skip (server lacks feature 'origin-check')" \
    '"lifecycle"]' "2 passed, 1 failed, 1 skipped"
run --server "$LIFE_CMD" --spec "$SELF" --filter 'selftest.life.persist.pass' \
    --filter 'selftest.life.start-fail.pass' --filter 'selftest.status.pass' -v
expect "--server -v traces lifecycle steps" 0 "main server: sh -c " "main server ready in" \
    "main server stopped by SIGTERM in" "main server stopped by SIGKILL in" \
    "workspace_expect kv-a: 1 match" "main server refused to start in" "3 passed, 0 failed, 0 skipped"
run --server "$FAKE --port {port} --root {workspace} --fail cannot-start-here" --spec "$SELF" \
    --filter selftest.status.pass
expect "--server: a server that does not start is exit 3 with its stderr" 3 \
    "the server did not start" "exited before it became ready (exit status 3)" \
    "| fake-server: cannot-start-here"
run --server "$FAKE --port {port} --root {workspace} --never-ready" --spec "$SELF" \
    --filter selftest.status.pass --timeout-scale 0.05
expect "--server: a server that never answers /health is exit 3" 3 \
    "did not answer GET /health with 200 within 500 ms"
run --server "$FAKE --root {workspace}" --spec "$SELF" --filter selftest.status.pass
expect "--server without {port} is a usage error" 2 "must contain {port}"
run --server "$FAKE --port {port}" --spec "$SELF" --filter selftest.status.pass
expect "--server without {workspace} is a usage error" 2 "must contain {workspace}"
run --server "$LIFE_CMD" --url "$URL" --spec "$SELF" --filter selftest.status.pass
expect "--server and --url are exclusive" 2 "mutually exclusive"
mkdir -p "$TMP/nows/cases"
cp "$SELF/cases/selftest.status.pass.json" "$TMP/nows/cases/" && cp "$SELF/SELFTEST" "$TMP/nows/"
run --server "$LIFE_CMD" --spec "$TMP/nows"
expect "--server needs SPEC/workspace" 2 "needs the workspace $TMP/nows/workspace"

# A runner killed by SIGTERM in the middle of a lifecycle case kills its servers and removes
# its scratch directory.
mkdir -p "$TMP/intspec/cases" "$TMP/intrt"
cp -r "$SELF/workspace" "$TMP/intspec/" && cp "$SELF/SELFTEST" "$TMP/intspec/"
cat >"$TMP/intspec/cases/selftest.life.interrupted.json" <<'JSON'
{"id": "selftest.life.interrupted", "title": "a case that is interrupted", "spec": "0",
 "level": "MUST", "requires": ["lifecycle"], "selftest_expect": "pass",
 "steps": [{"server_start": {}}, {"server_start_second": {"args": "--no-lock --never-ready", "within_ms": 30000}}]}
JSON
TMPDIR=$TMP/intrt "$RUNNER" --server "$LIFE_CMD" --spec "$TMP/intspec" >"$TMP/out" 2>"$TMP/err" &
runner_pid=$!
for _ in $(seq 1 100); do
    [ "$(pgrep -f -- "$TMP/intrt" 2>/dev/null | wc -l)" -ge 4 ] && break
    sleep 0.1
done
started=$(pgrep -f -- "$TMP/intrt" 2>/dev/null | wc -l)
kill -TERM "$runner_pid" 2>/dev/null
wait "$runner_pid"
runner_rc=$?
sleep 0.2
left=$(pgrep -f -- "$TMP/intrt" 2>/dev/null | wc -l)
if [ "$started" -ge 4 ] && [ "$runner_rc" = 143 ] && [ "$left" = 0 ] &&
    [ -z "$(ls -A "$TMP/intrt")" ]; then
    ok "SIGTERM to the runner kills its servers and removes its scratch directory"
else
    bad "SIGTERM to the runner kills its servers and removes its scratch directory" \
        "servers seen $started, runner exit $runner_rc, left $left, scratch: $(ls -A "$TMP/intrt")"
fi

# The same when its output pipe closes early (SIGPIPE).
mkdir -p "$TMP/pipert"
TMPDIR=$TMP/pipert "$RUNNER" --server "$LIFE_CMD" --spec "$SELF" --filter 'selftest.life.*' \
    2>/dev/null | head -n 2 >/dev/null
sleep 0.3
if [ -z "$(ls -A "$TMP/pipert")" ] && ! pgrep -f -- "$TMP/pipert" >/dev/null 2>&1; then
    ok "a closed output pipe (SIGPIPE) leaves no server and no scratch directory"
else
    bad "a closed output pipe (SIGPIPE) leaves no server and no scratch directory" \
        "left: $(ls -A "$TMP/pipert")"
fi

# Nothing is left behind by any --server run above.
leftover=$(find "$RT" -mindepth 1 -maxdepth 1 -name 'lsc-run.*' | head -n 3)
if [ -z "$leftover" ] && ! pgrep -f -- "$RT" >/dev/null 2>&1; then
    ok "--server runs leave no server process and no scratch directory"
else
    bad "--server runs leave no server process and no scratch directory" \
        "left: $leftover; processes: $(pgrep -f -- "$RT" | tr '\n' ' ')"
fi

# 10. The fake server must stop cleanly on SIGTERM and stay silent (sanitizer builds report here).
kill "$FAKE_PID" 2>/dev/null
wait "$FAKE_PID"
fake_rc=$?
FAKE_PID=
: >"$TMP/out"
cp "$TMP/fake.err" "$TMP/err"
if [ "$fake_rc" -eq 0 ] && [ ! -s "$TMP/fake.err" ]; then
    ok "fake server stopped cleanly"
else
    bad "fake server stopped cleanly" "exit status $fake_rc"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
