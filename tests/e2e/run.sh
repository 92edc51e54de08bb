#!/usr/bin/env bash
# End-to-end suite: real router binary, real Socket.IO pods and clients.
#
#   tests/e2e/run.sh [test files...]      (default: tests/e2e/*.test.js)
#
# Environment: POD_ROUTER_BIN (default build/src/pod-router),
# E2E_TIMEOUT seconds for the whole run (default 900).
# Output: spec on stdout, TAP in test-output/e2e/results.tap, logs of every
# router and pod in test-output/e2e/. The last line is "N passed, N failed".
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
out="$repo/test-output/e2e"
mkdir -p "$out"
tap="$out/results.tap"
rm -f "$tap"

# npm ci when node_modules is missing or older than the lock file.
install_deps() {
    local dir="$1"
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        echo "e2e: npm ci in ${dir#"$repo"/}" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
    fi
}

summary() {
    echo "$1 passed, $2 failed"
}

if ! install_deps "$repo/examples/backend" || ! install_deps "$repo/tests/e2e"; then
    echo "e2e: installing npm dependencies failed" >&2
    summary 0 1
    exit 1
fi

bin="${POD_ROUTER_BIN:-$repo/build/src/pod-router}"
if [ ! -x "$bin" ]; then
    echo "e2e: no router binary at $bin (meson setup build && ninja -C build, or set POD_ROUTER_BIN)" >&2
fi
export POD_ROUTER_BIN="$bin"

if [ "$#" -gt 0 ]; then
    files=("$@")
else
    files=("$repo"/tests/e2e/*.test.js)
fi

status=0
timeout --kill-after=10 "${E2E_TIMEOUT:-900}" \
    node --test --test-concurrency=1 \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" \
    "${files[@]}" || status=$?

# Counts of test cases from the TAP summary (suites are not counted).
count() {
    local n
    n="$(grep -E "^# $1 [0-9]+$" "$tap" 2>/dev/null | tail -n 1 | awk '{print $3}')" || true
    echo "${n:-0}"
}
passed="$(count pass)"
failed="$(( $(count fail) + $(count cancelled) ))"

if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "e2e: the run exceeded ${E2E_TIMEOUT:-900} s and was stopped" >&2
fi
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    # The runner failed without reporting a failed test (crash, timeout).
    failed=1
fi
if [ "$failed" -gt 0 ] && [ "$status" -eq 0 ]; then
    status=1
fi
summary "$passed" "$failed"
exit "$status"
