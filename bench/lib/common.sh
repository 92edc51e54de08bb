# Shared helpers of bench/run.sh and bench/profile.sh: ports, process bookkeeping (every
# process runs under `timeout` and is stopped by PID), proxy configurations, the build.
# Sourced with $repo set; sets no traps itself (the caller installs `trap cleanup EXIT`).
# shellcheck shell=bash disable=SC2034,SC2154
# (SC2034/SC2154: variables here are set for, or by, the sourcing script)

DURATION="${BENCH_DURATION:-10}"
CONNS="${BENCH_CONNECTIONS:-50}"
TUNNELS="${BENCH_TUNNELS:-5000}"
TUNNELS_FIRST="${BENCH_TUNNELS_FIRST:-1000}"
PORT_BASE="${BENCH_PORT_BASE:-18500}"
MAX_SECONDS="${BENCH_MAX_SECONDS:-600}"

UP_HTTP=$((PORT_BASE + 0))  # nginx static upstream
UP_WS=$((PORT_BASE + 1))    # Node WebSocket upstream
PR_PORT=$((PORT_BASE + 10)) # pod-router public
PR_ADMIN=$((PORT_BASE + 11))
HAP_PORT=$((PORT_BASE + 20))
NGX_PORT=$((PORT_BASE + 30))
POD=bench-0
ROOM_PATH="/?roomId=room_bench"
WS_PATH="/socket.io/?EIO=4&transport=websocket&roomId=room_bench"

out_dir="$repo/test-output/bench"
work="${work:-$out_dir/work}"
bin="$repo/build-bench/src/pod-router"
bin_source=""
clk_tck="$(getconf CLK_TCK)"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- preflight ----------------------------------------------------------------------------
preflight() {
    local missing=() cmd p
    for cmd in haproxy nginx wrk node curl meson ninja timeout pgrep; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "bench: missing commands: ${missing[*]} (apt-get install -y haproxy nginx wrk nodejs curl meson ninja-build procps)" >&2
        exit 1
    fi
    for p in "$UP_HTTP" "$UP_WS" "$PR_PORT" "$PR_ADMIN" "$HAP_PORT" "$NGX_PORT"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "bench: port $p on 127.0.0.1 is in use; set BENCH_PORT_BASE" >&2
            exit 1
        fi
    done
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    nofile="$(ulimit -n)"
    if [ "$nofile" != unlimited ] && [ $((2 * TUNNELS + 200)) -gt "$nofile" ]; then
        TUNNELS=$(((nofile - 200) / 2))
        log "open-file limit $nofile: BENCH_TUNNELS lowered to $TUNNELS"
    fi
    if [ "$TUNNELS_FIRST" -ge "$TUNNELS" ]; then
        TUNNELS_FIRST=$((TUNNELS / 5))
    fi
}

# ---- process bookkeeping --------------------------------------------------------------------
started=() # PIDs of the `timeout` wrappers of everything we started

cleanup() {
    local p
    for p in "${started[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${started[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    started=()
}

# start NAME CMD... : run CMD under `timeout`, log to $work/NAME.log; sets $wrapper and $pid
# (the PID of CMD itself, child of the wrapper).
wrapper=""
pid=""
start() {
    local name="$1"
    shift
    timeout -k 5 "$MAX_SECONDS" "$@" >"$work/$name.log" 2>&1 &
    wrapper=$!
    started+=("$wrapper")
    pid=""
    for _ in $(seq 1 100); do
        pid="$(pgrep -P "$wrapper" | head -n1 || true)"
        [ -n "$pid" ] && return 0
        kill -0 "$wrapper" 2>/dev/null || break
        sleep 0.02
    done
    log "could not start $name; see $work/$name.log"
    return 1
}

# stop WRAPPER_PID: TERM it (timeout forwards to its command), wait, forget it.
stop() {
    local w="$1" keep=() p
    kill -TERM "$w" 2>/dev/null || true
    wait "$w" 2>/dev/null || true
    for p in "${started[@]}"; do
        [ "$p" = "$w" ] || keep+=("$p")
    done
    started=("${keep[@]}")
}

