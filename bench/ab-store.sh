#!/bin/bash
# A B A B: Engine.IO handshakes (a new sid and a new participant per request, 1,000 rooms)
# through pod-router with the memory store and with the Redis store, same binary, same bench pod.
#
#   bash bench/ab-store.sh [ab|strace|callgrind|perf]     (default: ab)
#
# ab         ROUNDS (3) rounds of every column: wrk -t1 -c64 -dSECS (5) after a 1 s warm-up, fresh
#            router (1 thread) per run; per run: handshakes/s, router CPU µs per handshake
#            (utime+stime from /proc; its user part in brackets), redis-server CPU µs per
#            handshake, Redis commands per handshake (INFO commandstats after CONFIG
#            RESETSTAT; calls made inside scripts count too), p99.
# strace     strace -c -f on the router for STRACE_SECS (3) of the same load: syscalls per
#            handshake, memory vs Redis.
# callgrind  the router under valgrind --tool=callgrind (instrumentation on for the measured run
#            only, wrk -c10): user-space instructions per handshake, memory vs Redis. Needs a
#            build with symbols for the top-functions list (CG_BIN, default NEW_BIN).
# perf       perf record (cpu-clock, kernel and user) on the router for PERF_SECS (4) of the same
#            load: the shares of kernel, router, libuv, hiredis, libc and the top symbols.
# WORKLOAD: hs (default: handshakes, a new sid each), poll (polling POSTs on 1,000 sessions made
# through the router by bench-loadgen --mode sids before each run: known sids), room (room-key
# REST requests over 1,000 rooms: known rooms after the warm-up). Figures are per request.
# QUOTA_PCT: the router runs in a cgroup-v1 CPU quota of that much of one CPU (root, the cpu
# controller at /sys/fs/cgroup/cpu), the same in both columns. Then the router's CPU bounds the
# throughput in both, and redis-server, wrk and the pod have the rest of the two cores: the
# shape of a cluster, where Redis has a node of its own (otherwise redis-server's CPU per
# handshake is taken from the same two cores and lowers the Redis store's throughput).
# Columns: mem and redis with NEW_BIN (default build/src/pod-router); with OLD_BIN set also
# mem-old and redis-old (OLD_BIN's columns first in every round); COLS picks a subset.
# Needs: redis-server, redis-cli, wrk, curl, build/bench/bench-pod (POD_BIN); valgrind for
# callgrind, strace for strace. Everything listens on 127.0.0.1; every process is stopped by PID.
set -u
repo="$(cd "$(dirname "$0")/.." && pwd)"
NEW_BIN="${NEW_BIN:-$repo/build/src/pod-router}"
OLD_BIN="${OLD_BIN:-}"
POD_BIN="${POD_BIN:-$repo/build/bench/bench-pod}"
ROUNDS="${ROUNDS:-3}"
SECS="${SECS:-5}"
CONNS="${CONNS:-64}"
BASE="${AB_PORT_BASE:-18960}"
mode="${1:-ab}"
POD_PORT=$BASE R_PORT=$((BASE + 1)) R_ADMIN=$((BASE + 2)) REDIS_PORT=$((BASE + 3))
for p in "$POD_PORT" "$R_PORT" "$R_ADMIN" "$REDIS_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "ab-store: port $p on 127.0.0.1 is in use; set AB_PORT_BASE" >&2
        exit 1
    fi
done
for b in "$NEW_BIN" "$POD_BIN" ${OLD_BIN:+"$OLD_BIN"}; do
    [ -x "$b" ] || { echo "ab-store: $b missing (bash scripts/build.sh build)" >&2; exit 1; }
done
for cmd in redis-server redis-cli wrk curl; do
    command -v "$cmd" >/dev/null || { echo "ab-store: $cmd missing" >&2; exit 1; }
done
work="$(mktemp -d)"
pids=()
QUOTA_PCT="${QUOTA_PCT:-}"
CG=""
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    [ -n "$CG" ] && [ -d "$CG" ] && rmdir "$CG" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work" || exit 1

