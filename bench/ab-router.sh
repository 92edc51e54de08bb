#!/bin/bash
# A B A B: CPU per request of two router binaries (OLD_BIN, NEW_BIN) on the same nginx pod, 1 thread, 64 conns, rooms.
set -u
OLD_BIN="${OLD_BIN:?path of the first binary}"
NEW_BIN="${NEW_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/src/pod-router}"
work="$(mktemp -d)"
cd "$work" || exit 1
cat >nginx.conf <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:18901; location / { return 200 "0{\\"sid\\":\\"abc\\"}"; } }
}
CONF
cat >rooms.lua <<'LUA'
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/socket.io/?EIO=4&transport=polling&roomId=room_" .. (counter % 1000))
end
LUA
timeout 300 nginx -c "$work/nginx.conf" -p "$work"
trap 'kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT
for round in 1 2 3; do
for name in old new; do
  bin=$([ "$name" = old ] && echo "$OLD_BIN" || echo "$NEW_BIN")
  "$bin" --listen 127.0.0.1:18902 --admin-listen 127.0.0.1:18903 --threads 1 --access-log false --log-level error >/dev/null 2>&1 & rp=$!
  sleep 0.4
  curl -s -XPUT -H 'content-type: application/json' -d '{"address":"127.0.0.1:18901"}' http://127.0.0.1:18903/v1/pods/backend-0 >/dev/null
  wrk -t1 -c64 -d1s -s rooms.lua http://127.0.0.1:18902/ >/dev/null 2>&1
  t0=$(awk '{print $14+$15}' /proc/$rp/stat)
  out=$(wrk -t1 -c64 -d5s --latency -s rooms.lua http://127.0.0.1:18902/)
  t1=$(awk '{print $14+$15}' /proc/$rp/stat)
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  rss=$(awk '/VmRSS/ {print $2}' /proc/$rp/status)
  echo "$round $name reqs=$reqs cpu_us_per_req=$(awk -v a="$t0" -v b="$t1" -v r="$reqs" 'BEGIN{printf "%.1f", (b-a)*10000/r}') p99=$p99 rss_kb=$rss"
  kill $rp; wait $rp 2>/dev/null
done; done
