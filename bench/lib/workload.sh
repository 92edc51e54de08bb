# The Socket.IO workload of bench/run.sh (issue 11): pod-router (memory and Redis store), HAProxy
# and nginx, 1 and 2 threads, plus the direct-to-pod ceiling, in A B A B rounds, on two C bench
# pods (bench/pod) with the C load generator (bench/loadgen) and wrk + Lua (bench/lib/wrk).
# Sourced by bench/run.sh after lib/common.sh; sets no traps itself.
# shellcheck shell=bash disable=SC2034,SC2154,SC2153

WL_TSV="$out_dir/workload.tsv"
# Full runs write the committed charts in bench/results/; --quick runs leave them alone.
if [ "${QUICK:-0}" = 1 ]; then
    RES_DIR="${BENCH_RESULTS_DIR:-$out_dir/results-quick}"
else
    RES_DIR="${BENCH_RESULTS_DIR:-$repo/bench/results}"
fi
P0_PORT=$((PORT_BASE + 2))
P1_PORT=$((PORT_BASE + 3))
REDIS_PORT=$((PORT_BASE + 4))
WL_COLS="${BENCH_COLUMNS:-direct pr1 pr1r hap1 ngx1 pr2 pr2r hap2 ngx2}"

if [ "${QUICK:-0}" = 1 ]; then
    WL_ROUNDS="${BENCH_ROUNDS:-1}"
    WL_DUR="${BENCH_DURATION:-1}"
    WL_WS_DUR="${BENCH_WS_DURATION:-1}"
    WL_ROOMS="${BENCH_ROOMS:-20}"
    WL_PER_ROOM="${BENCH_PER_ROOM:-5}"
    WL_TUN_STEPS="${BENCH_TUNNEL_STEPS:-200,400}"
    WL_SIDS=100
    WL_HOLD_MS=400
    WL_RECONNECT_MS=300
    WL_STORM="${BENCH_STORM:-pr1r}"
else
    WL_ROUNDS="${BENCH_ROUNDS:-2}"
    WL_DUR="${BENCH_DURATION:-5}"
    WL_WS_DUR="${BENCH_WS_DURATION:-6}"
    WL_ROOMS="${BENCH_ROOMS:-100}"
    WL_PER_ROOM="${BENCH_PER_ROOM:-10}"
    WL_TUN_STEPS="${BENCH_TUNNEL_STEPS:-5000,9000}"
    WL_SIDS=1000
    WL_HOLD_MS=2500
    WL_RECONNECT_MS=1000
    WL_STORM="${BENCH_STORM:-pr1 pr1r hap1 ngx1}"
fi
WL_CONNS="${BENCH_CONNECTIONS:-64}"
bench_bin="$repo/build-bench/bench"

wrec() { printf '%s\t%s\t%s\t%s\n' "$round" "$1" "$2" "$3" >>"$WL_TSV"; }

# ---- configurations -------------------------------------------------------------------------
# The same stickiness for HAProxy and nginx: a consistent hash of the room (roomId query, else the
# room_* path segment of /api/room/<id>), health checks so a dead pod's rooms move, keep-alive to
# the pods, WebSocket tunnels, the same header work as pod-router (see bench/README.md).
wl_write_haproxy() { # THREADS
    local d="$work/haproxy-wl"
    mkdir -p "$d"
    cat >"$d/haproxy.cfg" <<EOF
global
    nbthread $1
    maxconn $(((nofile - 300) / 2))

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 3s
    timeout http-request 10s
    timeout client 75s
    timeout server 75s
    timeout http-keep-alive 75s
    timeout tunnel 1h
    retries 2
    option redispatch

frontend fe
    bind 127.0.0.1:$HAP_PORT
    maxconn $(((nofile - 300) / 2))
    option forwardfor
    unique-id-format %{+X}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid
    http-request set-header X-Forwarded-Proto http unless { req.hdr(x-forwarded-proto) -m found }
    http-request set-header X-Forwarded-Host %[req.hdr(host)] unless { req.hdr(x-forwarded-host) -m found }
    http-request set-header X-Request-Id %[unique-id] unless { req.hdr(x-request-id) -m found }
    http-response set-header X-Pod-Router-Pod %[srv_name]
    default_backend pods

backend pods
    http-request set-var(txn.rk) url_param(roomId)
    http-request set-var(txn.rk) path,field(4,/) if !{ var(txn.rk) -m found } { path_beg /api/room/ }
    balance hash var(txn.rk)
    hash-type consistent
    server p0 127.0.0.1:$P0_PORT check inter 1s fall 1 rise 2 pool-purge-delay 3s
    server p1 127.0.0.1:$P1_PORT check inter 1s fall 1 rise 2 pool-purge-delay 3s
EOF
}

