#!/usr/bin/env bash
# runtests.sh - run labelsync's suites and print one closing summary line.
#
#   --flavor F          build flavor of unit tests and self-tests (debug, asan, valgrind)
#   --server-flavor F   build flavor of labelsyncd / labelsync-check for conformance
#   --valgrind          run unit tests and the server under valgrind (leaks are errors)
#   --unit --selftest --spec-lint --conformance --check-format --lint --cppcheck
#   --all               unit, selftest, spec-lint, conformance, check-format, lint,
#                       fuzz-replay
#   --fuzz-replay       replay every fuzz/corpus/<t>/ input through build/F/fuzz/replay_<t>
#                       (under valgrind with --valgrind: a sample, see FUZZ_VALGRIND_MAX)
#   --fuzz-short        libFuzzer: make fuzz, then each target --fuzz-secs N seconds (default
#                       10) on top of its corpus; skipped with a message when clang is missing
#
# Every suite adds to one tally; the last line is "total: N passed, N failed"
# and the exit status is 1 when anything failed.  Servers are started on
# 127.0.0.1 with --port 0 on a scratch copy of spec/workspace and stopped by PID.
set -u
cd "$(dirname "$0")/.."

flavor=debug
sflavor=release
use_valgrind=0
do_unit=0 do_selftest=0 do_lint_spec=0 do_conf=0 do_format=0 do_lint=0 do_cppcheck=0
do_crash=0 do_life=0
do_fuzz_replay=0 do_fuzz_short=0 fuzz_secs=10
while [ $# -gt 0 ]; do
    case "$1" in
    --flavor) flavor=$2; shift ;;
    --server-flavor) sflavor=$2; shift ;;
    --valgrind) use_valgrind=1 ;;
    --unit) do_unit=1 ;;
    --selftest) do_selftest=1 ;;
    --spec-lint) do_lint_spec=1 ;;
    --conformance) do_conf=1 ;;
    --check-format) do_format=1 ;;
    --lint) do_lint=1 ;;
    --cppcheck) do_cppcheck=1 ;;
    --crash) do_crash=1 ;;
    --lifecycle) do_life=1 ;;
    --fuzz-replay) do_fuzz_replay=1 ;;
    --fuzz-short) do_fuzz_short=1 ;;
    --fuzz-secs) fuzz_secs=$2; shift ;;
    --all) do_unit=1 do_selftest=1 do_lint_spec=1 do_conf=1 do_format=1 do_lint=1 do_crash=1
        do_fuzz_replay=1 do_life=1 ;;
    *) echo "runtests: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

passed=0
failed=0
failures=""
pass() { passed=$((passed + ${2:-1})); }
fail() { failed=$((failed + ${2:-1})); failures="$failures\n  $1"; }

VG="valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
--errors-for-leak-kinds=definite,indirect --error-exitcode=99 --suppressions=tools/valgrind.supp"
# Under valgrind everything runs ~20x slower: the runner's waits are scaled,
# and so are the server's timers, or a scaled wait would outlast a 2 s TTL.
# ASan's overhead is small enough for the unscaled waits.
scale=1
[ "$use_valgrind" = 1 ] && scale=10
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

scratch=$(mktemp -d /tmp/labelsync-tests.XXXXXX)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null
    fi
    rm -rf "$scratch"
}
trap cleanup EXIT

# --- unit tests (one cmocka binary per module) ------------------------------
if [ "$do_unit" = 1 ]; then
    echo "== unit tests ($flavor)"
    for t in build/$flavor/tests/test_*; do
        [ -x "$t" ] || continue
        name=$(basename "$t")
        log="$scratch/$name.log"
        if [ "$use_valgrind" = 1 ]; then
            LS_TEST_VALGRIND=1 timeout 600 $VG "$t" >"$log" 2>&1
        else
            timeout 120 "$t" >"$log" 2>&1
        fi
        rc=$?
        np=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
        nf=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
        np=${np:-0}
        nf=${nf:-0}
        pass "" "$np"
        if [ "$nf" -gt 0 ]; then
            fail "$name: $nf failed" "$nf"
        fi
        if [ "$rc" = 99 ]; then
            fail "$name: valgrind reported errors"
        elif [ "$rc" != 0 ] && [ "$nf" = 0 ]; then
            fail "$name: exited with status $rc"
        fi
        printf '  %-22s %3s passed, %s failed (exit %s)\n' "$name" "$np" "$nf" "$rc"
        [ "$rc" = 0 ] || sed 's/^/    | /' "$log" | tail -40
    done
