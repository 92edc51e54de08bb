#!/usr/bin/env bash
# Only the reconnect-storm step of the workload (bench/lib/workload.sh wl_storm): rooms of
# participants joined through the proxy, pod p1 killed (SIGKILL, its heartbeats stop), the load
# generator times until every participant is back in its room.
#
#   bash bench/storm.sh [COLUMNS...]        default columns: pr1 pr1r hap1 (ngx1 also works)
#
# Knobs (environment): BENCH_ROUNDS (storms per column, 3), BENCH_ROOMS (20), BENCH_PER_ROOM (5),
# BENCH_WS_DURATION (6), BENCH_PORT_BASE (18500), STORM_BIN (the pod-router binary to measure,
# e.g. another branch's build; default: the release build of this tree in build-bench/, built
# if needed). Prints one line per storm and the median per column; it never asserts. Every
# process it starts is bounded by `timeout` and stopped by the exit trap.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
QUICK=0
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$repo/bench/lib/common.sh"
work="$out_dir/storm-work"
# shellcheck source-path=SCRIPTDIR source=lib/workload.sh
. "$repo/bench/lib/workload.sh"
WL_TSV="$out_dir/storm.tsv"
WL_ROOMS="${BENCH_ROOMS:-20}"
WL_PER_ROOM="${BENCH_PER_ROOM:-5}"
rounds="${BENCH_ROUNDS:-3}"
cols=("$@")
[ "${#cols[@]}" -gt 0 ] || cols=(pr1 pr1r hap1)

preflight
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$work"
mkdir -p "$work"
: >"$WL_TSV"
build_router
bench_bin="$(dirname "$(dirname "$bin")")/bench"
[ -n "${STORM_BIN:-}" ] && bin="$STORM_BIN"
log "pod-router binary: $bin"
wl_start_pods
wl_start_redis
for round in $(seq 1 "$rounds"); do
    for col in "${cols[@]}"; do
        if wl_start_proxy "$col" storm; then wl_storm "$col"; fi
        wl_stop_proxy
    done
done
cleanup
for col in "${cols[@]}"; do
    awk -F'\t' -v c="$col" '$2 == c && $3 == "storm_ms" {print $4}' "$WL_TSV" | sort -n |
        awk -v c="$col" '{v[NR] = $1} END {
            if (!NR) { print c ": no storm measured"; exit }
            s = ""; for (i = 1; i <= NR; i++) s = s (i > 1 ? " " : "") v[i]
            printf "%s: all participants back after %s ms (median of %d: %s)\n", c, v[int((NR + 1) / 2)], NR, s }'
done
