#!/usr/bin/env bash
# Live demo: pod-router (memory store) on 127.0.0.1:3001 (public) and
# 127.0.0.1:3002 (admin) in front of three example Socket.IO pods on
# 127.0.0.1:4000-4002. Builds nothing: uses $POD_ROUTER_BIN or
# build/src/pod-router. Runs in the foreground until Ctrl-C or SIGTERM, then
# stops everything it started.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${POD_ROUTER_BIN:-$repo/build/src/pod-router}"
backend="$repo/examples/backend"
public=127.0.0.1:3001
admin=127.0.0.1:3002
logs="$(mktemp -d "${TMPDIR:-/tmp}/pod-router-demo.XXXXXX")"
pids=()

if [ ! -x "$bin" ]; then
    echo "demo: no router binary at $bin; build it first (meson setup build && ninja -C build) or set POD_ROUTER_BIN" >&2
    exit 1
fi
if ! command -v node >/dev/null 2>&1; then
    echo "demo: node is needed for the example pods" >&2
    exit 1
fi
if [ ! -d "$backend/node_modules" ]; then
    echo "demo: installing the example pod's npm packages (npm ci)"
    (cd "$backend" && npm ci --no-audit --no-fund --loglevel=error)
fi

stop_all() {
    trap - EXIT INT TERM
    if [ "${#pids[@]}" -gt 0 ]; then
        echo
        echo "demo: stopping ${#pids[@]} processes"
        for pid in "${pids[@]}"; do
            kill -TERM "$pid" 2>/dev/null || true
        done
        for _ in $(seq 1 50); do
            local alive=0
            for pid in "${pids[@]}"; do
                if kill -0 "$pid" 2>/dev/null; then alive=1; fi
            done
            [ "$alive" -eq 0 ] && break
            sleep 0.1
        done
        for pid in "${pids[@]}"; do
            kill -KILL "$pid" 2>/dev/null || true
        done
    fi
    echo "demo: logs kept in $logs"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits up to 10 s for an HTTP 200 from $1.
wait_http() {
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "demo: $1 did not answer; see $logs" >&2
    return 1
}

"$bin" serve --listen "$public" --admin-listen "$admin" --store memory \
    --pod-ttl 5s --log-format text >"$logs/router.log" 2>&1 &
pids+=("$!")
wait_http "http://$admin/healthz"

for i in 0 1 2; do
    PORT=$((4000 + i)) HOST=127.0.0.1 POD_NAME="backend-$i" \
        ROUTER_ADMIN_URL="http://$admin" HEARTBEAT_MS=2000 \
        node "$backend/server.js" >"$logs/backend-$i.log" 2>&1 &
    pids+=("$!")
done
for i in 0 1 2; do
    wait_http "http://127.0.0.1:$((4000 + i))/healthz"
done

cat <<EOF

pod-router demo is running (logs in $logs)

  status page        http://$admin/status
  pods               curl -s http://$admin/v1/pods
  cluster totals     curl -s http://$admin/v1/cluster
  metrics            curl -s http://$admin/metrics | grep ^podrouter_
  a room's pod       curl -si http://$public/api/room/room_demo/state
  its assignment     curl -s http://$admin/v1/rooms/room_demo
  browser redirect   curl -si -H 'Accept: text/html' http://$public/experiment/room_demo
  drain a pod        curl -s -X POST http://$admin/v1/pods/backend-0/drain

  whoami over Socket.IO for room_demo (through the router):
  NODE_PATH=$backend/node_modules node -e "const s=require('socket.io-client').io('http://$public/experiment',{query:{roomId:'room_demo'}});s.on('connect',async()=>{console.log(await s.emitWithAck('whoami'));s.close()});s.on('connect_error',e=>{console.error(e.message);process.exit(1)})"

Press Ctrl-C to stop.
EOF

# Stay in the foreground until a signal arrives or a child dies.
while true; do
    for pid in "${pids[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "demo: process $pid exited; see $logs" >&2
            exit 1
        fi
    done
    # In the background so that a signal is handled at once.
    sleep 1 &
    wait "$!" || true
done
