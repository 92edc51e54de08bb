#!/usr/bin/env bash
# Differential HTTP conformance suite (SPEC v1.1 §3.3-§3.5) against one router build.
#
#   tests/conformance/run.sh [release|asan|selftest]     (default release)
#
# release: build/src/pod-router; asan: build-asan/src/pod-router with ASAN/UBSAN reports
# written to test-output/conformance/asan/san/ (any report is a failing case); selftest: a
# byte-transparent proxy (passthrough.py) in place of the router, against which every case
# must fail (the suite's negative control).
# Environment: POD_ROUTER_BIN (overrides the binary), CONFORMANCE_JOBS (parallel routers,
# default 4), CONFORMANCE_FILTER (regex of case names).
# After the cases, concurrent.py (many hostile connections at once; CONFORMANCE_SEEDS).
# Output: one FAIL line per failing case, a summary per family, per-case details in
# test-output/conformance/<label>/ (cases.jsonl, fail/*.txt, router logs).
# The last line is "N passed, N failed".
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo" || exit 1
label="${1:-release}"
out="$repo/test-output/conformance/$label"
mkdir -p "$out"

# The suite needs Debian's python3-h11 (scripts/install-deps.sh); a pyenv/venv python3
# earlier on PATH may not see it.
py=""
for cand in /usr/bin/python3 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import h11' 2>/dev/null; then
        py="$cand"
        break
    fi
done
if [ -z "$py" ]; then
    echo "conformance: no python3 with h11 (apt-get install python3-h11)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

args=(--out "$out")
[ -n "${CONFORMANCE_FILTER:-}" ] && args+=(--filter "$CONFORMANCE_FILTER")
case "$label" in
release)
    bin="${POD_ROUTER_BIN:-$repo/build/src/pod-router}"
    ;;
asan)
    bin="${POD_ROUTER_BIN:-$repo/build-asan/src/pod-router}"
    san="$out/san"
    rm -rf "$san"
    mkdir -p "$san"
    export ASAN_OPTIONS="detect_leaks=1:log_path=$san/asan"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$san/ubsan"
    args+=(--san-dir "$san")
    ;;
selftest)
    # Negative control: against a byte-transparent proxy every case must fail.
    bin="$repo/tests/conformance/passthrough.py"
    args+=(--filter "${CONFORMANCE_FILTER:-^(?!split)}")
    ;;
*)
    echo "usage: $0 [release|asan|selftest]" >&2
    exit 2
    ;;
esac

status=0
timeout --kill-after=10 "${CONFORMANCE_TIMEOUT:-600}" "$py" tests/conformance/conformance.py --bin "$bin" "${args[@]}" \
    >"$out/run.log" 2>&1 || status=$?
cat "$out/run.log"
if [ "$label" = asan ] && ls "$san"/* >/dev/null 2>&1; then
    echo
    echo "sanitizer reports (full text in $san):"
    for f in "$san"/*; do
        echo "--- $(basename "$f")"
        grep -E 'ERROR|SUMMARY|runtime error|^    #[0-9] ' "$f" | head -n 12
    done
fi
if ! tail -n 1 "$out/run.log" | grep -qE '^[0-9]+ passed, [0-9]+ failed$'; then
    echo "conformance: the run ended without a summary (exit $status)"
    echo "0 passed, 1 failed"
    exit 1
fi
if [ "$label" = selftest ]; then
    # Turn it around: each case that failed against the passthrough counts as passed.
    line="$(tail -n 1 "$out/run.log")"
    p="$(echo "$line" | awk '{print $1}')"
    f="$(echo "$line" | awk '{print $3}')"
    [ "$p" -gt 0 ] && echo "selftest: $p case(s) passed against a transparent proxy (see $out/cases.jsonl)"
    echo "$f passed, $p failed"
    [ "$p" -eq 0 ]
    exit
fi
# The concurrency family (concurrent.py): many hostile connections at once, one result per seed.
cstatus=0
timeout --kill-after=10 300 "$py" tests/conformance/concurrent.py --bin "$bin" --out "$out/concurrent" \
    --seeds "${CONFORMANCE_SEEDS:-11,12,13,14,15}" ${san:+--san-dir "$san"} >"$out/concurrent.log" 2>&1 || cstatus=$?
cat "$out/concurrent.log"
line="$(tail -n 1 "$out/run.log")"
cline="$(tail -n 1 "$out/concurrent.log")"
if ! echo "$cline" | grep -qE '^[0-9]+ passed, [0-9]+ failed$'; then
    echo "conformance: the concurrency family ended without a summary (exit $cstatus)"
    cline="0 passed, 1 failed"
    cstatus=1
fi
echo "$line" "$cline" | awk '{print $1 + $5 " passed, " $3 + $7 " failed"}'
[ "$status" -eq 0 ] && [ "$cstatus" -eq 0 ]