wl_write_nginx() { # THREADS
    local d="$work/nginx-wl"
    mkdir -p "$d/tmp"
    cat >"$d/nginx.conf" <<EOF
worker_processes $1;
worker_rlimit_nofile $nofile;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections $((nofile - 100)); }
http {
  access_log off;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  client_header_timeout 10s;
$(nginx_common "$d")
  map \$http_upgrade \$connection_upgrade { default ""; websocket upgrade; }
  map \$http_x_request_id \$rid { default \$http_x_request_id; "" \$request_id; }
  map \$http_x_forwarded_proto \$xfp { default \$http_x_forwarded_proto; "" \$scheme; }
  map \$http_x_forwarded_host \$xfh { default \$http_x_forwarded_host; "" \$http_host; }
  map \$uri \$room_in_path { "~^/api/room/(?<r>[^/]+)" \$r; default ""; }
  map \$arg_roomId \$room_key { "" \$room_in_path; default \$arg_roomId; }
  upstream pods {
    hash \$room_key consistent;
    server 127.0.0.1:$P0_PORT max_fails=1 fail_timeout=5s;
    server 127.0.0.1:$P1_PORT max_fails=1 fail_timeout=5s;
    keepalive 256; # idle pod connections kept per worker (64 churned with 64 clients over 2 pods)
    keepalive_requests 1000000;
    keepalive_timeout 3s;
  }
  server {
    listen 127.0.0.1:$NGX_PORT backlog=4096;
    location / {
      proxy_pass http://pods;
      proxy_http_version 1.1;
      proxy_set_header Host \$http_host;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$xfp;
      proxy_set_header X-Forwarded-Host \$xfh;
      proxy_set_header X-Request-Id \$rid;
      add_header X-Pod-Router-Pod \$upstream_addr always;
      proxy_buffering off;
      proxy_next_upstream error timeout;
      proxy_connect_timeout 3s;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
    }
  }
}
EOF
}

# ---- processes --------------------------------------------------------------------------------
pod_w=()   # wrappers of p0, p1
pod_pid=() # their PIDs
# Pods and Redis live for the whole run (~20 min), longer than one measurement's process bound.
WL_LONG_SECONDS="${BENCH_LONG_SECONDS:-3600}"

wl_start_pod() { # INDEX
    local port=$((P0_PORT + $1)) MAX_SECONDS="$WL_LONG_SECONDS"
    start "pod-p$1" "$bench_bin/bench-pod" --listen "127.0.0.1:$port" --name "p$1" --session-timeout 60000
    pod_w[$1]="$wrapper"
    pod_pid[$1]="$pid"
    wait_port "$port"
}
wl_start_pods() {
    wl_start_pod 0
    wl_start_pod 1
}
pod_conns() { # "accepted closed": connections both pods accepted / closed so far (the stats
    # requests themselves are 2 accepted connections; "closed" does not count them)
    local a=0 c=0 j n m p
    for p in "$P0_PORT" "$P1_PORT"; do
        j="$(curl -sS -m 2 "http://127.0.0.1:$p/__bench/stats" 2>/dev/null)"
        n="$(printf '%s' "$j" | sed -n 's/.*"accepted":\([0-9]*\).*/\1/p')"
        m="$(printf '%s' "$j" | sed -n 's/.*"closed":\([0-9]*\).*/\1/p')"
        a=$((a + ${n:-0}))
        c=$((c + ${m:-0}))
    done
    echo "$a $c"
}

redis_w=""
redis_pid=""
wl_start_redis() {
    local MAX_SECONDS="$WL_LONG_SECONDS"
    mkdir -p "$work/redis"
    start redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
        --dir "$work/redis" --protected-mode yes
    redis_w="$wrapper"
    redis_pid="$pid"
    wait_port "$REDIS_PORT"
}

pr_register() { # INDEX: register (or heartbeat) pod p<INDEX> with the router
    curl -fsS -m 2 -o /dev/null -X PUT -H 'Content-Type: application/json' \
        -d "{\"address\":\"127.0.0.1:$((P0_PORT + $1))\"}" "http://127.0.0.1:$PR_ADMIN/v1/pods/p$1"
}
hb_pid=""

