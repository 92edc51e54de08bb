#!/bin/bash
# Pod connections under a long steady load: Engine.IO handshakes with new sids (wrk -t1 -c64,
# bench/lib/wrk/handshake.lua) through pod-router (1 thread) to two C bench pods for SECS
# seconds (24); every 2 s the connections both pods accepted and closed so far. Shows whether
# the router's pools close and reopen connections while the load swings between the pods
# (docs/internals.md, *Pod connection pools*), beyond the 3-s window of bench/run.sh.
#
#   bash bench/pool-steady.sh            memory store
#   STORE=redis bash bench/pool-steady.sh
#
# Needs wrk, curl, build/bench/bench-pod (POD_BIN), redis-server for STORE=redis. Everything
# listens on 127.0.0.1 and is stopped by PID when the script ends.
set -u
repo="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${BIN:-$repo/build/src/pod-router}"
POD_BIN="${POD_BIN:-$repo/build/bench/bench-pod}"
SECS="${SECS:-24}"
STORE="${STORE:-memory}"
BASE="${POOL_PORT_BASE:-18980}"
P0=$BASE P1=$((BASE + 1)) RP=$((BASE + 2)) RA=$((BASE + 3)) REDIS_PORT=$((BASE + 4))
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for t in wrk curl "$BIN" "$POD_BIN"; do
    command -v "$t" >/dev/null || { echo "pool-steady: $t missing" >&2; exit 1; }
done
wait_port() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "pool-steady: nothing listens on port $1" >&2
    return 1
}
conns() { # "accepted closed" of both pods (their stats requests are not counted as closed)
    local a=0 c=0 p j
    for p in "$P0" "$P1"; do
        j="$(curl -sS -m 2 "http://127.0.0.1:$p/__bench/stats")"
        a=$((a + $(printf '%s' "$j" | sed -n 's/.*"accepted":\([0-9]*\).*/\1/p')))
        c=$((c + $(printf '%s' "$j" | sed -n 's/.*"closed":\([0-9]*\).*/\1/p')))
    done
    echo "$a $c"
}
for i in 0 1; do
    timeout $((SECS + 60)) "$POD_BIN" --listen "127.0.0.1:$((P0 + i))" --name "p$i" \
        --session-timeout 60000 >/dev/null 2>&1 &
    pids+=($!)
    wait_port $((P0 + i)) || exit 1
done
sargs=()
if [ "$STORE" = redis ]; then
    timeout $((SECS + 60)) redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
        --appendonly no >/dev/null 2>&1 &
    pids+=($!)
    wait_port "$REDIS_PORT" || exit 1
    sargs=(--store "redis://127.0.0.1:$REDIS_PORT")
fi
timeout $((SECS + 60)) "$BIN" serve --listen "127.0.0.1:$RP" --admin-listen "127.0.0.1:$RA" \
    --threads 1 --access-log false --log-level warn --pod-ttl 1h --key-rate 0 "${sargs[@]}" \
    >/dev/null 2>&1 &
pids+=($!)
wait_port "$RA" || exit 1
for i in 0 1; do
    curl -fsS -m 2 -o /dev/null -X PUT -H 'content-type: application/json' \
        -d "{\"address\":\"127.0.0.1:$((P0 + i))\"}" "http://127.0.0.1:$RA/v1/pods/p$i" || exit 1
done
wait_port "$RP" || exit 1
timeout $((SECS + 30)) wrk -t1 -c64 -d"${SECS}s" -s "$repo/bench/lib/wrk/handshake.lua" \
    "http://127.0.0.1:$RP/" >/tmp/pool-steady-wrk.$$ 2>&1 &
wrk_pid=$!
pids+=("$wrk_pid")
start=$(date +%s%N)
read -r a0 c0 <<<"$(conns)"
n=0
echo "store $STORE, wrk -t1 -c64 -d${SECS}s handshakes; pod connections since wrk started:"
echo "   t(s)  opened  closed"
for _ in $(seq 2 2 $((SECS - 1))); do
    sleep 2
    read -r a c <<<"$(conns)"
    n=$((n + 1))
    printf '%7.1f %7d %7d\n' "$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN {print (b - a) / 1e9}')" \
        $((a - a0 - 2 * n)) $((c - c0))
done
wait "$wrk_pid"
awk '/Requests\/sec/ {print "requests/s " $2}' /tmp/pool-steady-wrk.$$
rm -f /tmp/pool-steady-wrk.$$
