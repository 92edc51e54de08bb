#!/usr/bin/env bash
# pod-router vs HAProxy vs nginx, side by side, on this machine (127.0.0.1 only).
#
#   bash bench/run.sh            the Socket.IO workload (~25 min): see below and bench/README.md
#   bash bench/run.sh --quick    the same, briefly (< 3 min), e.g. as a smoke test
#   bash bench/run.sh --static   the older static-response measurement described next
#   bash bench/run.sh --tunnels  only the idle-tunnel step of the workload (~1 min per column):
#                                BENCH_COLUMNS (pr1 pr1r pr2 pr2r), BENCH_TUNNEL_STEPS (5000,9000),
#                                BENCH_BIN (a router binary to measure instead of building one)
#
# The workload (bench/lib/workload.sh): two C bench pods (bench/pod), pod-router with the memory
# and the Redis store, HAProxy and nginx hashing on the room, 1 and 2 threads each, and the
# direct-to-pod ceiling, in A B A B rounds: Engine.IO handshakes with new sids, polling POSTs with
# known sids, room-key REST requests (wrk + bench/lib/wrk/*.lua), rooms of participants relaying
# WebSocket events (bench/loadgen), idle tunnels at 5k and 9k, a reconnect storm (a pod killed).
# Table of ratios to HAProxy on stdout and in test-output/bench/workload-table.txt, JSON in
# test-output/bench/workload.json, charts in bench/results/ (BENCH_RESULTS_DIR).
#
# --static:
# Builds the release router (build-bench/), starts one upstream of each kind (nginx serving a
# 3-byte static response; a silent Node WebSocket endpoint), then for each proxy (pod-router
# 1 thread, pod-router 2 threads, HAProxy 1 thread, nginx 1 worker) measures
#   - CPU time of the proxy process per proxied request under wrk (keep-alive both sides),
#     plus wrk's req/s and p99 latency;
#   - RSS growth per idle keep-alive client connection;
#   - RSS growth per idle WebSocket tunnel.
# Prints one table (absolute figures and ratios vs HAProxy / nginx) and writes
# test-output/bench/results.json. It is a benchmark: it never asserts, only reports.
# Every process it starts is bounded by `timeout` and stopped by the exit trap.
#
# Knobs (environment): BENCH_DURATION (wrk seconds, 10), BENCH_CONNECTIONS (wrk -c, 50),
# BENCH_TUNNELS (idle connections per memory test, 5000), BENCH_TUNNELS_FIRST (first step,
# 1000), BENCH_PORT_BASE (18500; uses base..base+31), BENCH_MAX_SECONDS (hard lifetime of
# every started process, 600).
set -euo pipefail

QUICK=0
STATIC=0
TUNNELS_ONLY=0
for arg in "$@"; do
    case "$arg" in
    --quick) QUICK=1 ;;
    --static) STATIC=1 ;;
    --tunnels) TUNNELS_ONLY=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d'
        exit 0
        ;;
    *) echo "bench/run.sh: unknown argument $arg (--quick, --static, --tunnels)" >&2; exit 2 ;;
    esac
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$repo/bench/lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=lib/workload.sh
. "$repo/bench/lib/workload.sh"
tsv="$out_dir/results.tsv"
[ "$QUICK" = 1 ] && { DURATION="${BENCH_DURATION:-1}"; TUNNELS="${BENCH_TUNNELS:-600}"; TUNNELS_FIRST="${BENCH_TUNNELS_FIRST:-300}"; }
preflight
trap cleanup EXIT
trap 'exit 130' INT TERM

record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$tsv"; }

# ---- measurements ---------------------------------------------------------------------------
to_ms() { # wrk duration (12.3us, 4.5ms, 1.2s, 2m) -> ms
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}