# wl_start_proxy COL: fresh proxy; sets $pw (wrapper), $mpids (comma list of PIDs whose CPU counts),
# $pport, $threads, $uses_redis.
wl_start_proxy() {
    local col="$1"
    uses_redis=0
    case "$col" in
    direct) pw=""; mpids="${pod_pid[0]}"; pport=$P0_PORT; threads=1; return 0 ;;
    *2 | *2r) threads=2 ;;
    *) threads=1 ;;
    esac
    case "$col" in
    pr*)
        local store=()
        case "$col" in *r) store=(--store "redis://127.0.0.1:$REDIS_PORT"); uses_redis=1
            redis-cli -p "$REDIS_PORT" flushall >/dev/null 2>&1 || true ;; esac
        case "$col" in *w) store=(--io-uring false) ;; esac # A/B: one write per send
        # --key-rate 0: all the load comes from 127.0.0.1, which stands for many browsers here.
        # The storm needs the production set-up: pods heartbeat (here every 1 s, like HAProxy's
        # `check inter 1s`) and a silent pod is down after --pod-ttl (3 s here, 15 s by default).
        local ttl=1h
        [ "$2" = storm ] && ttl=3s
        start "$col-r$round-$2" "$bin" serve --listen "127.0.0.1:$PR_PORT" --admin-listen "127.0.0.1:$PR_ADMIN" \
            --threads "$threads" --access-log false --log-level warn --log-format text \
            --pod-ttl "$ttl" --drain-timeout 1s --idle-timeout 75s --key-rate 0 "${store[@]}"
        pw="$wrapper"
        mpids="$pid"
        wait_port "$PR_ADMIN" || return 1
        pr_register 0 && pr_register 1 || return 1
        if [ "$2" = storm ]; then
            rm -f "$work/hb-off-p1"
            (while :; do
                pr_register 0 || true
                [ -f "$work/hb-off-p1" ] || pr_register 1 || true
                sleep 1
            done) >/dev/null 2>&1 &
            hb_pid=$!
            started+=("$hb_pid")
        fi
        wait_port "$PR_PORT" || return 1
        pport=$PR_PORT
        ;;
    hap*)
        wl_write_haproxy "$threads"
        start "$col-r$round-$2" haproxy -db -f "$work/haproxy-wl/haproxy.cfg"
        pw="$wrapper"
        mpids="$pid"
        wait_port "$HAP_PORT" || return 1
        pport=$HAP_PORT
        ;;
    ngx*)
        wl_write_nginx "$threads"
        start "$col-r$round-$2" nginx -p "$work/nginx-wl" -c "$work/nginx-wl/nginx.conf"
        pw="$wrapper"
        local master="$pid" kids=""
        for _ in $(seq 1 100); do
            kids="$(pgrep -P "$master" | tr '\n' ',' | sed 's/,$//')"
            [ "$(echo "$kids" | tr ',' '\n' | grep -c .)" -ge "$threads" ] && break
            sleep 0.02
        done
        mpids="$kids"
        wait_port "$NGX_PORT" || return 1
        pport=$NGX_PORT
        ;;
    esac
    sleep 0.3
}
wl_stop_proxy() {
    if [ -n "$hb_pid" ]; then
        stop "$hb_pid"
        hb_pid=""
    fi
    if [ -n "$pw" ]; then stop "$pw"; fi
    pw=""
}

tcp_segs() { awk '$1 == "Tcp:" && $2 ~ /^[0-9]/ {print $12}' /proc/net/snmp; } # OutSegs
cpu_busy_idle() { # "busy idle" jiffies of the whole machine (all CPUs) from /proc/stat
    awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6; exit}' /proc/stat
}