wait_port() {
    for _ in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "ab-store: nothing listens on port $1 (30 s)" >&2
    return 1
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
user_ticks() { awk '{print $14}' "/proc/$1/stat"; }
per_hs() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN{ if (n > 0) printf "%.1f", (b-a)*1e6/'"$(getconf CLK_TCK)"'/n; else print "nan" }'; }

timeout 3600 "$POD_BIN" --listen "127.0.0.1:$POD_PORT" --name p0 --session-timeout 60000 \
    >pod.log 2>&1 &
pids+=($!)
timeout 3600 redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$work" --protected-mode yes >redis.log 2>&1 &
pids+=($!)
wait_port "$POD_PORT" && wait_port "$REDIS_PORT" || exit 1
redis_pid=$(pgrep -P "$!" | head -1)
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

# start_router BIN STORE [WRAP...]: sets $rp (the router's PID, or valgrind's)
start_router() {
    local b="$1" store="$2"
    shift 2
    local sargs=()
    [ "$store" = redis ] && sargs=(--store "redis://127.0.0.1:$REDIS_PORT")
    timeout 900 "$@" "$b" serve --listen "127.0.0.1:$R_PORT" --admin-listen "127.0.0.1:$R_ADMIN" \
        --threads 1 --access-log false --log-level error --pod-ttl 1h --key-rate 0 \
        "${sargs[@]}" >router.log 2>&1 &
    rw=$!
    pids+=("$rw")
    wait_port "$R_ADMIN" || return 1
    rp=$(pgrep -P "$rw" | head -1) # the router under its `timeout` wrapper
    [ -n "$rp" ] || return 1
    if [ -n "$CG" ]; then
        local t
        for t in /proc/"$rp"/task/*; do echo "${t##*/}" >"$CG/tasks"; done
    fi
    curl -fsS -m 5 -o /dev/null -X PUT -H 'content-type: application/json' \
        -d "{\"address\":\"127.0.0.1:$POD_PORT\"}" "http://127.0.0.1:$R_ADMIN/v1/pods/p0" || return 1
    wait_port "$R_PORT"
}
stop_router() {
    kill "$rp" 2>/dev/null
    wait "$rw" 2>/dev/null
}
# Redis calls per handshake from INFO commandstats, those made inside scripts included:
# "total (set=… evalsha=… …)".
redis_cmds() {
    rcli info commandstats | tr -d '\r' | awk -F'[:=,]' -v n="$1" '
        /^cmdstat_/ { c = substr($1, 9); if (c ~ /^(info|config)/) next
                      calls[c] = $3; tot += $3 }
        END { if (n <= 0) { print "nan"; exit }
              s = ""
              for (c in calls) if (calls[c] / n >= 0.01) s = s sprintf("%s%s=%.2f", s == "" ? "" : ",", c, calls[c] / n)
              printf "%.2f(%s)", tot / n, s }'
}

if [ -n "$QUOTA_PCT" ]; then
    [ -w /sys/fs/cgroup/cpu ] || { echo "ab-store: QUOTA_PCT needs root and /sys/fs/cgroup/cpu" >&2; exit 1; }
    CG=/sys/fs/cgroup/cpu/podrouter-ab-store-$$
    mkdir "$CG" || exit 1
    echo 10000 >"$CG/cpu.cfs_period_us" # 10-ms slices, not 100-ms stalls
    echo $((10000 * QUOTA_PCT / 100)) >"$CG/cpu.cfs_quota_us"
fi

