#!/usr/bin/env bash
# Where does pod-router's CPU go on the proxy hot path? (companion of bench/run.sh)
#
#   bash bench/profile.sh [callgrind|strace|perf|all]      (default: all)
#
# callgrind  pod-router (1 thread, -O3 -g build in build-bench-prof/) under
#            valgrind --tool=callgrind while wrk sends GET /?roomId=room_bench through it,
#            and HAProxy and nginx the same way: user-space instructions per request (free of
#            the machine's noise) and the top functions (self and inclusive).
# strace     system calls per proxied request, for pod-router, HAProxy and nginx alike
#            (strace -c -f on the proxy process during a short wrk run).
# perf       perf record -e cpu-clock -g on pod-router (software clock: works without
#            hardware counters), user vs kernel split and the top symbols.
# Output: test-output/bench/profile/*.txt. Same ports, upstream and process rules as run.sh.
# Knobs: PROFILE_SECONDS (wrk seconds per measurement, 8), BENCH_PORT_BASE.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
work="$repo/test-output/bench/profile"
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$repo/bench/lib/common.sh"
preflight
trap cleanup EXIT
trap 'exit 130' INT TERM

mode="${1:-all}"
SECS="${PROFILE_SECONDS:-8}"
rm -rf "$work"
mkdir -p "$work"

# A build with symbols for callgrind/perf (same -O3, asserts off), plus the release build.
build_router build-bench-prof -Doptimization=3 -Ddebug=true -Db_ndebug=true
pbin="$bin"
build_router
start_upstreams

requests_of() { awk '/requests in/ {print $1}' "$1"; }

# ---- callgrind ------------------------------------------------------------------------------
# User-space instructions per proxied request: deterministic, unlike CPU time on a shared box.
# Instrumentation is switched on only for the measured wrk run (not start-up, not warm-up).
run_callgrind() {
    command -v valgrind >/dev/null || { log "no valgrind: skipping callgrind"; return 0; }
    local col
    bin="$pbin"
    for col in pr1 haproxy nginx; do
        log "callgrind: $col under valgrind, wrk -c10 ${SECS}s"
        local out="$work/callgrind-$col.out"
        WRAP="valgrind --tool=callgrind --callgrind-out-file=$out --instr-atstart=no" \
            NGINX_MASTER=off start_proxy "$col" "$UP_HTTP" "$col-callgrind"
        local w="$wrapper" vpid="$mpid"
        timeout 60 wrk -t1 -c10 -d2s "http://127.0.0.1:$pport$ROOM_PATH" >/dev/null 2>&1 || true
        callgrind_control -i on "$vpid" >/dev/null
        timeout $((SECS + 60)) wrk -t1 -c10 -d"${SECS}s" "http://127.0.0.1:$pport$ROOM_PATH" \
            >"$work/wrk-callgrind-$col.txt" 2>&1 || true
        callgrind_control -i off "$vpid" >/dev/null
        stop "$w"
        local reqs ir
        reqs="$(requests_of "$work/wrk-callgrind-$col.txt")"
        callgrind_annotate --inclusive=no "$out" >"$work/callgrind-$col-self.txt" 2>&1 || true
        callgrind_annotate --inclusive=yes "$out" >"$work/callgrind-$col-inclusive.txt" 2>&1 || true
        ir="$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}' "$work/callgrind-$col-self.txt")"
        {
            echo "$col: requests $reqs, instructions $ir, per request $(awk -v a="$ir" -v b="$reqs" 'BEGIN {printf "%.0f", a / b}')"
            echo
            echo "== self (exclusive) =="
            awk '/^Ir/ {p = 1} p && n++ < 50' "$work/callgrind-$col-self.txt"
            echo
            echo "== inclusive =="
            awk '/^Ir/ {p = 1} p && n++ < 70' "$work/callgrind-$col-inclusive.txt"
        } >"$work/callgrind-$col.txt"
        head -n 1 "$work/callgrind-$col.txt" >>"$work/instructions.txt"
        log "callgrind $col: $reqs requests, $ir instructions"
    done
    log "instructions per request -> $work/instructions.txt (details: callgrind-*.txt)"
}

# ---- strace ---------------------------------------------------------------------------------
run_strace() {
    command -v strace >/dev/null || { log "no strace: skipping"; return 0; }
    local col
    for col in pr1 pr2 haproxy nginx; do
        start_proxy "$col" "$UP_HTTP" "$col-strace"
        local pw="$wrapper"
        timeout 30 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$pport$ROOM_PATH" >/dev/null 2>&1 || true
        timeout $((SECS + 30)) strace -c -f -p "$mpid" -o "$work/strace-$col.txt" &
        local sp=$!
        sleep 0.5
        timeout $((SECS + 30)) wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$pport$ROOM_PATH" \
            >"$work/wrk-strace-$col.txt" 2>&1 || true
        kill -INT "$sp" 2>/dev/null || true
        wait "$sp" 2>/dev/null || true
        stop "$pw"
        local reqs
        reqs="$(requests_of "$work/wrk-strace-$col.txt")"
        {
            echo "$col: $reqs requests"
            awk -v n="$reqs" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {
                printf "  %-16s %8.2f per request\n", $NF, $4 / n } /total$/ {
                printf "  %-16s %8.2f per request\n", "TOTAL", $4 / n }' "$work/strace-$col.txt"
        } >>"$work/syscalls.txt"
        log "strace $col: $reqs requests"
    done
    log "system calls per request -> $work/syscalls.txt"
}

# ---- perf -----------------------------------------------------------------------------------
run_perf() {
    command -v perf >/dev/null || { log "no perf: skipping"; return 0; }
    bin="$pbin"
    start_proxy pr1 "$UP_HTTP" pr1-perf
    local pw="$wrapper"
    timeout 30 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$pport$ROOM_PATH" >/dev/null 2>&1 || true
    timeout $((SECS + 30)) perf record -e cpu-clock -F 2000 -g -p "$mpid" -o "$work/perf.data" \
        >"$work/perf-record.log" 2>&1 &
    local rp=$!
    sleep 0.3
    timeout $((SECS + 30)) wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$pport$ROOM_PATH" \
        >"$work/wrk-perf.txt" 2>&1 || true
    kill -INT "$rp" 2>/dev/null || true
    wait "$rp" 2>/dev/null || true
    stop "$pw"
    perf report -i "$work/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -n 15 >"$work/perf-dso.txt" || true
    perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' >"$work/perf-symbols-all.txt" || true
    head -n 50 "$work/perf-symbols-all.txt" >"$work/perf-symbols.txt"
    # User space only, as a share of the user-space samples.
    awk '$2 != "[kernel.kallsyms]" { sub(/%/, "", $1); v[NR] = $1; l[NR] = $2 " " $4; t += $1 }
        END { for (i in v) printf "%6.2f%% of user space (%5.2f%% of all)  %s\n", 100 * v[i] / t, v[i], l[i] }' \
        "$work/perf-symbols-all.txt" | sort -rn | head -n 40 >"$work/perf-user.txt" || true
    log "perf: $work/perf-dso.txt, $work/perf-symbols.txt, $work/perf-user.txt"
}

case "$mode" in
callgrind) run_callgrind ;;
strace) run_strace ;;
perf) run_perf ;;
all)
    run_strace
    run_perf
    run_callgrind
    ;;
*)
    echo "usage: bash bench/profile.sh [callgrind|strace|perf|all]" >&2
    exit 2
    ;;
esac
