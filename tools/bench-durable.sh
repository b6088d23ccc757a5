#!/usr/bin/env bash
# tools/bench-durable.sh - durability benchmarks of labelsyncd's label log,
# printed as a markdown section for docs/benchmarks.md.
#
#   throughput: PATCH at 1, 16 and 64 connections for each --fsync mode
#               (always = group commit, each = one fdatasync per record,
#               never), plus batch at 16; a fresh server on a fresh temp copy
#               of spec/workspace per point, with one /scratch item per
#               connection (no 409s) and --compact-bytes 0.
#   startup:    time from exec to the "serving" line and to the first
#               /health 200, and VmHWM, with a generated log of 10^4, 10^5
#               and 10^6 records; then again after a graceful stop (which
#               compacts the log into a snapshot).
#
# usage: tools/bench-durable.sh [--seconds S] [--warmup S] [--parts "throughput startup"]
#          [--modes "always each never"] [--connections "1 16 64"]
#          [--batch-connections "16"] [--sizes "10000 100000 1000000"]
#          [--runs N] [--threads N] [--no-idem] [--wait-idle S] [--retries N]
#
# Noise: a row whose machine CPU exceeds server + client by more than 30
# points (a start whose machine CPU ms exceed the server's by more than a
# quarter + 50 ms) is marked noisy; --retries N re-runs it up to N times,
# and --wait-idle S first waits (at most S s per attempt) until the machine
# is idle (two 1 s samples under 20 % of one CPU).
#
# Temp dirs live under ${TMPDIR:-/tmp}, which must be a real disk (fsync
# is what is measured).  Every server is stopped by its PID; the temp dir
# is removed on every exit path.  Raw bench_http outputs are copied to
# build/bench/durable-<mode>-<conns>.out.
set -euo pipefail
export LC_ALL=C

cd "$(dirname "$0")/.."

SECS=5
WARMUP=1
PARTS="throughput startup"
MODES="always each never"
CONNECTIONS="1 16 64"
BATCH_CONNECTIONS="16"
SIZES="10000 100000 1000000"
RUNS=3
THREADS=2
IDEM=--idem
WAIT_IDLE=0
RETRIES=0
NOISE_PCT=30 # machine - server - client, % of one CPU, above which a row is noisy
START_TIMEOUT=300 # s, bound on one start-up (10^6 records take ~15 s)
STOP_TIMEOUT=120  # s, bound on one graceful stop (compaction)
CMDLINE="tools/bench-durable.sh${*:+ $(printf '%q ' "$@")}"
CMDLINE="${CMDLINE% }"

usage() {
    sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) SECS="${2:?--seconds needs a value}"; shift 2 ;;
    --warmup) WARMUP="${2:?--warmup needs a value}"; shift 2 ;;
    --parts) PARTS="${2:?--parts needs a value}"; shift 2 ;;
    --modes) MODES="${2:?--modes needs a value}"; shift 2 ;;
    --connections) CONNECTIONS="${2:?--connections needs a value}"; shift 2 ;;
    --batch-connections) BATCH_CONNECTIONS="${2?--batch-connections needs a value}"; shift 2 ;;
    --sizes) SIZES="${2:?--sizes needs a value}"; shift 2 ;;
    --runs) RUNS="${2:?--runs needs a value}"; shift 2 ;;
    --threads) THREADS="${2:?--threads needs a value}"; shift 2 ;;
    --no-idem) IDEM=--no-idem; shift ;;
    --wait-idle) WAIT_IDLE="${2:?--wait-idle needs a value}"; shift 2 ;;
    --retries) RETRIES="${2:?--retries needs a value}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench-durable.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
case "$WAIT_IDLE$RETRIES" in
'' | *[!0-9]*) echo "bench-durable.sh: --wait-idle and --retries take integers >= 0" >&2; exit 2 ;;
esac
for v in "$RUNS" "$THREADS" $CONNECTIONS $BATCH_CONNECTIONS $SIZES; do
    case "$v" in
    '' | *[!0-9]*) echo "bench-durable.sh: '$v' is not a positive integer" >&2; exit 2 ;;
    esac
    [ "$v" -ge 1 ] || { echo "bench-durable.sh: '$v' must be >= 1" >&2; exit 2; }