wait_port() {
    
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    log "port $1 did not open"
    return 1
}

# Child of PID (nginx worker of its master), waiting for it to exist.
child_of() {
    local c
    for _ in $(seq 1 100); do
        c="$(pgrep -P "$1" | head -n1 || true)"
        if [ -n "$c" ]; then echo "$c"; return 0; fi
        sleep 0.02
    done
    return 1
}

cpu_ticks() { # "utime stime" of a process (all its threads), in clock ticks
    local s
    s="$(cat "/proc/$1/stat")"
    s="${s##*) }"
    local -a st
    read -r -a st <<<"$s"
    echo "${st[11]} ${st[12]}"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
nfds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# ---- configs --------------------------------------------------------------------------------
nginx_common() { # temp paths inside the instance directory
    cat <<EOF
  client_body_temp_path $1/tmp/body;
  proxy_temp_path $1/tmp/proxy;
  fastcgi_temp_path $1/tmp/fastcgi;
  uwsgi_temp_path $1/tmp/uwsgi;
  scgi_temp_path $1/tmp/scgi;
EOF
}

write_upstream_nginx() {
    local d="$work/nginx-upstream"
    mkdir -p "$d/tmp"
    cat >"$d/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
$(nginx_common "$d")
  server {
    listen 127.0.0.1:$UP_HTTP backlog=4096;
    location / { default_type text/plain; return 200 "ok\n"; }
  }
}
EOF
}

write_proxy_nginx() { # $1 = upstream port
    local d="$work/nginx-proxy"
    mkdir -p "$d/tmp"
    cat >"$d/nginx.conf" <<EOF
worker_processes 1;
master_process ${NGINX_MASTER:-on};
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
  upstream pod {
    server 127.0.0.1:$1;
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 3s;
  }
  server {
    listen 127.0.0.1:$NGX_PORT backlog=4096;
    location / {
      proxy_pass http://pod;
      proxy_http_version 1.1;
      proxy_set_header Host \$http_host;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$xfp;
      proxy_set_header X-Forwarded-Host \$xfh;
      proxy_set_header X-Request-Id \$rid;
      add_header X-Pod-Router-Pod $POD always;
      proxy_buffering off;
      proxy_connect_timeout 3s;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
    }
  }
}
EOF
}

write_haproxy() { # $1 = upstream port
    local d="$work/haproxy"
    mkdir -p "$d"
    cat >"$d/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $((TUNNELS + 1000))

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

frontend fe
    bind 127.0.0.1:$HAP_PORT
    maxconn $((TUNNELS + 1000))
    option forwardfor
    unique-id-format %{+X}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid
    http-request set-header X-Forwarded-Proto http unless { req.hdr(x-forwarded-proto) -m found }
    http-request set-header X-Forwarded-Host %[req.hdr(host)] unless { req.hdr(x-forwarded-host) -m found }
    http-request set-header X-Request-Id %[unique-id] unless { req.hdr(x-request-id) -m found }
    http-response set-header X-Pod-Router-Pod $POD
    default_backend pods

backend pods
    server $POD 127.0.0.1:$1 pool-purge-delay 3s
EOF
}