# wrk_run COL SUFFIX URL: CPU of $mpid per request, req/s, p99, errors.
wrk_run() {
    local col="$1" sfx="$2" url="$3" f="$work/wrk-$1-$2.txt"
    timeout 30 wrk -t1 -c"$CONNS" -d1s "$url" >/dev/null 2>&1 || true # warm-up
    local t0 t1
    t0="$(cpu_ticks "$mpid")"
    timeout $((DURATION + 30)) wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$url" >"$f" 2>&1 || true
    t1="$(cpu_ticks "$mpid")"
    local reqs rps p99 non2xx sockerr
    reqs="$(awk '/requests in/ {print $1}' "$f")"
    rps="$(awk '/^Requests\/sec:/ {print $2}' "$f")"
    p99="$(awk '$1 == "99%" {print $2}' "$f")"
    non2xx="$(awk '/Non-2xx/ {print $NF}' "$f")"
    sockerr="$(awk -F'[ ,]+' '/Socket errors/ {print $4 + $6 + $8 + $10}' "$f")"
    if [ -z "$reqs" ] || [ "$reqs" = 0 ]; then
        log "$col $sfx: wrk completed no request (see $f)"
        return 0
    fi
    local u0 s0 u1 s1 cpu_us
    read -r u0 s0 <<<"$t0"
    read -r u1 s1 <<<"$t1"
    us() { awk -v d="$1" -v hz="$clk_tck" -v n="$reqs" 'BEGIN {printf "%.3f", d / hz * 1e6 / n}'; }
    cpu_us="$(us $((u1 + s1 - u0 - s0)))"
    record "$col" "cpu_${sfx}_us" "$cpu_us"
    record "$col" "cpu_${sfx}_user_us" "$(us $((u1 - u0)))"
    record "$col" "cpu_${sfx}_sys_us" "$(us $((s1 - s0)))"
    record "$col" "rps_${sfx}" "$rps"
    record "$col" "p99_${sfx}_ms" "$(to_ms "$p99")"
    record "$col" "requests_${sfx}" "$reqs"
    record "$col" "cpu_ticks_${sfx}" "$((u1 + s1 - u0 - s0))"
    local prev=0
    [ "$sfx" = nokey ] && prev="$(awk -F'\t' -v c="$col" '$1 == c && $2 == "http_errors" {print $3}' "$tsv")"
    record "$col" "http_errors" "$((${prev:-0} + ${non2xx:-0} + ${sockerr:-0}))"
    log "$col $sfx: $rps req/s, p99 $p99, ${cpu_us} us cpu/request, errors ${non2xx:-0}+${sockerr:-0}"
}

# One response through the proxy, kept for the record (status line and routing header).
probe() { # COL URL
    local h
    h="$(curl -sS -m 5 -D - -o /dev/null "$2" 2>&1 | tr -d '\r' | grep -Ei '^(HTTP/|x-pod-router-pod)' | tr '\n' ' ' || true)"
    record "$1" "probe" "$h"
}

field() { sed -n "${2}p" "$1" | sed -n "s/.*\"$3\":\([0-9]*\).*/\1/p"; }

# mem_run COL MODE(ws|http) PATH PREFIX(ws|ka): RSS growth of $mpid per idle connection.
mem_run() {
    local col="$1" mode="$2" path="$3" pfx="$4" f="$work/client-$1-$4.log"
    local rss0 rss1 rss2 cw cpid
    rss0="$(rss_kib "$mpid")"
    start "client-$col-$pfx" node "$repo/bench/lib/conn-client.js" --port "$pport" --mode "$mode" \
        --path "$path" --steps "$TUNNELS_FIRST,$TUNNELS" --concurrency 200 --settle-ms 1000 \
        --lifetime "$MAX_SECONDS"
    cw="$wrapper"
    cpid="$pid" # its stdout (one JSON line per step) is $f
    for _ in $(seq 1 1200); do
        [ "$(grep -c step "$f" 2>/dev/null || true)" -ge 1 ] && break
        sleep 0.1
    done
    rss1="$(rss_kib "$mpid")"
    kill -USR1 "$cpid" 2>/dev/null || true
    for _ in $(seq 1 1200); do
        [ "$(grep -c step "$f" 2>/dev/null || true)" -ge 2 ] && break
        sleep 0.1
    done
    rss2="$(rss_kib "$mpid")"
    local fds alive1 alive2
    fds="$(nfds "$mpid")"
    alive1="$(field "$f" 1 alive)"
    alive2="$(field "$f" 2 alive)"
    stop "$cw"
    if [ -z "$alive2" ] || [ "${alive2:-0}" -le 0 ]; then
        log "$col $pfx: no connection established (see $f)"
        return 0
    fi
    record "$col" "${pfx}_alive" "$alive2"
    record "$col" "${pfx}_failed" "$(field "$f" 2 failed)"
    record "$col" "${pfx}_fds" "$fds"
    record "$col" "${pfx}_rss_kib" "$rss0 $rss1 $rss2"
    record "$col" "${pfx}_bytes" "$(((rss2 - rss0) * 1024 / alive2))"
    if [ "${alive1:-0}" -gt 0 ] && [ "$alive2" -gt "$alive1" ]; then
        record "$col" "${pfx}_marginal_bytes" "$(((rss2 - rss1) * 1024 / (alive2 - alive1)))"
    fi
    log "$col $pfx: $alive2 idle connections, RSS ${rss0} -> ${rss1} -> ${rss2} KiB, $fds fds"
}

