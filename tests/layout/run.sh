#!/usr/bin/env bash
# Layout checks (issue 12): function and file sizes, include and call cycles over src/ and
# include/, against tests/layout/exceptions.txt; first a self-test on fixtures proving the
# checker reports what it must. Needs a build: tests/layout/run.sh [builddir] (default build).
# Last line: "N passed, N failed".
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo" || exit 1
build="${1:-build}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

echo "--- self-test on tests/layout/fixtures"
python3 tests/layout/selftest.py 2>&1 | tee "$log"
echo "--- src/ and include/ (objects from $build/)"
python3 tests/layout/check.py --root . --build "$build" \
    --exceptions tests/layout/exceptions.txt 2>&1 | tee -a "$log"

passed="$(grep -c '^ok ' "$log")"
failed="$(grep -c '^FAIL ' "$log")"
# A crash of either script prints no verdict line for the remaining checks: count it.
if grep -q '^Traceback' "$log"; then failed=$((failed + 1)); fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