done
for c in $CONNECTIONS $BATCH_CONNECTIONS; do
    [ "$c" -le 1000 ] || { echo "bench-durable.sh: at most 1000 connections" >&2; exit 2; }
done
for n in $SIZES; do
    [ "$n" -le 10000000 ] || { echo "bench-durable.sh: at most 10^7 records" >&2; exit 2; }
done

log() { echo "bench-durable.sh: $*" >&2; }
die() { log "$*"; exit 1; }

SERVER=build/release/labelsyncd
BENCH=build/bench/bench_http
MAKELOG=build/bench/make_log

log "building $SERVER, bench_http and make_log"
make --no-print-directory FLAVOR=release "$SERVER" build/release/bench_http >&2
mkdir -p build/bench
cp build/release/bench_http "$BENCH"
LIB_OBJ=""
for f in impl/src/*.c; do
    b=$(basename "$f" .c)
    [ "$b" = main ] || LIB_OBJ+=" build/release/obj/impl/src/$b.o"
done
# shellcheck disable=SC2046,SC2086
gcc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
    -Wmissing-prototypes -Wformat=2 -Wcast-qual -Wwrite-strings -Wundef -Wvla -Werror \
    -Iimpl/include $(pkg-config --cflags libmicrohttpd libcjson libcurl) impl/bench/make_log.c \
    $LIB_OBJ $(pkg-config --libs libmicrohttpd libcjson libcurl) -lpthread -lm -o "$MAKELOG"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/labelsync-durable.XXXXXX")
PID=""
FIFO_OPEN=0
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 1 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    if [ "$FIFO_OPEN" = 1 ]; then exec 7<&-; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FSTYPE=$(stat -f -c %T "$TMP")
if [ "$FSTYPE" = tmpfs ]; then
    log "WARNING: $TMP is on tmpfs: fdatasync costs nothing there"
fi

# ms A B: (B - A) in milliseconds, from two $EPOCHREALTIME stamps.
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
# median and range of the numbers on stdin (one per line): "median (min–max)".
med() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "?"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    if (NR == 1) printf "%s", m; else printf "%s (%s–%s)", m, v[1], v[NR] }'; }
# field NAME FILE: the value of "NAME: value" in bench_http's output.
field() { awk -v k="$1:" '$1 == k { print $2 }' "$2"; }

# busy_pct: CPU busy over 1 s, all processes (% of one CPU, 200 = both), from /proc/stat.
busy_pct() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
    awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ")
        printf "%.0f", (y[2] > x[2]) ? 100 * n * (y[1] - x[1]) / (y[2] - x[2]) : 0 }'
}

# wait_idle: with --wait-idle S, wait (at most S s) until two 1 s samples of
# busy_pct in a row are under 20 % of one CPU.  Sets IDLE_OK (yes/no/-).
wait_idle() {
    local t0=$SECONDS q=0 b
    IDLE_OK=-
    [ "$WAIT_IDLE" -gt 0 ] || return 0
    while [ $((SECONDS - t0)) -lt "$WAIT_IDLE" ]; do
        b=$(busy_pct)
        if [ "$b" -lt 20 ]; then q=$((q + 1)); else q=0; fi
        if [ "$q" -ge 2 ]; then
            IDLE_OK=yes
            return 0
        fi
        [ $(((SECONDS - t0) % 60)) -lt 1 ] && log "waiting for an idle machine (busy ${b} %)"
    done
    IDLE_OK=no
    log "the machine did not become idle within ${WAIT_IDLE}s; measuring anyway"
}

HZ=$(getconf CLK_TCK)
# busy_ticks: busy ticks of all CPUs so far, from /proc/stat.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# start_server WS ARGS...: start labelsyncd on WS, time it.  Sets PID, URL,
# T_SERVING (ms from exec to the "serving" line), T_HEALTH (ms to the first
# /health 200, over a raw /dev/tcp request: no process is spawned), HWM_KB,
# CPU_SERVER and CPU_MACHINE (ms of CPU from exec to that 200).
start_server() {
    local ws=$1 line="" t0 t1 t2="" port status b0 b1 i
    shift
    rm -f "$TMP/fifo"
    mkfifo "$TMP/fifo"
    b0=$(busy_ticks)
    t0=$EPOCHREALTIME
    "$SERVER" --root "$ws" --port 0 --threads "$THREADS" "$@" >"$TMP/fifo" 2>>"$TMP/server.err" &
    PID=$!
    exec 7<"$TMP/fifo"
    FIFO_OPEN=1
    if ! read -r -t "$START_TIMEOUT" line <&7 || [ -z "$line" ]; then
        tail -n 20 "$TMP/server.err" >&2
        die "labelsyncd (pid $PID) did not print its URL within ${START_TIMEOUT}s"
    fi
    t1=$EPOCHREALTIME
    URL=$(printf '%s\n' "$line" | grep -o 'http://127\.0\.0\.1:[0-9]*/' || true)
    [ -n "$URL" ] || die "unexpected first line from labelsyncd: $line"
    port=${URL#http://127.0.0.1:}
    port=${port%/}
    for ((i = 0; i < 5000; i++)); do
        # (the group keeps 2>/dev/null from sticking to the shell, as exec's own would)
        if { exec 8<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
            printf 'GET /health HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' \
                "$port" >&8
            status=""
            read -r -t 10 status <&8 || true
            exec 8<&-
            case "$status" in "HTTP/1."?" 200"*) t2=$EPOCHREALTIME; break ;; esac
        fi
        sleep 0.001
    done
    [ -n "$t2" ] || die "/health did not answer 200"
    b1=$(busy_ticks)
    # CPU ms (tick resolution): the server's utime + stime, and all CPUs' busy time
    CPU_SERVER=$(awk -v hz="$HZ" '{ sub(/^.*\) /, ""); print ($12 + $13) * 1000 / hz }' "/proc/$PID/stat")
    CPU_MACHINE=$(( (b1 - b0) * 1000 / HZ ))
    T_SERVING=$(ms "$t0" "$t1")
    T_HEALTH=$(ms "$t0" "$t2")
    HWM_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PID/status")
}