# ---- run ------------------------------------------------------------------------------------
rm -rf "$work"
mkdir -p "$work" "$out_dir"

build_router
bench_bin="$(dirname "$(dirname "$bin")")/bench"
if [ -n "${BENCH_BIN:-}" ]; then
    bin="$BENCH_BIN"
    bin_source="$BENCH_BIN"
fi

if [ "$TUNNELS_ONLY" = 1 ]; then
    run_tunnels
    exit 0
fi
if [ "$STATIC" = 0 ]; then
    # The Socket.IO workload (issue 11); bench/lib/workload.sh.
    run_workload
    log "results: $out_dir/workload.json, charts in $RES_DIR (raw logs in $work)"
    exit 0
fi

: >"$tsv"

record meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
record meta commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
record meta binary "$bin_source"
record meta pod_router "$("$bin" --version 2>&1 | head -n1)"
record meta haproxy "$(haproxy -v 2>&1 | head -n1)"
record meta nginx "$(nginx -v 2>&1 | head -n1)"
record meta wrk "$(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')"
record meta node "$(node -v)"
record meta kernel "$(uname -sr)"
record meta nproc "$(nproc)"
record meta cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
record meta loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
record meta params "wrk -t1 -c$CONNS -d${DURATION}s; idle connections $TUNNELS_FIRST then $TUNNELS"

start_upstreams

timeout 30 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$UP_HTTP/" >/dev/null 2>&1 || true
timeout $((DURATION + 30)) wrk -t1 -c"$CONNS" -d"$(((DURATION + 1) / 2))s" "http://127.0.0.1:$UP_HTTP/" \
    >"$work/wrk-upstream.txt" 2>&1 || true
record meta upstream_rps "$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk-upstream.txt")"

for col in pr1 pr2 haproxy nginx; do
    log "== $col: cpu per request"
    start_proxy "$col" "$UP_HTTP" "$col-cpu"
    pw="$wrapper"
    record "$col" rss_start_kib "$(rss_kib "$mpid")"
    probe "$col" "http://127.0.0.1:$pport$ROOM_PATH"
    wrk_run "$col" room "http://127.0.0.1:$pport$ROOM_PATH"
    case "$col" in pr1 | pr2) wrk_run "$col" nokey "http://127.0.0.1:$pport/" ;; esac
    record "$col" rss_after_cpu_kib "$(rss_kib "$mpid")"
    stop "$pw"

    log "== $col: idle keep-alive connections"
    start_proxy "$col" "$UP_HTTP" "$col-ka"
    pw="$wrapper"
    mem_run "$col" http "$ROOM_PATH" ka
    stop "$pw"

    log "== $col: idle websocket tunnels"
    start_proxy "$col" "$UP_WS" "$col-ws"
    pw="$wrapper"
    mem_run "$col" ws "$WS_PATH" ws
    stop "$pw"
done

record meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
cleanup
node "$repo/bench/lib/report.js" "$tsv" "$out_dir/results.json" | tee "$out_dir/table.txt"
log "results: $out_dir/results.json (raw logs in $work)"
