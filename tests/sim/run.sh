#!/usr/bin/env bash
# Room-aware scaling simulation (docs/scaling.md): the real router (two
# replicas, real redis-server), real backend pods and sidecars started and
# stopped by a StatefulSet/HPA emulator, real Socket.IO participants, and one
# backend rollout by deploy/scripts/rollout-backend.sh through a kubectl shim;
# then the same workload with the guide's CPU-only HPA as the baseline.
#
#   bash tests/sim/run.sh            short variant (about 3 minutes; in scripts/test.sh)
#   SIM_LONG=1 bash tests/sim/run.sh long variant (about 8 minutes)
#
# Environment: POD_ROUTER_BIN (default build/src/pod-router), SIM_SEED,
# SIM_NO_ROLLOUT=1 (control run without the backend rollout; its rollout checks fail),
# SIM_OUT (default test-output/sim: samples *.dat, results.json, every log).
# Plot: gnuplot tests/sim/plot.gp (after a run). The last line is
# "N passed, N failed".
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo" || exit 1

install_deps() {
    local dir="$1"
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        echo "sim: npm ci in ${dir#"$repo"/}" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
    fi
}
if ! install_deps "$repo/examples/backend" || ! install_deps "$repo/tests/e2e"; then
    echo "sim: installing npm dependencies failed"
    echo "0 passed, 1 failed"
    exit 1
fi
if ! command -v redis-server >/dev/null 2>&1; then
    echo "sim: redis-server not installed (scripts/install-deps.sh)"
    echo "0 passed, 1 failed"
    exit 1
fi

limit=420
[ "${SIM_LONG:-0}" = 1 ] && limit=1200
status=0
timeout --kill-after=10 "$limit" nice -n 5 node tests/sim/sim.js || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "sim: exceeded ${limit} s and was stopped"
    echo "0 passed, 1 failed"
fi
exit "$status"