# stop_server: SIGTERM by PID, bounded; sets T_STOP (ms) and checks the exit status.
stop_server() {
    local t0 t1 rc=0 i
    t0=$EPOCHREALTIME
    kill -TERM "$PID"
    for ((i = 0; i < STOP_TIMEOUT * 100; i++)); do
        kill -0 "$PID" 2>/dev/null || break
        # a zombie still answers kill -0: check the state
        [ "$(awk '{ print $3 }' "/proc/$PID/stat" 2>/dev/null)" = Z ] && break
        sleep 0.01
    done
    t1=$EPOCHREALTIME
    if kill -0 "$PID" 2>/dev/null && [ "$(awk '{ print $3 }' "/proc/$PID/stat" 2>/dev/null)" != Z ]; then
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        PID=""
        die "labelsyncd did not stop within ${STOP_TIMEOUT}s (killed)"
    fi
    wait "$PID" || rc=$?
    PID=""
    exec 7<&-
    FIFO_OPEN=0
    [ "$rc" = 0 ] || die "labelsyncd exited with status $rc"
    T_STOP=$(ms "$t0" "$t1")
}

# labels FIELD...: values of GET /health's labels object, space-separated.
labels() {
    local q="" f
    for f in "$@"; do q+="\(.labels.$f) "; done
    curl -sf --max-time 10 --noproxy '*' "${URL}health" | jq -r "\"$q\""
}

MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
DEV=$(df --output=source "$TMP" | tail -n 1)
DEVNAME=$(basename "$DEV")
WCACHE=$(cat "/sys/block/$DEVNAME/queue/write_cache" 2>/dev/null || echo unknown)
FSMOUNT=$(awk -v d="$DEV" '$1 == d { print $3; exit }' /proc/mounts)
VERSION=$("$SERVER" --version 2>/dev/null | head -n 1)

cat <<EOF
## $(date -u +%Y-%m-%d) — $VERSION, durable label log (tools/bench-durable.sh)

