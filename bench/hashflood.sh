#!/usr/bin/env bash
# Hash flooding of the store's table: participantIds chosen so that they all land in one bucket
# of the table hash pod-router used before cc344dd (unkeyed FNV-1a with an avalanche), sent
# through a router, against as many ordinary ids. A router whose table hash is keyed per
# process (SipHash-1-3, cc344dd) serves both alike; the old one spends its CPU walking one chain.
#
#   OLD_BIN=/path/to/old/pod-router bash bench/hashflood.sh     (NEW_BIN: build/src/pod-router)
#
# Knobs: FLOOD_KEYS (20000; finding them takes ~1 min of CPU), FLOOD_SECS (10), FLOOD_PORT (19300;
# uses three ports). Everything listens on 127.0.0.1 and is stopped by PID.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
NEW_BIN="${NEW_BIN:-$repo/build/src/pod-router}"
POD_BIN="${POD_BIN:-$repo/build/bench/bench-pod}"
N="${FLOOD_KEYS:-20000}" SECS="${FLOOD_SECS:-10}" P="${FLOOD_PORT:-19300}"
work="$(mktemp -d)"
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$work/gen.c" <<'C'
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
/* The table hash before cc344dd, kind PR_KEY_PARTICIPANT (2). Argument 2 present: any ids. */
static uint64_t old_hash(uint8_t seed, const char *d, size_t len)
{
    uint64_t h = (0xcbf29ce484222325u ^ seed) * 0x100000001b3u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)d[i]) * 0x100000001b3u;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53u;
    return h ^ (h >> 33);
}
int main(int argc, char **argv)
{
    int want = atoi(argv[1]), got = 0;
    char k[64];
    for (unsigned long long i = 0; got < want; i++) {
        int n = snprintf(k, sizeof(k), "flood%llx", i);
        if (argc > 2 || (old_hash(2, k, (size_t)n) & 0xffff) == 0x1234) { /* one bucket of <= 65536 */
            puts(k);
            got++;
        }
    }
    return 0;
}
C
cc -O2 -o "$work/gen" "$work/gen.c"
echo "hashflood: finding $N participantIds in one bucket of the old hash..." >&2
"$work/gen" "$N" >"$work/flood.txt"
"$work/gen" "$N" any >"$work/plain.txt"
cat >"$work/keys.lua" <<'L'
local keys, n = {}, 0
init = function(args) for l in io.lines(args[1]) do keys[#keys + 1] = l end end
request = function()
  n = n + 1
  return wrk.format("GET", "/api/x?participantId=" .. keys[(n % #keys) + 1])
end
L

run() { # BIN KEYS -> "req/s cpu_us_per_req"
    "$POD_BIN" --listen "127.0.0.1:$P" --name p0 >/dev/null 2>&1 &
    local pod=$!
    "$1" serve --listen "127.0.0.1:$((P + 1))" --admin-listen "127.0.0.1:$((P + 2))" --threads 1 \
        --access-log false --log-level error --pod-ttl 1h --key-rate 0 >/dev/null 2>&1 &
    local r=$!
    pids+=("$pod" "$r")
    for _ in $(seq 1 100); do
        curl -fsS -m 1 -o /dev/null -X PUT -H 'Content-Type: application/json' \
            -d "{\"address\":\"127.0.0.1:$P\"}" "http://127.0.0.1:$((P + 2))/v1/pods/p0" 2>/dev/null && break
        sleep 0.05
    done
    local t0 t1 out
    t0=$(awk '{print $14 + $15}' "/proc/$r/stat")
    out=$(timeout $((SECS + 30)) wrk -t1 -c8 -d"${SECS}s" -s "$work/keys.lua" "http://127.0.0.1:$((P + 1))/" -- "$2")
    t1=$(awk '{print $14 + $15}' "/proc/$r/stat")
    kill "$r" "$pod"
    wait "$r" "$pod" 2>/dev/null || true
    local reqs rps
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    awk -v r="$rps" -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" \
        'BEGIN {printf "%10.0f req/s %8.1f us CPU per request\n", r, d / hz * 1e6 / n}'
}

printf '%-28s %s\n' "binary, ids" "result"
for bin in ${OLD_BIN:+"$OLD_BIN"} "$NEW_BIN"; do
    for set in flood plain; do
        printf '%-28s %s\n' "$( [ "$bin" = "$NEW_BIN" ] && echo new || echo old ), $set" "$(run "$bin" "$work/$set.txt")"
    done
done