# ---- proxies: start_<kind> UPSTREAM_PORT sets $wrapper and $mpid (process to measure) -------
mpid=""
start_podrouter() { # $1 upstream port, $2 threads, $3 name
    # shellcheck disable=SC2086
    start "$3" ${WRAP:-} "$bin" serve --listen "127.0.0.1:$PR_PORT" --admin-listen "127.0.0.1:$PR_ADMIN" \
        --threads "$2" --access-log false --log-level warn --log-format text \
        --pod-ttl 1h --drain-timeout 1s --idle-timeout 75s
    mpid="$pid"
    wait_port "$PR_ADMIN"
    curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/json' \
        -d "{\"address\":\"127.0.0.1:$1\"}" "http://127.0.0.1:$PR_ADMIN/v1/pods/$POD"
    wait_port "$PR_PORT"
}
start_haproxy() { # $1 upstream port, $2 name
    write_haproxy "$1"
    # shellcheck disable=SC2086
    start "$2" ${WRAP:-} haproxy -db -f "$work/haproxy/haproxy.cfg"
    mpid="$pid"
    wait_port "$HAP_PORT"
}
start_nginx_proxy() { # $1 upstream port, $2 name; $WRAP: command prefix (profile.sh)
    write_proxy_nginx "$1"
    # shellcheck disable=SC2086
    start "$2" ${WRAP:-} nginx -p "$work/nginx-proxy" -c "$work/nginx-proxy/nginx.conf"
    if [ "${NGINX_MASTER:-on}" = on ]; then
        mpid="$(child_of "$pid")" # the single worker does all the work
    else
        mpid="$pid"
    fi
    wait_port "$NGX_PORT"
}
start_proxy() { # COL UPSTREAM_PORT NAME -> $wrapper $mpid $pport
    case "$1" in
    pr1) start_podrouter "$2" 1 "$3"; pport=$PR_PORT ;;
    pr2) start_podrouter "$2" 2 "$3"; pport=$PR_PORT ;;
    haproxy) start_haproxy "$2" "$3"; pport=$HAP_PORT ;;
    nginx) start_nginx_proxy "$2" "$3"; pport=$NGX_PORT ;;
    esac
    sleep 0.3
}

# ---- build ----------------------------------------------------------------------------------
# build_router [DIR [MESON_OPTIONS...]]: build pod-router in DIR (default build-bench, release);
# sets $bin and $bin_source. The working tree is shared with other engineers and may be
# mid-edit: when it does not build, a clean snapshot of HEAD is built instead.
build_router() {
    local dir="${1:-build-bench}"
    shift || true
    [ "$#" -gt 0 ] || set -- --buildtype=release
    log "building pod-router in $dir/ ($*)"
    bin="$repo/$dir/src/pod-router"
    bin_source="working tree ($(git status --porcelain -- src include meson.build 2>/dev/null | wc -l) files changed vs HEAD)"
    if { [ -f "$dir/build.ninja" ] ||
        meson setup "$dir" "$@" -Dtests=disabled >"$work/meson-$dir.log" 2>&1; } &&
        ninja -C "$dir" >"$work/ninja-$dir.log" 2>&1; then
        return 0
    fi
    log "working tree does not build (see $work/ninja-$dir.log): building a snapshot of HEAD instead"
    local snap="$out_dir/head-src"
    if [ "$(cat "$snap/.commit" 2>/dev/null)" != "$(git rev-parse HEAD)" ]; then
        rm -rf "$snap"
        mkdir -p "$snap"
        git archive HEAD meson.build meson_options.txt src include bench | tar -x -C "$snap"
        git rev-parse HEAD >"$snap/.commit"
    fi
    if [ ! -f "$snap/$dir/build.ninja" ]; then
        meson setup "$snap/$dir" "$snap" "$@" -Dtests=disabled >"$work/meson-head-$dir.log" 2>&1
    fi
    ninja -C "$snap/$dir" >"$work/ninja-head-$dir.log" 2>&1 || {
        cat "$work/ninja-head-$dir.log" >&2
        exit 1
    }
    bin="$snap/$dir/src/pod-router"
    bin_source="snapshot of HEAD $(git rev-parse --short HEAD) (working tree did not build)"
}

# start_upstreams: nginx static (HTTP) and the silent Node WebSocket endpoint.
start_upstreams() {
    log "starting upstreams: nginx static :$UP_HTTP, node websocket :$UP_WS"
    write_upstream_nginx
    start upstream-nginx nginx -p "$work/nginx-upstream" -c "$work/nginx-upstream/nginx.conf"
    wait_port "$UP_HTTP"
    start upstream-ws node "$repo/bench/lib/ws-upstream.js" "$UP_WS" "$MAX_SECONDS"
    wait_port "$UP_WS"
}
