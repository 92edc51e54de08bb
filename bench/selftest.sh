#!/usr/bin/env bash
# Smoke test of the benchmark tooling (scripts/test.sh runs it): the bench pod answers the
# Engine.IO requests it must, the load generator runs a few seconds of rooms against it and prints
# its table, `bench/run.sh --quick` completes and prints its tables for every column. No figure is
# asserted (the machine's speed is not under test); only that the tools work and report.
# Last line: "N passed, N failed".
# shellcheck disable=SC2016 # awk programs in single quotes
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo" || exit 1
out="$repo/test-output/bench-selftest"
rm -rf "$out"
mkdir -p "$out"
passed=0
failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
nok() { echo "FAIL $1"; failed=$((failed + 1)); [ -n "${2:-}" ] && [ -f "$2" ] && tail -n 20 "$2"; }
check() { # NAME LOG CMD...
    local name="$1" log="$2"
    shift 2
    if "$@"; then ok "$name"; else nok "$name" "$log"; fi
}

base="${BENCH_PORT_BASE:-18500}"
pod_port=$((base + 40))
build="$repo/build-bench"
pod_pid=""
cleanup() { [ -n "$pod_pid" ] && kill "$pod_pid" 2>/dev/null; wait 2>/dev/null; }
trap cleanup EXIT

