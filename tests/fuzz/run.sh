#!/usr/bin/env bash
# Build the libFuzzer targets with clang (build dir build-fuzz) and run each for a bounded
# time on its seed corpus, after replaying its regression inputs. A crash, sanitizer report,
# leak, timeout or invariant violation fails the target. Last line: "N passed, N failed".
#
#   FUZZ_SECONDS=60   time per target (CI default); e.g. FUZZ_SECONDS=1800 for a long run
#   FUZZ_TARGETS="proxy_fuzz pipeline_fuzz tunnel_fuzz affinity_fuzz admin_fuzz redis_fuzz store_fuzz http_client_fuzz"
#   FUZZ_JOBS=1       targets run at once (the machine is shared: keep it small)
#
# Corpora grown by a run live in build-fuzz/corpus/<target> (not in git). Inputs in
# tests/fuzz/corpus/proxy_client (raw client streams) and tests/fuzz/corpus/proxy_pod (raw
# pod responses) are used as seeds when present; see tests/fuzz/proxy_fuzz.c for the format.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo" || exit 1
bdir="$repo/build-fuzz"
fdir="$repo/tests/fuzz"
secs="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-proxy_fuzz pipeline_fuzz tunnel_fuzz affinity_fuzz admin_fuzz redis_fuzz store_fuzz http_client_fuzz}"
jobs="${FUZZ_JOBS:-1}"
passed=0
failed=0

if ! command -v clang >/dev/null; then
    echo "clang not found (scripts/install-deps.sh installs clang and libclang-rt-dev)"
    echo "0 passed, 1 failed"
    exit 1
fi
if [ ! -f "$bdir/build.ninja" ]; then
    CC=clang meson setup "$bdir" -Dfuzz=true -Dtests=disabled >/dev/null || {
        echo "FAILED: meson setup build-fuzz"
        echo "0 passed, 1 failed"
        exit 1
    }
fi
if ! ninja -C "$bdir" >"$bdir/ninja.log" 2>&1; then
    tail -n 30 "$bdir/ninja.log"
    echo "FAILED: building the fuzz targets"
    echo "0 passed, 1 failed"
    exit 1
fi

GET_REQ=$'GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: a\r\n\r\n'

# Seed corpus of a target into build-fuzz/corpus/<target> (kept between runs).
prepare_corpus() {
    local t="$1" c="$bdir/corpus/$1" f
    mkdir -p "$c"
    case "$t" in
    proxy_fuzz)
        cp -n "$fdir"/corpus/proxy_seeds/* "$c"/ 2>/dev/null
        # Raw client streams are valid scripts as they are (client 0, automatic pod).
        [ -d "$fdir/corpus/proxy_client" ] && cp -n "$fdir"/corpus/proxy_client/* "$c"/ 2>/dev/null
        # Raw pod responses: a polling GET from client 0, then the pod sends the file.
        if [ -d "$fdir/corpus/proxy_pod" ]; then
            for f in "$fdir"/corpus/proxy_pod/*; do
                [ -f "$f" ] || continue
                [ -e "$c/pod-$(basename "$f")" ] && continue
                { printf '%s' "$GET_REQ"; printf '\377p'; cat "$f"; } >"$c/pod-$(basename "$f")"
            done
        fi
        ;;
    pipeline_fuzz)
        cp -n "$fdir"/corpus/pipeline_seeds/* "$c"/ 2>/dev/null
        [ -d "$fdir/corpus/proxy_client" ] && cp -n "$fdir"/corpus/proxy_client/* "$c"/ 2>/dev/null
        ;;
    tunnel_fuzz)
        cp -n "$fdir"/corpus/tunnel_seeds/* "$c"/ 2>/dev/null
        ;;
    affinity_fuzz | admin_fuzz | redis_fuzz | store_fuzz | http_client_fuzz)
        [ -d "$fdir/corpus/$t" ] && cp -n "$fdir/corpus/$t"/* "$c"/ 2>/dev/null
        ;;
    esac
    # Past crashers are good starting points too, once they run clean.
    [ "${2:-0}" = 1 ] && [ -d "$fdir/regressions/$t" ] && cp -n "$fdir/regressions/$t"/* "$c"/ 2>/dev/null
    [ -n "$(ls -A "$c")" ] || printf 'x' >"$c/empty-seed"
    return 0
}

flags_for() {
    case "$1" in
    proxy_fuzz | tunnel_fuzz) echo "-max_len=16384 -len_control=0 -dict=$fdir/http.dict" ;;
    pipeline_fuzz) echo "-max_len=65536 -dict=$fdir/http.dict" ;;
    *) echo "-max_len=4096" ;;
    esac
}

# Replay the saved regression inputs of a target: each must now run clean.
replay() {
    local t="$1" bin="$bdir/tests/fuzz/$1" d="$fdir/regressions/$1" log
    if [ ! -d "$d" ] || [ -z "$(ls -A "$d" 2>/dev/null)" ]; then
        replay_ok=1
        return 0
    fi
    log="$bdir/logs/$t-regressions.log"
    # shellcheck disable=SC2046
    if "$bin" -close_fd_mask=1 -runs=1 $(flags_for "$t") "$d"/* >"$log" 2>&1; then
        echo "$t regressions ($(find "$d" -maxdepth 1 -type f | wc -l) inputs): passed"
        passed=$((passed + 1))
        replay_ok=1
    else
        echo "$t regressions: FAILED"
        grep -E 'Running: |invariant|ERROR|SUMMARY|^    #[0-9] ' "$log" | head -n 25
        failed=$((failed + 1))
    fi
}

run_one() {
    local t="$1" bin="$bdir/tests/fuzz/$1" log="$bdir/logs/$1.log"
    mkdir -p "$bdir/artifacts"
    # shellcheck disable=SC2046
    nice -n 10 "$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
        -close_fd_mask=1 -print_final_stats=1 -artifact_prefix="$bdir/artifacts/$t-" \
        $(flags_for "$t") "$bdir/corpus/$t" >"$log" 2>&1
    echo $? >"$log.rc"
}

mkdir -p "$bdir/logs"
for t in $targets; do
    if [ ! -x "$bdir/tests/fuzz/$t" ]; then
        echo "FAILED: no target $t"
        failed=$((failed + 1))
        continue
    fi
    replay_ok=0
    replay "$t"
    prepare_corpus "$t" "$replay_ok"
done

running=0
for t in $targets; do
    [ -x "$bdir/tests/fuzz/$t" ] || continue
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

for t in $targets; do
    log="$bdir/logs/$t.log"
    [ -f "$log.rc" ] || continue
    rc="$(cat "$log.rc")"
    execs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')"
    last="$(grep -E '^#[0-9]+' "$log" | tail -n 1)"
    cov="$(echo "$last" | grep -oE 'cov: [0-9]+ ft: [0-9]+')"
    if [ "$rc" = 0 ] && ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|invariant violated' "$log"; then
        echo "$t: passed (${secs}s, ${execs:-?} execs, ${cov:-no coverage line})"
        passed=$((passed + 1))
    else
        echo "$t: FAILED (exit $rc); log $log"
        grep -E 'invariant|ERROR|SUMMARY|^    #[0-9] |Test unit written' "$log" | head -n 30
        failed=$((failed + 1))
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