fi

# --- runner self-tests ------------------------------------------------------
if [ "$do_selftest" = 1 ]; then
    echo "== runner self-tests ($flavor)"
    log="$scratch/selftest.log"
    if [ -x conformance/selftest/run-selftest.sh ]; then
        SELFTEST_BUILD=build/$flavor SELFTEST_VALGRIND=$use_valgrind \
            timeout 900 conformance/selftest/run-selftest.sh build/$flavor >"$log" 2>&1
        rc=$?
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
        np=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
        nf=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
        pass "" "${np:-0}"
        [ "${nf:-0}" -gt 0 ] && fail "selftest: $nf failed" "$nf"
        [ "$rc" != 0 ] && [ "${nf:-0}" = 0 ] && fail "selftest: exited with status $rc"
        echo "  ${line:-no summary line} (exit $rc)"
        [ "$rc" = 0 ] || tail -40 "$log" | sed 's/^/    | /'
    else
        fail "selftest: conformance/selftest/run-selftest.sh is missing"
    fi
fi

# --- spec lint ---------------------------------------------------------------
if [ "$do_lint_spec" = 1 ]; then
    echo "== spec lint"
    if build/$sflavor/labelsync-check --lint --spec spec >"$scratch/lint.log" 2>&1; then
        pass
        echo "  $(tail -1 "$scratch/lint.log")"
    else
        fail "spec-lint"
        sed 's/^/    | /' "$scratch/lint.log" | tail -40
    fi
fi

# --- conformance against a fresh labelsyncd ------------------------------------
# Fast timers, so the fixtures that need them (features events.short-keepalive,
# events.small-ring, presence.short-ttl) run in seconds, not minutes.
# Scaled with the runner's waits; with scale > 1 the server no longer
# advertises the fast-timer features, and the cases that need them are skipped.
SERVER_FLAGS="--port 0 --keepalive $scale --event-ring 128 --view-ttl $((2 * scale)) \
--edit-ttl $((2 * scale)) --prune-interval $(awk "BEGIN{print 0.25 * $scale}")"