ticks_of() { # sum utime+stime of a comma list of PIDs
    local t=0 p u s
    for p in ${1//,/ }; do
        read -r u s <<<"$(cpu_ticks "$p" 2>/dev/null || echo "0 0")"
        t=$((t + u + s))
    done
    echo "$t"
}
rss_of() { # sum VmRSS (KiB) of a comma list of PIDs
    local t=0 p r
    for p in ${1//,/ }; do
        r="$(rss_kib "$p" 2>/dev/null || echo 0)"
        t=$((t + ${r:-0}))
    done
    echo "$t"
}

# ---- measurements -------------------------------------------------------------------------------
# wl_wrk COL TEST SCRIPT [SCRIPT ARGS]: wrk through the proxy; CPU per request of the proxy (and
# of Redis), req/s, p50/p99, errors, pod connections opened during the run.
wl_wrk() {
    local col="$1" test="$2" script="$3"
    shift 3
    local f="$work/wrk-$col-$test-r$round.txt" url="http://127.0.0.1:$pport/"
    # warm-up longer than the proxies' 3 s idle expiry of pod connections, so that connections
    # left over from the previous test are gone and "pod connections closed" counts only closes
    # under steady load
    [ "${QUICK:-0}" = 1 ] || timeout 30 wrk -t1 -c"$WL_CONNS" -d4s -s "$script" "$url" -- "$@" >/dev/null 2>&1 || true
    local t0 r0 a0 t1 r1 a1 s0 s1
    local c0 c1
    local m0 m1
    m0="$(cpu_busy_idle)"
    s0="$(tcp_segs)"
    t0="$(ticks_of "$mpids")"
    r0=0
    [ "$uses_redis" = 1 ] && r0="$(ticks_of "$redis_pid")"
    timeout $((WL_DUR + 30)) wrk -t1 -c"$WL_CONNS" -d"${WL_DUR}s" --latency -s "$script" "$url" -- "$@" >"$f" 2>&1 &
    local wrk_pid=$!
    # pod connections opened/closed in steady state: from 1 s after wrk starts to 1 s before it
    # stops, so that neither its connection ramp nor its abort of in-flight requests at the end
    # (every proxy then closes those pod connections) is counted
    local steady=$((WL_DUR > 3 ? WL_DUR - 2 : 1))
    sleep 1
    read -r a0 c0 <<<"$(pod_conns)"
    sleep "$steady"
    read -r a1 c1 <<<"$(pod_conns)"
    wait "$wrk_pid" || true
    t1="$(ticks_of "$mpids")"
    s1="$(tcp_segs)"
    m1="$(cpu_busy_idle)"
    r1=0
    [ "$uses_redis" = 1 ] && r1="$(ticks_of "$redis_pid")"
    local reqs rps p50 p99 non2xx sockerr
    reqs="$(awk '/requests in/ {print $1}' "$f")"
    rps="$(awk '/^Requests\/sec:/ {print $2}' "$f")"
    p50="$(awk '$1 == "50%" {print $2}' "$f")"
    p99="$(awk '$1 == "99%" {print $2}' "$f")"
    non2xx="$(awk '/Non-2xx/ {print $NF}' "$f")"
    sockerr="$(awk -F'[ ,]+' '/Socket errors/ {print $4 + $6 + $8 + $10}' "$f")"
    if [ -z "$reqs" ] || [ "$reqs" = 0 ]; then
        log "$col $test: wrk completed no request (see $f)"
        wrec "$col" "${test}_errors" "-1"
        return 0
    fi
    local cpu rcpu
    cpu="$(awk -v d=$((t1 - t0)) -v hz="$clk_tck" -v n="$reqs" 'BEGIN {printf "%.2f", d / hz * 1e6 / n}')"
    wrec "$col" "${test}_cpu_us" "$cpu"
    if [ "$uses_redis" = 1 ]; then
        rcpu="$(awk -v d=$((r1 - r0)) -v hz="$clk_tck" -v n="$reqs" 'BEGIN {printf "%.2f", d / hz * 1e6 / n}')"
        wrec "$col" "${test}_redis_cpu_us" "$rcpu"
    fi
    wrec "$col" "${test}_rps" "$rps"
    # how busy the whole machine (all CPUs) was: wrk, pods, proxy and the other tenants
    wrec "$col" "${test}_machine_busy_pct" "$(awk -v a="$m0" -v b="$m1" 'BEGIN {
        split(a, x, " "); split(b, y, " "); db = y[1] - x[1]; di = y[2] - x[2]
        printf "%.0f", (db + di > 0) ? 100 * db / (db + di) : 0 }')"
    # TCP segments sent per request on the whole machine (loopback: client, proxy and pod
    # alike), a proxy's kernel work that CPU time alone does not itemise
    local segs
    segs="$(awk -v a="$s0" -v b="$s1" -v n="$reqs" 'BEGIN {printf "%.2f", (b - a) / n}')"
    wrec "$col" "${test}_tcp_segs" "$segs"
    wrec "$col" "${test}_p50_ms" "$(to_ms "$p50")"
    wrec "$col" "${test}_p99_ms" "$(to_ms "$p99")"
    wrec "$col" "${test}_errors" "$((${non2xx:-0} + ${sockerr:-0}))"
    if [ "$col" != direct ]; then
        wrec "$col" "${test}_pod_conns" "$((a1 - a0 - 2))"
        wrec "$col" "${test}_pod_closed" "$((c1 - c0))"
    fi
    log "$col r$round $test: $rps req/s, p99 $p99, ${cpu} us cpu/req${rcpu:+ (+$rcpu redis)}, $segs TCP segments/req, errors ${non2xx:-0}+${sockerr:-0}, pod conns opened $((a1 - a0 - 2)) closed $((c1 - c0))"
}

# wl_loadgen COL TEST ARGS...: the load generator through the proxy; its key/value results go to
# the TSV with TEST_ as prefix.
wl_loadgen() {
    local col="$1" test="$2"
    shift 2
    local base="$work/lg-$col-$test-r$round"
    timeout $((MAX_SECONDS)) "$bench_bin/bench-loadgen" --target "127.0.0.1:$pport" \
        --tsv "$base.tsv" "$@" >"$base.out" 2>"$base.err" || true
    if [ ! -s "$base.tsv" ]; then
        log "$col $test: the load generator reported nothing (see $base.err)"
        return 0
    fi
    local k v
    while IFS=$'\t' read -r k v; do
        case "$k" in target | participants | errors) continue ;; esac
        wrec "$col" "${test}_$k" "${v%% *}"
    done <"$base.tsv"
}