# 1. build (the same directory bench/run.sh uses)
if { [ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release -Dtests=disabled >"$out/meson.log" 2>&1; } &&
    ninja -C "$build" >"$out/ninja.log" 2>&1; then
    ok "build bench-pod and bench-loadgen"
else
    nok "build bench-pod and bench-loadgen" "$out/ninja.log"
    echo "$passed passed, $failed failed"
    exit 1
fi
check "bench-loadgen was built (libwebsockets found)" "$out/meson.log" test -x "$build/bench/bench-loadgen"

# 2. the bench pod
timeout 120 "$build/bench/bench-pod" --listen "127.0.0.1:$pod_port" --name p0 >"$out/pod.log" 2>&1 &
pod_pid=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$pod_port") 2>/dev/null && break; sleep 0.05; done
u="http://127.0.0.1:$pod_port/socket.io/?EIO=4&transport=polling&roomId=room_st"
open="$(curl -sS -m 5 "$u" 2>"$out/curl.log")"
sid="$(printf '%s' "$open" | sed -n 's/^0{"sid":"\([^"]*\)".*/\1/p')"
check "pod: polling handshake answers an open packet with a sid" "$out/curl.log" test -n "$sid"
code="$(curl -sS -m 5 -o "$out/post.txt" -w '%{http_code}' -X POST --data-binary '40/experiment,' "$u&sid=$sid")"
check "pod: POST with the known sid -> 200 ok" "$out/post.txt" test "$code:$(cat "$out/post.txt")" = "200:ok"
get="$(curl -sS -m 5 "$u&sid=$sid")"
check "pod: GET with the sid returns the namespace connect" "$out/curl.log" test "$get" = "40/experiment,{\"sid\":\"$sid\"}"
code="$(curl -sS -m 5 -o "$out/unknown.txt" -w '%{http_code}' "$u&sid=nope")"
check "pod: unknown sid -> 400 Session ID unknown" "$out/unknown.txt" grep -q '"code":1' "$out/unknown.txt"
check "pod: unknown sid status" "$out/unknown.txt" test "$code" = 400

# 3. the load generator, a few seconds of rooms (polling + upgrade, then WebSocket-only)
lg="$build/bench/bench-loadgen"
timeout 60 "$lg" --target "127.0.0.1:$pod_port" --rooms 10 --per-room 5 --duration 3 --event-ms 500 \
    --watch-pid "$pod_pid" --tsv "$out/lg.tsv" --cdf "$out/lg-cdf.txt" >"$out/lg.out" 2>"$out/lg.err"
rc=$?
check "loadgen: rooms run exits 0 (everyone joined)" "$out/lg.err" test "$rc" = 0
check "loadgen: prints its table" "$out/lg.out" grep -q "fan-out latency p99.9 (ms)" "$out/lg.out"
check "loadgen: progress on stderr" "$out/lg.err" grep -q "^\[loadgen .*joined" "$out/lg.err"
check "loadgen: all 50 participants joined" "$out/lg.tsv" grep -qx $'joined\t50' "$out/lg.tsv"
check "loadgen: fan-out latencies were measured" "$out/lg.tsv" \
    awk -F'\t' '$1 == "fanout_count" && $2 > 0 {f = 1} END {exit !f}' "$out/lg.tsv"
check "loadgen: no errors, no split room" "$out/lg.tsv" \
    awk -F'\t' '$1 == "errors_total" && $2 == 0 {e = 1} $1 == "split_rooms" && $2 == 0 {s = 1} END {exit !(e && s)}' "$out/lg.tsv"
check "loadgen: reports its own and the watched CPU" "$out/lg.tsv" \
    awk -F'\t' '$1 == "loadgen_cpu_s" {a = 1} $1 == "watched_cpu_us_per_frame" {b = 1} END {exit !(a && b)}' "$out/lg.tsv"
check "loadgen: latency CDF written" "$out/lg-cdf.txt" test -s "$out/lg-cdf.txt"
timeout 60 "$lg" --target "127.0.0.1:$pod_port" --ws-only --rooms 4 --per-room 5 --duration 1 --quiet \
    --tsv "$out/lg-ws.tsv" >"$out/lg-ws.out" 2>"$out/lg-ws.err"
check "loadgen: WebSocket-only clients join" "$out/lg-ws.err" grep -qx $'joined\t20' "$out/lg-ws.tsv"
timeout 60 "$lg" --target "127.0.0.1:$pod_port" --mode sids --rooms 30 --per-room 1 --sids-out "$out/sids.txt" \
    --quiet >"$out/sids.out" 2>&1
check "loadgen: sids mode writes one line per handshake" "$out/sids.out" test "$(wc -l <"$out/sids.txt")" = 30
# a reconnect storm: the pod restarts under the participants
timeout 60 "$lg" --target "127.0.0.1:$pod_port" --rooms 5 --per-room 4 --duration 6 --reconnect-ms 200 --quiet \
    --tsv "$out/storm.tsv" >"$out/storm.out" 2>"$out/storm.err" &
lgp=$!
for _ in $(seq 1 100); do grep -q "participants joined" "$out/storm.err" 2>/dev/null && break; sleep 0.1; done
kill "$pod_pid" 2>/dev/null
wait "$pod_pid" 2>/dev/null
timeout 120 "$build/bench/bench-pod" --listen "127.0.0.1:$pod_port" --name p1 >"$out/pod2.log" 2>&1 &
pod_pid=$!
wait "$lgp"
check "loadgen: reconnect storm timed after a pod restart" "$out/storm.err" \
    awk -F'\t' '$1 == "storms" && $2 + 0 >= 1 {f = 1} END {exit !f}' "$out/storm.tsv"

# 4. bench/run.sh --quick: every column reports
BENCH_RESULTS_DIR="$out/results" bash bench/run.sh --quick >"$out/run.out" 2>"$out/run.err"
rc=$?
check "bench/run.sh --quick exits 0" "$out/run.err" test "$rc" = 0
check "bench/run.sh --quick prints both tables" "$out/run.out" \
    grep -q "2 threads / 2 workers" "$out/run.out"
for col in direct pr1 pr1r hap1 ngx1 pr2 pr2r hap2 ngx2; do
    check "bench/run.sh --quick: $col measured (handshakes, polling, rooms, websocket)" "$out/run.err" \
        node -e '
const r = require(process.argv[1]).results[process.argv[2]] || {};
const need = ["hs_rps", "poll_rps", "room_rps", "ws_frames_per_s"];
process.exit(need.every((k) => typeof r[k] === "number" && r[k] > 0) ? 0 : 1);' "$out/results/results.json" "$col"
done
check "bench/run.sh --quick: idle tunnels measured for the proxies" "$out/run.err" \
    node -e '
const r = require(process.argv[1]).results;
process.exit(["pr1", "hap1", "ngx1"].every((c) => Object.keys(r[c] || {}).some((k) => /^tun_\d+_bytes$/.test(k))) ? 0 : 1);' \
    "$out/results/results.json"
if command -v gnuplot >/dev/null; then
    check "bench/run.sh --quick: charts drawn" "$out/run.out" test -s "$out/results/cpu-per-request.svg"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