start_server() { # $1 = workspace; sets server_pid and url
    local out="$scratch/server.out" i
    : >"$out"
    if [ "$use_valgrind" = 1 ]; then
        $VG build/$sflavor/labelsyncd --root "$1" $SERVER_FLAGS >"$out" 2>"$scratch/server.err" &
    else
        build/$sflavor/labelsyncd --root "$1" $SERVER_FLAGS >"$out" 2>"$scratch/server.err" &
    fi
    server_pid=$!
    url=""
    for i in $(seq 1 $((100 * scale))); do
        url=$(grep -o 'http://[^ ]*' "$out" | head -1)
        [ -n "$url" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

stop_server() { # returns the server's exit status (124 if it had to be killed)
    local i rc
    kill -TERM "$server_pid" 2>/dev/null
    for i in $(seq 1 $((50 * scale))); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
        server_pid=""
        return 124
    fi
    wait "$server_pid"
    rc=$?
    server_pid=""
    return $rc
}

if [ "$do_conf" = 1 ]; then
    echo "== conformance (labelsyncd $sflavor$([ "$use_valgrind" = 1 ] && echo ', valgrind'))"
    ws="$scratch/workspace"
    cp -a spec/workspace "$ws"
    if start_server "$ws"; then
        log="$scratch/conformance.log"
        build/$sflavor/labelsync-check --url "$url" --spec spec --timeout-scale "$scale" \
            --report-junit "$scratch/junit.xml" >"$log" 2>&1
        rc=$?
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
        np=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
        nf=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
        pass "" "${np:-0}"
        [ "${nf:-0}" -gt 0 ] && fail "conformance: $nf cases failed" "$nf"
        [ "$rc" != 0 ] && [ "${nf:-0}" = 0 ] && fail "conformance: runner exited with status $rc"
        echo "  ${line:-no summary line} (runner exit $rc)"
        [ "$rc" = 0 ] || grep -v '^PASS' "$log" | tail -80 | sed 's/^/    | /'
        stop_server
        src=$?
        if [ "$src" = 0 ]; then
            pass
            echo "  server stopped cleanly on SIGTERM"
        else
            fail "conformance: server exit status $src on SIGTERM (99 = valgrind errors)"
            tail -40 "$scratch/server.err" | sed 's/^/    | /'
        fi
    else
        fail "conformance: labelsyncd did not start"
        tail -20 "$scratch/server.err" | sed 's/^/    | /'
    fi
fi

# --- lifecycle cases: the runner starts, kills and restarts labelsyncd itself ----
if [ "$do_life" = 1 ]; then
    echo "== lifecycle (restart, kill -9, prepared workspaces)"
    log="$scratch/lifecycle.log"
    srvcmd="exec build/$sflavor/labelsyncd --root {workspace} --port {port} {args}"
    [ "$use_valgrind" = 1 ] && srvcmd="exec $VG build/$sflavor/labelsyncd --root {workspace} --port {port} {args}"
    timeout 900 build/$sflavor/labelsync-check --spec spec --filter 'lifecycle.*' \
        --timeout-scale "$scale" --server "$srvcmd" >"$log" 2>&1
    rc=$?
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    np=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
    nf=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
    pass "" "${np:-0}"
    [ "${nf:-0}" -gt 0 ] && fail "lifecycle: $nf cases failed" "$nf"
    [ "$rc" != 0 ] && [ "${nf:-0}" = 0 ] && fail "lifecycle: runner exited with status $rc"
    echo "  ${line:-no summary line} (runner exit $rc)"
    [ "$rc" = 0 ] || grep -v '^PASS' "$log" | tail -60 | sed 's/^/    | /'
fi

# --- crash consistency: kill -9 under writes, short form ------------------------
if [ "$do_crash" = 1 ]; then
    echo "== crash consistency (8 kill -9 cycles, --fsync always)"
    log="$scratch/crash.log"
    timeout 600 build/$sflavor/crash_test --server-bin build/$sflavor/labelsyncd \
        --workspace-template spec/workspace --cycles 8 --min-run-ms 20 --max-run-ms 150 \
        >"$log" 2>&1
    rc=$?
    line=$(grep -E '^cycles [0-9]+, acknowledged writes' "$log" | tail -1)
    if [ "$rc" = 0 ]; then pass; else fail "crash consistency (exit $rc)"; fi
    echo "  ${line:-no summary line} (exit $rc)"
    [ "$rc" = 0 ] || tail -30 "$log" | sed 's/^/    | /'
fi

# --- fuzz corpora: every input through the standalone driver -------------------------
# Under valgrind the inputs of a target are sampled when there are more than
# FUZZ_VALGRIND_MAX (every regress-* file is always kept), so the valgrind run
# stays within its time budget; docs/fuzzing.md has the numbers.
if [ "$do_fuzz_replay" = 1 ]; then
    echo "== fuzz corpus replay ($flavor$([ "$use_valgrind" = 1 ] && echo ', valgrind'))"
    vg_max=${FUZZ_VALGRIND_MAX:-1000}
    for d in fuzz/corpus/*/; do
        d=${d%/}
        t=$(basename "$d")
        bin=build/$flavor/fuzz/replay_$t
        log="$scratch/replay_$t.log"
        if [ ! -x "$bin" ]; then
            fail "replay_$t: $bin is not built"
            continue
        fi
        set -- "$d"
        total=$(find "$d" -type f | wc -l)
        if [ "$use_valgrind" = 1 ] && [ "$total" -gt "$vg_max" ]; then
            step=$(( (total + vg_max - 1) / vg_max ))
            set -- $(find "$d" -type f -name 'regress-*' | sort) \
                $(find "$d" -type f ! -name 'regress-*' | sort | awk -v k="$step" 'NR % k == 1')
        fi
        if [ "$use_valgrind" = 1 ]; then
            timeout 1200 $VG "$bin" --timeout=$((25 * scale)) "$@" >"$log" 2>&1
        else
            timeout 600 "$bin" "$@" >"$log" 2>&1
        fi
        rc=$?
        line=$(grep -E '^replay: [0-9]+ inputs executed' "$log" | tail -1)
        if [ "$rc" = 0 ]; then
            pass
        elif [ "$rc" = 99 ]; then
            fail "replay_$t: valgrind reported errors"
        else
            fail "replay_$t: exit status $rc ($(grep '^Running: ' "$log" | tail -1))"
        fi
        printf '  %-22s %s of %s files (exit %s)\n' "replay_$t" \
            "$(echo "$line" | sed -n 's/^replay: \([0-9]*\) inputs.*/\1/p')" "$total" "$rc"
        [ "$rc" = 0 ] || grep -v '^Running: ' "$log" | tail -30 | sed 's/^/    | /'
    done
fi

# --- libFuzzer, a short bounded run per target ------------------------------------------
# New inputs and crashes go to the scratch dir; the committed corpus is only
# read.  A crash is printed with its input in base64 so CI logs reproduce it.
if [ "$do_fuzz_short" = 1 ]; then
    echo "== libFuzzer (${fuzz_secs}s per target)"
    fcc=${FUZZ_CC:-clang}
    if ! command -v "$fcc" >/dev/null 2>&1; then
        echo "  skipped: $fcc not found; install clang-14 and libclang-rt-14-dev to fuzz"
    elif ! make --no-print-directory fuzz >"$scratch/fuzz-build.log" 2>&1; then
        fail "fuzz: make fuzz failed"
        tail -20 "$scratch/fuzz-build.log" | sed 's/^/    | /'
    else
        for d in fuzz/corpus/*/; do
            d=${d%/}
            t=$(basename "$d")
            w="$scratch/fuzz/$t"
            log="$w.log"
            mkdir -p "$w/corpus" "$w/artifacts"
            # shellcheck disable=SC2046
            timeout $((fuzz_secs + 300)) build/fuzz/fuzz_$t $(fuzz/flags.sh "$t") \
                -max_total_time="$fuzz_secs" -print_final_stats=1 \
                -artifact_prefix="$w/artifacts/" "$w/corpus" "$d" >"$log" 2>&1
            rc=$?
            done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
            eps=$(sed -n 's/^stat::average_exec_per_sec:[[:space:]]*//p' "$log")
            if [ "$rc" = 0 ]; then
                pass
                printf '  %-16s %s exec/s, %s\n' "fuzz_$t" "${eps:-?}" \
                    "$(echo "$done_line" | grep -o 'cov: [0-9]* ft: [0-9]*')"
            else
                fail "fuzz_$t: libFuzzer exit status $rc"
                printf '  %-16s FAILED (exit %s)\n' "fuzz_$t" "$rc"
                grep -E 'ERROR|SUMMARY|violated|disagree|Test unit written' "$log" | head -10 |
                    sed 's/^/    | /'
                for a in "$w"/artifacts/*; do
                    [ -f "$a" ] || continue
                    echo "    | input $(basename "$a") (base64): $(head -c 4096 "$a" | base64 -w0)"
                done
            fi
        done
    fi
fi

# --- formatting and banned functions ----------------------------------------------
if [ "$do_format" = 1 ]; then
    echo "== check-format"
    files=$(find impl conformance fuzz -name '*.[ch]' 2>/dev/null | sort)
    if command -v clang-format >/dev/null 2>&1; then
        bad=""
        for f in $files; do
            clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
        done
        if [ -z "$bad" ]; then pass; echo "  clang-format: clean"; else
            fail "check-format:$bad (run: make format)"; echo "  not formatted:$bad"; fi
    else
        fail "check-format: clang-format is not installed (make deps)"
    fi
fi

if [ "$do_lint" = 1 ]; then
    echo "== lint (banned functions)"
    hits=$(grep -nE '\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets)\s*\(' \
        $(find impl conformance fuzz -name '*.[ch]' 2>/dev/null) | grep -v 'snprintf' || true)
    if [ -z "$hits" ]; then pass; echo "  no banned functions"; else
        fail "lint: banned functions"; echo "$hits" | sed 's/^/    | /'; fi
fi

if [ "$do_cppcheck" = 1 ]; then
    echo "== cppcheck"
    if command -v cppcheck >/dev/null 2>&1; then
        if cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability \
            --inline-suppr -Iimpl/include impl/src conformance/src 2>"$scratch/cppcheck.log"; then
            pass; echo "  clean"
        else
            fail "cppcheck"; sed 's/^/    | /' "$scratch/cppcheck.log" | tail -40
        fi
    else
        fail "cppcheck is not installed (apt-get install -y cppcheck)"
    fi
fi

if [ "$failed" -gt 0 ]; then
    printf 'failures:%b\n' "$failures"
fi
echo "total: $passed passed, $failed failed"
[ "$failed" = 0 ]
