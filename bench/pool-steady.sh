#!/usr/bin/env bash
# Pod connections under a long steady load: Engine.IO handshakes with new sids (wrk -t1 -c64,
# bench/lib/wrk/handshake.lua) through pod-router (1 thread) to the workload's two C bench pods
# for SECS seconds (24); every 2 s the connections both pods accepted and closed since wrk
# started. Shows whether the router's pools close and reopen connections while the load swings
# between the pods (docs/internals.md, *Pod connection pools*), beyond the 3-s window of
# bench/run.sh.
#
#   bash bench/pool-steady.sh            memory store (column pr1)
#   STORE=redis bash bench/pool-steady.sh   Redis store (pr1r)
#
# Uses the workload's processes (bench/lib/workload.sh: pods, Redis, the router's flags) and
# the release build in build-bench/ (built if needed). Everything listens on 127.0.0.1 and is
# stopped by PID when the script ends.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
QUICK=0
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$repo/bench/lib/common.sh"
work="$out_dir/pool-steady-work"
# shellcheck source-path=SCRIPTDIR source=lib/workload.sh
. "$repo/bench/lib/workload.sh"
SECS="${SECS:-24}"
col=pr1
[ "${STORE:-memory}" = redis ] && col=pr1r

preflight
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$work"
mkdir -p "$work"
build_router
bench_bin="$(dirname "$(dirname "$bin")")/bench"
round=1
wl_start_pods
[ "$col" = pr1r ] && wl_start_redis
wl_start_proxy "$col" http || { echo "pool-steady: the router did not start" >&2; exit 1; }
timeout $((SECS + 30)) wrk -t1 -c"$WL_CONNS" -d"${SECS}s" -s "$repo/bench/lib/wrk/handshake.lua" \
    "http://127.0.0.1:$pport/" >"$work/wrk.txt" 2>&1 &
wrk_pid=$!
start_ns=$(date +%s%N)
read -r a0 c0 <<<"$(pod_conns)"
n=0
echo "store ${STORE:-memory}, wrk -t1 -c$WL_CONNS -d${SECS}s handshakes; pod connections since wrk started:"
echo "   t(s)  opened  closed"
for _ in $(seq 2 2 $((SECS - 1))); do
    sleep 2
    read -r a c <<<"$(pod_conns)"
    n=$((n + 1)) # every pod_conns call is one accepted connection per pod
    printf '%7.1f %7d %7d\n' "$(awk -v a="$start_ns" -v b="$(date +%s%N)" 'BEGIN {print (b - a) / 1e9}')" \
        $((a - a0 - 2 * n)) $((c - c0))
done
wait "$wrk_pid" || true
awk '/Requests\/sec/ {print "requests/s " $2}' "$work/wrk.txt"