- command: \`$CMDLINE\`
- machine: $(nproc) CPUs, ${MODEL:-unknown}, $MEM, $(uname -sr); server and load generator share these CPUs
- disk: temp dirs on $DEV (${FSMOUNT:-$FSTYPE}), write cache: $WCACHE
EOF

# ---------------------------------------------------------------------------
# Part 1: PATCH throughput per fsync mode

if [[ " $PARTS " == *" throughput "* ]]; then
    MAXC=1
    for c in $CONNECTIONS $BATCH_CONNECTIONS; do
        if [ "$c" -gt "$MAXC" ]; then MAXC=$c; fi
    done
    cp -r spec/workspace "$TMP/template"
    rm -rf "$TMP/template/.lenslet"
    PATHS=()
    for ((i = 1; i <= MAXC; i++)); do
        name=$(printf 'w%02d.png' "$i")
        cp spec/workspace/scratch/s01.png "$TMP/template/scratch/$name"
        PATHS+=("/scratch/$name")
    done
    POINTS=()
    for m in $MODES; do for c in $CONNECTIONS; do POINTS+=("$m:$c"); done; done
    for c in $BATCH_CONNECTIONS; do POINTS+=("batch:$c"); done

    BG=$(busy_pct)
    log "throughput: machine busy before the runs: ${BG} % of one CPU"
    ROWS=""
    ITEMS=""
    for p in "${POINTS[@]}"; do
        m=${p%%:*}
        c=${p##*:}
        for ((try = 1; ; try++)); do
            wait_idle
            ws="$TMP/ws-$m-$c"
            cp -r "$TMP/template" "$ws"
            start_server "$ws" --fsync "$m" --compact-bytes 0
            read -r r0 f0 b0 <<<"$(labels records fsyncs log_bytes)"
            args=()
            for ((i = 0; i < c; i++)); do args+=(--path "${PATHS[$i]}"); done
            out="$TMP/$m-$c.txt"
            log "throughput: --fsync $m, $c connections, ${SECS}s (server pid $PID, attempt $try)"
            "$BENCH" --url "$URL" --mode patch --connections "$c" --seconds "$SECS" \
                --warmup "$WARMUP" --server-pid "$PID" "${args[@]}" >"$out"
            read -r r1 f1 b1 comp fail <<<"$(labels records fsyncs log_bytes compactions failures)"
            stop_server
            cp "$out" "build/bench/durable-$m-$c.out"
            rm -rf "$ws"
            excess=$(($(field machine_cpu_pct "$out") - $(field server_cpu_pct "$out") \
                - $(field client_cpu_pct "$out")))
            if [ "$excess" -le "$NOISE_PCT" ] || [ "$try" -gt "$RETRIES" ]; then break; fi
            log "throughput: noisy: machine CPU exceeds server + client by $excess points; again"
        done
        note="$try"
        [ "$excess" -le "$NOISE_PCT" ] || note+=" noisy"
        ITEMS=$(field health_items "$out")
        dr=$((r1 - r0))
        df_=$((f1 - f0))
        db=$((b1 - b0))
        s200=$(field status_200 "$out")
        secs=$(field seconds "$out")
        ROWS+=$(awk -v m="$m" -v c="$c" -v s200="$s200" -v secs="$secs" \
            -v s409="$(field status_409 "$out")" -v so="$(field status_other "$out")" \
            -v err="$(field errors "$out")" -v p50="$(field latency_us_p50 "$out")" \
            -v p90="$(field latency_us_p90 "$out")" -v p99="$(field latency_us_p99 "$out")" \
            -v pmax="$(field latency_us_max "$out")" -v dr="$dr" -v df="$df_" -v db="$db" \
            -v scpu="$(field server_cpu_pct "$out")" -v ccpu="$(field client_cpu_pct "$out")" \
            -v mcpu="$(field machine_cpu_pct "$out")" -v comp="$comp" -v fail="$fail" \
            -v excess="$excess" -v note="$note" -v cpr="$(field server_cpu_us_per_req "$out")" \
            'BEGIN {
                wps = secs > 0 ? s200 / secs : 0
                fpr = dr > 0 ? sprintf("%.3f", df / dr) : "–"
                rpf = df > 0 ? sprintf("%.1f", dr / df) : "–"
                bpr = dr > 0 ? sprintf("%.0f", db / dr) : "–"
                cpw = cpr != "" ? cpr : "–"
                printf "| %s | %d | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s/%s | %s |\n",
                    m, c, wps, s200, s409, so, err, p50, p90, p99, pmax, dr, df, fpr, rpf, db, bpr,
                    scpu, ccpu, mcpu, excess, cpw, comp, fail, note
            }')$'\n'
    done
    BG2=$(busy_pct)
    cat <<EOF

### PATCH throughput by --fsync mode

- server, fresh for every row on a fresh temp copy of spec/workspace plus $MAXC copies of \`scratch/s01.png\` (\`/scratch/w01.png\` …), so the log starts empty: \`labelsyncd --root WS --port 0 --threads $THREADS --fsync MODE --compact-bytes 0\`
- each row: \`bench_http --url URL --mode patch --connections N --seconds $SECS --warmup $WARMUP --server-pid PID --path /scratch/w01.png … --path /scratch/wNN.png\` (N paths: every connection owns one item, so there is nothing to race for)
- items served (GET /health): ${ITEMS:-?}
- writes/s = 200s ÷ measured seconds; latency over the measured window; records, fsyncs and log bytes are the change in \`/health\` labels.* across warm-up + measurement
- machine busy (all processes, % of one CPU) over 1 s before the first row: ${BG} %, after the last: ${BG2} %
- excess CPU = machine − server − client (loopback softirq and anything else running); above $NOISE_PCT the row is marked noisy; attempt = which try is shown (--retries $RETRIES, --wait-idle $WAIT_IDLE)

| fsync | conns | writes/s (200) | 200 | 409 | other | errors | p50 µs | p90 µs | p99 µs | max µs | records | fsyncs | fsyncs/record | records/fsync | log bytes | bytes/record | server CPU % | client CPU % | machine CPU % | excess CPU % | server CPU µs/req | compactions/failures | attempt |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|
$ROWS
EOF
fi

# ---------------------------------------------------------------------------
# Part 2: start-up time against log length, then against the snapshot

if [[ " $PARTS " == *" startup "* ]]; then
    mapfile -t ITEMPATHS < <(cd spec/workspace && find . -type f \( -iname '*.png' -o -iname '*.jpg' \
        -o -iname '*.jpeg' -o -iname '*.webp' \) ! -path '*/.*' | sed 's/^\.//' | LC_ALL=C sort)
    BG=$(busy_pct)
    log "startup: machine busy before the runs: ${BG} % of one CPU"
    ROWS=""
    RAW=""
    for n in $SIZES; do
        tpl="$TMP/log-$n.jsonl"
        log "startup: generating $n records"
        g0=$EPOCHREALTIME
        "$MAKELOG" --out "$tpl" --records "$n" $IDEM "${ITEMPATHS[@]}" >/dev/null
        g1=$EPOCHREALTIME
        bytes=$(stat -c %s "$tpl")
        A_S=() A_H=() A_M=() A_T=() A_Z=() B_S=() B_H=() B_M=()
        for ((r = 1; r <= RUNS; r++)); do
          for ((try = 1; ; try++)); do
            wait_idle
            ws="$TMP/ws-$n-$r"
            cp -r spec/workspace "$ws"
            rm -rf "$ws/.lenslet"
            mkdir -m 700 "$ws/.lenslet"
            cp "$tpl" "$ws/.lenslet/labels.log.jsonl"
            log "startup: $n records, run $r: from the log"
            start_server "$ws"
            A_S+=("$T_SERVING") A_H+=("$T_HEALTH") A_M+=("$HWM_KB")
            a_cpu="$CPU_SERVER / $CPU_MACHINE"
            a_noisy=$((CPU_MACHINE - CPU_SERVER > CPU_SERVER / 4 + 50))
            read -r last recs <<<"$(labels last_event_id records)"
            [ "$last" = "$n" ] || die "after replay last_event_id is $last, expected $n"
            stop_server
            A_T+=("$T_STOP")
            snap=$(stat -c %s "$ws/.lenslet/labels.snapshot.json")
            logb=$(stat -c %s "$ws/.lenslet/labels.log.jsonl")
            [ "$logb" = 0 ] || die "the log is $logb bytes after a graceful stop, expected 0"
            A_Z+=("$snap")
            log "startup: $n records, run $r: from the snapshot ($snap bytes)"
            start_server "$ws"
            B_S+=("$T_SERVING") B_H+=("$T_HEALTH") B_M+=("$HWM_KB")
            b_cpu="$CPU_SERVER / $CPU_MACHINE"
            b_noisy=$((CPU_MACHINE - CPU_SERVER > CPU_SERVER / 4 + 50))
            read -r last <<<"$(labels last_event_id)"
            [ "$last" = "$n" ] || die "after the snapshot last_event_id is $last, expected $n"
            stop_server
            rm -rf "$ws"
            if [ $((a_noisy + b_noisy)) = 0 ] || [ "$try" -gt "$RETRIES" ]; then break; fi
            log "startup: noisy (machine CPU well above the server's); again"
            unset 'A_S[-1]' 'A_H[-1]' 'A_M[-1]' 'A_T[-1]' 'A_Z[-1]' 'B_S[-1]' 'B_H[-1]' 'B_M[-1]'
          done
            note="$try"
            [ $((a_noisy + b_noisy)) = 0 ] || note+=" noisy"
            RAW+="| $n | $r | ${A_S[-1]} | ${A_H[-1]} | $((A_M[-1] / 1024)) | $a_cpu | ${A_T[-1]} "
            RAW+="| ${B_S[-1]} | ${B_H[-1]} | $((B_M[-1] / 1024)) | $b_cpu | $note |"$'\n'
        done
        rm -f "$tpl"
        mb() { awk '{ printf "%.0f\n", $1 / 1024 }'; }
        ROWS+="| $n | $bytes | $(ms "$g0" "$g1") | $(printf '%s\n' "${A_S[@]}" | med) "
        ROWS+="| $(printf '%s\n' "${A_H[@]}" | med) | $(printf '%s\n' "${A_M[@]}" | mb | med) "
        ROWS+="| $(printf '%s\n' "${A_T[@]}" | med) | $(printf '%s\n' "${A_Z[@]}" | med) "
        ROWS+="| $(printf '%s\n' "${B_S[@]}" | med) | $(printf '%s\n' "${B_H[@]}" | med) "
        ROWS+="| $(printf '%s\n' "${B_M[@]}" | mb | med) |"$'\n'
    done
    BG2=$(busy_pct)
    cat <<EOF

### Start-up time against log length

- log: \`make_log --out WS/.lenslet/labels.log.jsonl --records N $IDEM <the 44 item paths>\` (records from \`wal_format_item\`, round-robin over the items, ids 1..N, versions increasing per item, crc; every record sets one tag, notes and star$([ "$IDEM" = --idem ] && echo ", and carries an idempotency key like a PATCH with Idempotency-Key"))
- each run: a fresh temp copy of spec/workspace with that log; \`labelsyncd --root WS --port 0 --threads $THREADS\` (defaults: --fsync always, --compact-bytes 67108864); then SIGTERM (the graceful stop compacts the log into labels.snapshot.json and empties the log) and a second start on the same workspace
- "serving": ms from exec to the stdout line; "/health": ms from exec to the first 200 of a raw GET /health; peak RSS: VmHWM right after that; \`/health\` labels.last_event_id is checked to be N after both starts
- $RUNS runs each: median (min–max); the log was just written, so it is in the page cache (warm start)
- machine busy (all processes, % of one CPU) over 1 s before the first run: ${BG} %, after the last: ${BG2} %

| records | log bytes | generate ms | start from log: serving ms | /health ms | peak RSS MB | graceful stop (compaction) ms | snapshot bytes | start from snapshot: serving ms | /health ms | peak RSS MB |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$ROWS
Per run:

CPU ms = the server's utime + stime / all CPUs' busy time (/proc/stat), from exec to the /health 200, at 10 ms tick resolution. Start-up is single-threaded, so machine well above server means something else was running (marked noisy above a quarter + 50 ms; attempt = which try is shown, --retries $RETRIES, --wait-idle $WAIT_IDLE).

| records | run | log: serving ms | /health ms | peak RSS MB | CPU ms server / machine | stop ms | snapshot: serving ms | /health ms | peak RSS MB | CPU ms server / machine | attempt |
|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|
$RAW
EOF
fi