cols=(mem redis)
[ -n "$OLD_BIN" ] && cols=(mem-old redis-old mem redis)
[ -n "${COLS:-}" ] && read -ra cols <<<"$COLS" # a subset, e.g. COLS="redis-old redis"
col_bin() { case "$1" in *-old) echo "$OLD_BIN" ;; *) echo "$NEW_BIN" ;; esac; }
col_store() { echo "${1%-old}"; }
url="http://127.0.0.1:$R_PORT/"
WORKLOAD="${WORKLOAD:-hs}"
LOADGEN="${LOADGEN:-$repo/build/bench/bench-loadgen}"
wl_args=() # the wrk script and its arguments for WORKLOAD
case "$WORKLOAD" in
hs) wl_args=(-s "$repo/bench/lib/wrk/handshake.lua") ;;
room) wl_args=(-s "$repo/bench/lib/wrk/room.lua") ;;
poll) [ -x "$LOADGEN" ] || { echo "ab-store: $LOADGEN missing" >&2; exit 1; } ;;
*) echo "ab-store: WORKLOAD is hs, poll or room" >&2; exit 2 ;;
esac
# The sessions of a poll run, made through the router just started (its store learns them).
make_sids() {
    [ "$WORKLOAD" = poll ] || return 0
    timeout 120 "$LOADGEN" --target "127.0.0.1:$R_PORT" --mode sids --rooms 1000 --per-room 1 \
        --room-prefix room_pl --sids-out "$work/sids.txt" --quiet --concurrency 64 \
        --ramp-timeout 60 >"$work/sids.out" 2>&1
    if [ ! -s "$work/sids.txt" ]; then
        echo "ab-store: no sessions for the polling run (see $work/sids.out)" >&2
        return 1
    fi
    wl_args=(-s "$repo/bench/lib/wrk/poll.lua" "$url" -- "$work/sids.txt")
}
# wrk_wl TIMEOUT [WRK OPTIONS...]: wrk against the workload, stopped after TIMEOUT seconds.
wrk_wl() {
    local t="$1"
    shift
    if [ "$WORKLOAD" = poll ]; then
        timeout "$t" wrk "$@" "${wl_args[@]}"
    else
        timeout "$t" wrk "$@" "${wl_args[@]}" "$url"
    fi
}

run_ab() {
    local round col
    for round in $(seq 1 "$ROUNDS"); do
        for col in "${cols[@]}"; do
            rcli flushall >/dev/null
            start_router "$(col_bin "$col")" "$(col_store "$col")" || exit 1
            make_sids || exit 1
            wrk_wl 60 -t1 -c"$CONNS" -d1s >/dev/null 2>&1
            rcli config resetstat >/dev/null
            local t0 r0 t1 r1 u0 u1 out n p99 errs
            t0=$(cpu_ticks "$rp") r0=$(cpu_ticks "$redis_pid") u0=$(user_ticks "$rp")
            out=$(wrk_wl $((SECS + 60)) -t1 -c"$CONNS" -d"${SECS}s" --latency)
            t1=$(cpu_ticks "$rp") r1=$(cpu_ticks "$redis_pid") u1=$(user_ticks "$rp")
            n=$(echo "$out" | awk '/requests in/ {print $1}')
            p99=$(echo "$out" | awk '$1=="99%" {print $2}')
            errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {printf "%s ", $0}')
            printf '%s %-9s %s/s=%s router_us=%s (user %s) redis_us=%s cmds=%s p99=%s%s\n' \
                "$round" "$col" "$WORKLOAD" "$(awk -v n="$n" -v s="$SECS" 'BEGIN{printf "%.0f", n/s}')" \
                "$(per_hs "$t0" "$t1" "$n")" "$(per_hs "$u0" "$u1" "$n")" "$(per_hs "$r0" "$r1" "$n")" \
                "$(redis_cmds "$n")" "$p99" "${errs:+ errors: $errs}"
            stop_router
        done
    done
}

# traced_run COL SECS TRACER...: a fresh router of column COL, warmed up, with TRACER (its
# arguments, then "-p PID") running in the background over SECS seconds of load; sets $n (the
# requests measured). The router is stopped after.
traced_run() {
    local col="$1" secs="$2"
    shift 2
    rcli flushall >/dev/null
    start_router "$(col_bin "$col")" "$(col_store "$col")" || exit 1
    make_sids || exit 1
    wrk_wl 60 -t1 -c"$CONNS" -d1s >/dev/null 2>&1
    timeout $((secs + 30)) "$@" -p "$rp" >/dev/null 2>&1 &
    local sp=$!
    sleep 0.5
    n=$(wrk_wl $((secs + 60)) -t1 -c"$CONNS" -d"${secs}s" | awk '/requests in/ {print $1}')
    kill -INT "$sp" 2>/dev/null
    wait "$sp" 2>/dev/null
    stop_router
}