wl_http_tests() { # COL
    local col="$1"
    wl_wrk "$col" hs "$repo/bench/lib/wrk/handshake.lua"
    local sids="$work/sids-$col-r$round.txt"
    timeout 120 "$bench_bin/bench-loadgen" --target "127.0.0.1:$pport" --mode sids --rooms "$WL_SIDS" \
        --per-room 1 --room-prefix room_pl --sids-out "$sids" --quiet --concurrency 64 --ramp-timeout 60 \
        >"$work/sids-$col-r$round.out" 2>&1 || true
    if [ -s "$sids" ]; then
        wl_wrk "$col" poll "$repo/bench/lib/wrk/poll.lua" "$sids"
    else
        log "$col: no sids for the polling test (see $work/sids-$col-r$round.out)"
    fi
    wl_wrk "$col" room "$repo/bench/lib/wrk/room.lua"
}

wl_ws_test() { # COL [LOADGEN ARGS]
    local col="$1"
    shift
    wl_loadgen "$col" ws --rooms "$WL_ROOMS" --per-room "$WL_PER_ROOM" --duration "$WL_WS_DUR" \
        --watch-pid "$mpids" --cdf "$out_dir/cdf-$col-r$round.txt" --room-prefix "room_ws${round}_" "$@"
    local fs cpu
    fs="$(awk -F'\t' -v c="$col" -v r="$round" '$1 == r && $2 == c && $3 == "ws_frames_per_s" {print $4}' "$WL_TSV")"
    cpu="$(awk -F'\t' -v c="$col" -v r="$round" '$1 == r && $2 == c && $3 == "ws_watched_cpu_us_per_frame" {print $4}' "$WL_TSV")"
    log "$col r$round ws: ${fs:-?} frames/s, ${cpu:-?} us cpu/frame"
}

