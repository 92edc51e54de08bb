#!/bin/bash
# Does a second worker thread double pod-router's throughput? (issue 11: "--threads 2 >= 1.7x one
# thread when the load generator and pods have spare CPU").
#
# On a 2-vCPU machine the load generator and the pods need CPU too, so an unconstrained run
# always ends with the whole machine busy and says nothing about the router. Here the router
# runs in a cgroup-v1 CPU quota instead: Q (default 25 %) of one CPU per router thread, so with
# 1 thread it gets Q and with 2 threads 2Q, and wrk plus the pod keep 200 % - 2Q. If the threads
# do not contend (locks, shared counters, accept imbalance) throughput doubles with the quota.
# The control column "1 thread, 2Q" shows what one thread does with the same CPU as two:
# when it is close to "2 threads, 2Q", the second thread costs nothing; the ratio
# 2 threads / 1 thread is the scaling factor the issue asks for.
#
#   bash bench/threads.sh            # room-key requests and handshakes, 2 rounds A B C A B C
#   QUOTA_PCT=20 ROUNDS=3 DUR=5 bash bench/threads.sh
#
# Needs root (cgroup v1 `cpu` controller at /sys/fs/cgroup/cpu), wrk, and the release build in
# build-bench/ (built here if missing). Everything listens on 127.0.0.1 and stops by itself.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
QUOTA_PCT="${QUOTA_PCT:-25}"
ROUNDS="${ROUNDS:-2}"
DUR="${DUR:-5}"
BASE="${BENCH_PORT_BASE:-18980}"
POD_PORT=$BASE PR_PORT=$((BASE + 1)) PR_ADMIN=$((BASE + 2))
CG=/sys/fs/cgroup/cpu/podrouter-bench-$$
PERIOD_US=10000 # a short period: the quota throttles in 10 ms slices, not 100 ms stalls

log() { printf '[threads %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[ -w /sys/fs/cgroup/cpu ] || {
    echo "bench/threads.sh: needs root and the cgroup-v1 cpu controller (/sys/fs/cgroup/cpu)" >&2
    exit 1
}
command -v wrk >/dev/null || { echo "bench/threads.sh: wrk is missing (apt-get install -y wrk)" >&2; exit 1; }
if [ ! -x build-bench/src/pod-router ] || [ ! -x build-bench/bench/bench-pod ]; then
    log "building build-bench/ (release)"
    [ -f build-bench/build.ninja ] || meson setup build-bench --buildtype=release -Dtests=disabled >/dev/null
    ninja -C build-bench >/dev/null
fi
work="$(mktemp -d)"
pod=""
router=""
cleanup() {
    [ -n "$router" ] && kill "$router" 2>/dev/null && wait "$router" 2>/dev/null
    [ -n "$pod" ] && kill "$pod" 2>/dev/null && wait "$pod" 2>/dev/null
    [ -d "$CG" ] && rmdir "$CG" 2>/dev/null
    rm -rf "$work"
    return 0
}
trap cleanup EXIT
mkdir "$CG"
echo "$PERIOD_US" >"$CG/cpu.cfs_period_us"

timeout 900 build-bench/bench/bench-pod --listen "127.0.0.1:$POD_PORT" --name backend-0 \
    --session-timeout 60000 >"$work/pod.log" 2>&1 &
pod=$!

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_admin() {
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "http://127.0.0.1:$PR_ADMIN/v1/cluster" && return 0
        sleep 0.05
    done
    log "router did not start: $(cat "$work/router.log")"
    return 1
}

# run THREADS QUOTA_PCT SCRIPT -> "req/s cpu_us_per_req p99"
run() {
    local threads="$1" quota="$2" script="$3"
    echo $((PERIOD_US * quota / 100)) >"$CG/cpu.cfs_quota_us"
    timeout 300 "$repo/build-bench/src/pod-router" --listen "127.0.0.1:$PR_PORT" \
        --admin-listen "127.0.0.1:$PR_ADMIN" --threads "$threads" --access-log false \
        --log-level error >"$work/router.log" 2>&1 &
    router=$!
    wait_admin
    # timeout is the parent of the router: move the router's threads into the cgroup
    local rp
    rp="$(pgrep -P "$router" | head -n1)"
    for t in /proc/"$rp"/task/*; do echo "${t##*/}" >"$CG/tasks"; done
    curl -s -o /dev/null -XPUT -H 'content-type: application/json' \
        -d "{\"address\":\"127.0.0.1:$POD_PORT\"}" "http://127.0.0.1:$PR_ADMIN/v1/pods/backend-0"
    wrk -t1 -c64 -d2s -s "$script" "http://127.0.0.1:$PR_PORT/" >/dev/null 2>&1 || true
    local t0 t1 out
    t0="$(ticks "$rp")"
    out="$(wrk -t2 -c64 -d"${DUR}s" --latency -s "$script" "http://127.0.0.1:$PR_PORT/")"
    t1="$(ticks "$rp")"
    kill "$router"
    wait "$router" 2>/dev/null || true
    router=""
    local reqs rps p99
    reqs="$(echo "$out" | awk '/requests in/ {print $1}')"
    rps="$(echo "$out" | awk '/^Requests\/sec:/ {printf "%.0f", $2}')"
    p99="$(echo "$out" | awk '$1 == "99%" {print $2}')"
    echo "$rps $(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" \
        'BEGIN {printf "%.1f", d / hz * 1e6 / n}') $p99"
}

q1="$QUOTA_PCT"
q2=$((2 * QUOTA_PCT))
declare -A res
for r in $(seq 1 "$ROUNDS"); do
    for test in room handshake; do
        script="$repo/bench/lib/wrk/$test.lua"
        for cfg in "1 $q1" "2 $q2" "1 $q2"; do
            read -r th q <<<"$cfg"
            v="$(run "$th" "$q" "$script")"
            log "round $r $test: $th thread(s), quota $q % -> $v (req/s cpu_us p99)"
            res["$test,$th,$q"]+="${v%% *} "
        done
    done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo
echo "pod-router thread scaling under a CPU quota of $q1 % per thread ($(nproc) vCPUs, load $(cut -d' ' -f1-3 /proc/loadavg)); median req/s of $ROUNDS rounds"
echo
echo "| workload | 1 thread, $q1 % | 2 threads, $q2 % | 1 thread, $q2 % (control) | 2 threads / 1 thread |"
echo "|---|---|---|---|---|"
for test in room handshake; do
    a="$(echo "${res["$test,1,$q1"]}" | median)"
    b="$(echo "${res["$test,2,$q2"]}" | median)"
    c="$(echo "${res["$test,1,$q2"]}" | median)"
    echo "| $test | $a | $b | $c | $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b / a}') |"
done