run_strace() {
    command -v strace >/dev/null || { echo "ab-store: strace missing" >&2; exit 1; }
    local col secs="${STRACE_SECS:-3}" n
    for col in "${cols[@]}"; do
        traced_run "$col" "$secs" strace -c -f -o "strace-$col.txt"
        echo "== $col: syscalls per handshake ($n handshakes)"
        awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF >= 5 {
            calls = $4; err = (NF == 6) ? $5 : 0; name = $NF
            if (calls / n >= 0.01 || name == "total")
                printf "  %-14s %6.2f%s\n", name, calls / n, err ? sprintf("  (%.2f failed)", err / n) : "" }' \
            "strace-$col.txt"
    done
}

run_perf() {
    command -v perf >/dev/null || { echo "ab-store: perf missing" >&2; exit 1; }
    local col secs="${PERF_SECS:-4}" n
    for col in "${cols[@]}"; do
        traced_run "$col" "$secs" perf record -q -e cpu-clock -F 4999 -o "perf-$col.data"
        # samples at 4999 Hz over the whole capture (0.5 s before wrk, a little after): the
        # shares are what counts, the µs per request are approximate
        local total
        total=$(perf report -i "perf-$col.data" --stdio --sort dso 2>/dev/null |
            awk '/^# Samples:/ {print $3; exit}')
        echo "== $col: $n requests, $total samples: shares by object, then the top symbols"
        perf report -i "perf-$col.data" --stdio --sort dso 2>/dev/null |
            awk '$1 ~ /%$/ && $1+0 >= 1 {printf "  %7s %s\n", $1, $2}'
        perf report -i "perf-$col.data" --stdio --sort dso,sym 2>/dev/null |
            awk -v k="${PERF_TOP:-25}" '$1 ~ /%$/ && n < k {printf "  %7s %-22s %s\n", $1, $2, $NF; n++}'
        [ -n "${PERF_KEEP:-}" ] && cp "perf-$col.data" "$PERF_KEEP-$col.data"
    done
}

run_callgrind() {
    command -v valgrind >/dev/null || { echo "ab-store: valgrind missing" >&2; exit 1; }
    local col b="${CG_BIN:-$NEW_BIN}" secs="${CG_SECS:-4}"
    for col in mem redis; do
        rcli flushall >/dev/null
        start_router "$b" "$col" valgrind --tool=callgrind --callgrind-out-file="$work/cg-$col.out" \
            --instr-atstart=no || exit 1
        make_sids || exit 1
        wrk_wl 60 -t1 -c10 -d2s >/dev/null 2>&1
        callgrind_control -i on "$rp" >/dev/null
        local n
        n=$(wrk_wl $((secs + 60)) -t1 -c10 -d"${secs}s" |
            awk '/requests in/ {print $1}')
        callgrind_control -i off "$rp" >/dev/null
        stop_router
        local ir
        ir=$(callgrind_annotate "$work/cg-$col.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
        echo "== $col: $(awk -v i="$ir" -v n="$n" 'BEGIN{printf "%.0f", i/n}') instructions per handshake ($n handshakes)"
        callgrind_annotate --inclusive=no "$work/cg-$col.out" 2>/dev/null |
            awk -v n="$n" '/file:function/ {on=1; next}
                on && NF >= 3 && $1 ~ /^[0-9,]+$/ && k < 15 {
                    v = $1; gsub(",", "", v); f = ($NF ~ /^\[/) ? $(NF-1) : $NF
                    sub(/.*\//, "", f); printf "  %8.0f %s\n", v / n, f; k++ }'
        [ -n "${CG_KEEP:-}" ] && cp "$work/cg-$col.out" "$CG_KEEP-$col.out"
    done
}

case "$mode" in
ab) run_ab ;;
strace) run_strace ;;
callgrind) run_callgrind ;;
perf) run_perf ;;
*) echo "usage: bench/ab-store.sh [ab|strace|callgrind|perf]" >&2; exit 2 ;;
esac