# Idle WebSocket tunnels at each step of WL_TUN_STEPS: proxy RSS per tunnel.
wl_tunnels() { # COL
    local col="$1"
    local base="$work/tun-$col-r$round" rss0 last=0 n step
    [ "$col" = direct ] && return 0
    rss0="$(rss_of "$mpids")"
    local maxn="${WL_TUN_STEPS##*,}"
    timeout "$MAX_SECONDS" "$bench_bin/bench-loadgen" --target "127.0.0.1:$pport" --ws-only \
        --rooms "$maxn" --per-room 1 --update-ms 0 --event-ms 0 --steps "$WL_TUN_STEPS" --hold-ms "$WL_HOLD_MS" \
        --concurrency 200 --room-prefix "room_idle${round}_" --tsv "$base.tsv" >"$base.out" 2>"$base.err" &
    local lg=$!
    started+=("$lg")
    for step in ${WL_TUN_STEPS//,/ }; do
        for _ in $(seq 1 1200); do
            grep -q "^step $step " "$base.out" 2>/dev/null && break
            kill -0 "$lg" 2>/dev/null || break
            sleep 0.1
        done
        if ! grep -q "^step $step " "$base.out" 2>/dev/null; then
            log "$col tunnels: step $step not reached (see $base.err)"
            break
        fi
        sleep "$(awk -v h="$WL_HOLD_MS" 'BEGIN {printf "%.2f", h / 2000}')"
        n="$(awk -v s="$step" '$1 == "step" && $2 == s {print $4}' "$base.out")"
        local rss
        rss="$(rss_of "$mpids")"
        wrec "$col" "tun_${step}_bytes" "$(((rss - rss0) * 1024 / ${n:-1}))"
        wrec "$col" "tun_${step}_rss_kib" "$rss"
        log "$col r$round tunnels: $n idle, RSS $rss0 -> $rss KiB ($(((rss - rss0) * 1024 / ${n:-1})) B each)"
        last="$step"
    done
    wait "$lg" 2>/dev/null || true
    local keep=() p
    for p in "${started[@]}"; do [ "$p" = "$lg" ] || keep+=("$p"); done
    started=("${keep[@]}")
}

# Reconnect storm: rooms joined through the proxy, then pod p1 is killed (SIGKILL); the load
# generator times how long until every participant is back in its room (on p0).
wl_storm() { # COL
    local col="$1"
    local base="$work/storm-$col-r$round"
    timeout "$MAX_SECONDS" "$bench_bin/bench-loadgen" --target "127.0.0.1:$pport" \
        --rooms "$WL_ROOMS" --per-room "$WL_PER_ROOM" --duration "$((WL_WS_DUR + 12))" --reconnect-ms "$WL_RECONNECT_MS" \
        --room-prefix "room_st${round}_" --tsv "$base.tsv" >"$base.out" 2>"$base.err" &
    local lg=$!
    started+=("$lg")
    for _ in $(seq 1 600); do
        grep -q "participants joined; measuring" "$base.err" 2>/dev/null && break
        kill -0 "$lg" 2>/dev/null || break
        sleep 0.1
    done
    sleep "$([ "${QUICK:-0}" = 1 ] && echo 0.3 || echo 1)"
    log "$col r$round storm: killing pod p1"
    touch "$work/hb-off-p1"
    kill -KILL "${pod_pid[1]}" 2>/dev/null || true
    stop "${pod_w[1]}"
    # back as soon as the storm is over, or stop the generator after 20 s
    for _ in $(seq 1 200); do
        grep -q "reconnect storm over" "$base.err" 2>/dev/null && break
        kill -0 "$lg" 2>/dev/null || break
        sleep 0.1
    done
    kill -INT "$lg" 2>/dev/null || true
    wait "$lg" 2>/dev/null || true
    local keep=() p
    for p in "${started[@]}"; do [ "$p" = "$lg" ] || keep+=("$p"); done
    started=("${keep[@]}")
    local ms lost split
    ms="$(awk -F'\t' '$1 == "storm_ms" {print $2}' "$base.tsv" 2>/dev/null)"
    lost="$(awk -F'\t' '$1 == "storm_lost" {print $2}' "$base.tsv" 2>/dev/null)"
    split="$(awk -F'\t' '$1 == "split_rooms" {print $2}' "$base.tsv" 2>/dev/null)"
    if grep -q "reconnect storm over" "$base.err" 2>/dev/null; then
        wrec "$col" storm_ms "${ms:-}"
        wrec "$col" storm_lost "${lost:-}"
        wrec "$col" storm_split_rooms "${split:-}"
        log "$col r$round storm: ${lost:-?} participants lost, all back after ${ms:-?} ms, ${split:-?} rooms split"
    else
        wrec "$col" storm_ms -1
        log "$col r$round storm: not everyone came back within 20 s (see $base.err)"
    fi
    wl_start_pod 1 # for what follows
}

# Router-replica storm: two pod-router replicas on one Redis store, participants spread over both
# (as a load balancer would), replica B gets SIGTERM; the load generator's participants reconnect
# to replica A, which must send every room to the pod it already has (shared store).
wl_replica_storm() {
    local col=pr1r base="$work/rstorm-r$round" b_port=$((PR_PORT + 2)) b_admin=$((PR_ADMIN + 2)) i
    redis-cli -p "$REDIS_PORT" flushall >/dev/null 2>&1 || true
    local args=(--threads 1 --access-log false --log-level warn --log-format text --pod-ttl 1h
        --drain-timeout 1s --idle-timeout 75s --key-rate 0 --store "redis://127.0.0.1:$REDIS_PORT")
    start "rstorm-a" "$bin" serve --listen "127.0.0.1:$PR_PORT" --admin-listen "127.0.0.1:$PR_ADMIN" "${args[@]}"
    local wa="$wrapper"
    start "rstorm-b" "$bin" serve --listen "127.0.0.1:$b_port" --admin-listen "127.0.0.1:$b_admin" "${args[@]}"
    local wb="$wrapper" pb="$pid"
    if ! wait_port "$PR_ADMIN" || ! wait_port "$b_admin"; then stop "$wa"; stop "$wb"; return 0; fi
    for i in 0 1; do
        pr_register "$i"
        curl -fsS -m 2 -o /dev/null -X PUT -H 'Content-Type: application/json' \
            -d "{\"address\":\"127.0.0.1:$((P0_PORT + i))\"}" "http://127.0.0.1:$b_admin/v1/pods/p$i" || true
    done
    if ! wait_port "$PR_PORT" || ! wait_port "$b_port"; then stop "$wa"; stop "$wb"; return 0; fi
    timeout "$MAX_SECONDS" "$bench_bin/bench-loadgen" --target "127.0.0.1:$PR_PORT,127.0.0.1:$b_port" \
        --rooms "$WL_ROOMS" --per-room "$WL_PER_ROOM" --duration "$((WL_WS_DUR + 12))" \
        --reconnect-ms "$WL_RECONNECT_MS" --room-prefix "room_rs${round}_" --tsv "$base.tsv" \
        >"$base.out" 2>"$base.err" &
    local lg=$!
    started+=("$lg")
    for _ in $(seq 1 600); do
        grep -q "participants joined; measuring" "$base.err" 2>/dev/null && break
        kill -0 "$lg" 2>/dev/null || break
        sleep 0.1
    done
    sleep "$([ "${QUICK:-0}" = 1 ] && echo 0.3 || echo 1)"
    log "pr1r r$round replica storm: SIGTERM to router replica B"
    kill -TERM "$pb" 2>/dev/null || true
    for _ in $(seq 1 200); do
        grep -q "reconnect storm over" "$base.err" 2>/dev/null && break
        kill -0 "$lg" 2>/dev/null || break
        sleep 0.1
    done
    kill -INT "$lg" 2>/dev/null || true
    wait "$lg" 2>/dev/null || true
    local keep=() p
    for p in "${started[@]}"; do [ "$p" = "$lg" ] || keep+=("$p"); done
    started=("${keep[@]}")
    stop "$wb"
    stop "$wa"
    local ms lost split
    ms="$(awk -F'\t' '$1 == "storm_ms" {print $2}' "$base.tsv" 2>/dev/null)"
    lost="$(awk -F'\t' '$1 == "storm_lost" {print $2}' "$base.tsv" 2>/dev/null)"
    split="$(awk -F'\t' '$1 == "split_rooms" {print $2}' "$base.tsv" 2>/dev/null)"
    if grep -q "reconnect storm over" "$base.err" 2>/dev/null; then
        wrec "$col" rstorm_ms "${ms:-}"
        wrec "$col" rstorm_lost "${lost:-}"
        wrec "$col" rstorm_split_rooms "${split:-}"
        log "pr1r r$round replica storm: ${lost:-?} participants lost, all back after ${ms:-?} ms, ${split:-?} rooms split"
    else
        wrec "$col" rstorm_ms -1
        log "pr1r r$round replica storm: not everyone came back within 20 s (see $base.err)"
    fi
}

# Realism check (full runs, when examples/backend has its node_modules): the same rooms on two real
# Node.js Socket.IO pods (examples/backend), direct, through pod-router and through HAProxy.
# examples/backend re-broadcasts only "room-msg" events, so the host emits those.
wl_realism() {
    local be="$repo/examples/backend" i col
    if [ ! -d "$be/node_modules/socket.io" ]; then
        log "realism check skipped: no examples/backend/node_modules (npm ci there)"
        return 0
    fi
    stop "${pod_w[0]}"
    stop "${pod_w[1]}"
    for i in 0 1; do
        start "node-p$i" env PORT=$((P0_PORT + i)) HOST=127.0.0.1 POD_NAME="p$i" node "$be/server.js"
        pod_w[i]="$wrapper"
        pod_pid[i]="$pid"
    done
    wait_port "$P0_PORT" && wait_port "$P1_PORT" || return 0
    for col in direct pr1 hap1; do
        log "== realism check (Node pods): $col"
        if wl_start_proxy "$col" node; then
            wl_ws_test "n$col" --update-event room-msg --room-prefix "room_node${round}_"
        fi
        wl_stop_proxy
    done
    stop "${pod_w[0]}"
    stop "${pod_w[1]}"
}

# The load generator's own capacity: 10,000 participants from one process (1,000 rooms x 10,
# polling handshake + upgrade), straight to the pods, one update per second per room.
wl_capacity() {
    local n="${BENCH_CAPACITY_ROOMS:-1000}"
    log "== load generator capacity: $n rooms x 10 participants, direct to p0"
    mpids="${pod_pid[0]}"
    pport=$P0_PORT
    wl_loadgen direct cap --rooms "$n" --per-room 10 --update-ms 1000 --duration "$WL_WS_DUR" \
        --watch-pid "${pod_pid[0]}" --room-prefix "room_cap_" --ramp-timeout 120
    log "capacity: $(awk -F'\t' '$1 == "joined" {j = $2} $1 == "loadgen_cpu_pct" {c = $2} $1 == "setup_rate" {r = $2}
        END {printf "%s joined, %s conn/s, loadgen %s%% of a core", j, r, c}' "$work/lg-direct-cap-r$round.tsv" 2>/dev/null)"
}

wl_meta() {
    printf 'meta\t%s\t%s\n' "$1" "$2" >>"$WL_TSV"
}

# bench/run.sh --tunnels: the idle-tunnel step alone, for each column of BENCH_COLUMNS (default
# pod-router 1 and 2 threads, memory and Redis store); prints "COL STEP BYTES_PER_TUNNEL RSS_KIB".
run_tunnels() {
    [ -n "${BENCH_COLUMNS:-}" ] || WL_COLS="pr1 pr1r pr2 pr2r"
    : >"$WL_TSV"
    wl_start_pods
    wl_start_redis
    round=1
    for col in $WL_COLS; do
        [ "$col" = direct ] && continue
        log "== tunnels: $col"
        if wl_start_proxy "$col" tun; then wl_tunnels "$col"; fi
        wl_stop_proxy
    done
    cleanup
    printf 'idle tunnels (%s, steps %s, bytes = RSS growth / tunnels)\n' "$bin_source" "$WL_TUN_STEPS"
    awk -F'\t' '$3 ~ /^tun_[0-9]+_bytes$/ {s = $3; gsub(/tun_|_bytes/, "", s); b[$2 " " s] = $4; o[++n] = $2 " " s}
        $3 ~ /^tun_[0-9]+_rss_kib$/ {s = $3; gsub(/tun_|_rss_kib/, "", s); r[$2 " " s] = $4}
        END {for (i = 1; i <= n; i++) printf "%s %s B/tunnel, RSS %s KiB\n", o[i], b[o[i]], r[o[i]]}' "$WL_TSV"
}

run_workload() {
    : >"$WL_TSV"
    [ -x "$bench_bin/bench-loadgen" ] || {
        echo "bench: $bench_bin/bench-loadgen was not built (libwebsockets-dev missing?)" >&2
        exit 1
    }
    command -v redis-server >/dev/null || { echo "bench: redis-server missing" >&2; exit 1; }
    wl_meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    wl_meta commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    wl_meta binary "$bin_source"
    wl_meta haproxy "$(haproxy -v 2>&1 | head -n1 | awk '{print $3}')"
    wl_meta nginx "$(nginx -v 2>&1 | head -n1 | sed 's/.*nginx\///')"
    wl_meta kernel "$(uname -sr)"
    wl_meta nproc "$(nproc)"
    wl_meta loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
    wl_meta mode "$([ "${QUICK:-0}" = 1 ] && echo quick || echo full)"
    wl_meta params "rounds $WL_ROUNDS; wrk -t1 -c$WL_CONNS -d${WL_DUR}s; rooms $WL_ROOMS x $WL_PER_ROOM for ${WL_WS_DUR}s; tunnels $WL_TUN_STEPS"
    wl_start_pods
    wl_start_redis
    for round in $(seq 1 "$WL_ROUNDS"); do
        for col in $WL_COLS; do
            log "== round $round: $col"
            if wl_start_proxy "$col" http; then
                wl_http_tests "$col"
                wl_ws_test "$col"
            else
                log "$col: the proxy did not start (see $work/$col-r$round-http.log)"
            fi
            wl_stop_proxy
            if [ "$round" = 1 ] && [[ " $WL_STORM " == *" $col "* ]]; then
                if wl_start_proxy "$col" storm; then wl_storm "$col"; fi
                wl_stop_proxy
                [ "$col" = pr1r ] && wl_replica_storm
            fi
            # memory per tunnel barely moves between rounds: measured in round 1 only
            if [ "$col" != direct ] && [ "$round" = 1 ]; then
                if wl_start_proxy "$col" tun; then wl_tunnels "$col"; fi
                wl_stop_proxy
            fi
        done
    done
    [ "${BENCH_CAPACITY:-$([ "${QUICK:-0}" = 1 ] && echo 0 || echo 1)}" = 1 ] && wl_capacity
    [ "${BENCH_REALISM:-$([ "${QUICK:-0}" = 1 ] && echo 0 || echo 1)}" = 1 ] && wl_realism
    wl_meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
    cleanup
    mkdir -p "$RES_DIR"
    node "$repo/bench/lib/workload-report.js" "$WL_TSV" "$out_dir" "$RES_DIR" | tee "$out_dir/workload-table.txt"
}
