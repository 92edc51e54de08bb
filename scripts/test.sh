#!/usr/bin/env bash
# README command 2: install, build and run the whole test suite.
#   unit tests (Criterion), the same under ASan/UBSan/LSan, end-to-end tests with real
#   processes (also against the sanitizer build), the differential HTTP conformance suite
#   (release and sanitizer builds), deployment and monitoring checks.
# The last line is "N passed, N failed".
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo" || exit 1
out="$repo/test-output"
mkdir -p "$out"
passed=0
failed=0

note() { printf '\n=== %s\n' "$*"; }
add() { passed=$((passed + $1)); failed=$((failed + $2)); }
fail_step() { echo "FAILED: $1"; add 0 1; }

# Count "N passed, N failed" from the last such line of a log.
add_summary() {
    local line
    line="$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)"
    if [ -z "$line" ]; then
        fail_step "$2 (no summary line)"
        return
    fi
    add "$(echo "$line" | awk '{print $1}')" "$(echo "$line" | awk '{print $3}')"
}

note "dependencies"
bash scripts/install-deps.sh || { fail_step "install-deps"; echo "$passed passed, $failed failed"; exit 1; }

note "build (release-ish) and sanitizer build"
if ! bash scripts/build.sh build; then
    fail_step "build"
    echo "$passed passed, $failed failed"
    exit 1
fi
asan_ok=1
bash scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false || {
    fail_step "sanitizer build"
    asan_ok=0
}

# Criterion executables print "Synthesis: Tested: N | Passing: N | Failing: N | Crashing: N".
run_unit() {
    local dir="$1" label="$2" t log
    for t in "$dir"/tests/unit/*_test; do
        log="$out/unit-$label-$(basename "$t").log"
        (cd "$repo" && "$t" --jobs=1 >"$log" 2>&1)
        local rc=$?
        local syn
        syn="$(grep -E 'Synthesis: Tested' "$log" | tail -n 1)"
        if [ -z "$syn" ]; then
            fail_step "$label $(basename "$t") (exit $rc, no synthesis)"
            tail -n 20 "$log"
            continue
        fi
        local p f c
        p="$(echo "$syn" | sed -E 's/.*Passing: ([0-9]+).*/\1/')"
        f="$(echo "$syn" | sed -E 's/.*Failing: ([0-9]+).*/\1/')"
        c="$(echo "$syn" | sed -E 's/.*Crashing: ([0-9]+).*/\1/')"
        add "$p" "$((f + c))"
        echo "$label $(basename "$t"): $p passed, $((f + c)) failed"
        if [ "$((f + c))" -gt 0 ] || [ "$rc" -ne 0 ]; then
            grep -E '\[FAIL\]|\[----\]' "$log" | head -n 20
            [ "$rc" -ne 0 ] && [ "$((f + c))" -eq 0 ] && fail_step "$label $(basename "$t") exit $rc"
        fi
        if grep -qE 'LeakSanitizer|AddressSanitizer|runtime error:' "$log"; then
            fail_step "$label $(basename "$t"): sanitizer report"
            grep -E -A5 'LeakSanitizer|AddressSanitizer|runtime error:' "$log" | head -n 30
        fi
    done
}

note "unit tests"
run_unit build unit
if [ "$asan_ok" = 1 ]; then
    note "unit tests under ASan/UBSan/LSan"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        run_unit build-asan asan
fi

note "layout checks (function/file sizes, include and call cycles; tests/layout)"
bash tests/layout/run.sh build 2>&1 | tee "$out/layout.log" | tail -n 40
add_summary "$out/layout.log" "layout checks"

note "end-to-end tests"
bash tests/e2e/run.sh 2>&1 | tee "$out/e2e.log" | grep -vE '^\s+(at |[0-9]+: )' | tail -n 80
add_summary "$out/e2e.log" "e2e"

if [ "$asan_ok" = 1 ]; then
    note "end-to-end tests against the sanitizer build"
    rm -rf "$out/e2e-asan"
    mkdir -p "$out/e2e-asan"
    ASAN_OPTIONS=detect_leaks=1:log_path="$out/e2e-asan/asan" \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path="$out/e2e-asan/ubsan" \
        POD_ROUTER_BIN="$repo/build-asan/src/pod-router" \
        bash tests/e2e/run.sh 2>&1 | tee "$out/e2e-asan.log" | grep -vE '^\s+(at |[0-9]+: )' | tail -n 40
    add_summary "$out/e2e-asan.log" "e2e (sanitizers)"
    if ls "$out"/e2e-asan/asan* "$out"/e2e-asan/ubsan* >/dev/null 2>&1; then
        fail_step "sanitizer reports from the router during e2e"
        head -n 60 "$out"/e2e-asan/asan* "$out"/e2e-asan/ubsan* 2>/dev/null
    else
        echo "no sanitizer report from any router process"
        add 1 0
    fi
fi

note "HTTP conformance (differential, h11) against the release build"
bash tests/conformance/run.sh release 2>&1 | tee "$out/conformance.log" | tail -n 40
add_summary "$out/conformance.log" "conformance"

if [ "$asan_ok" = 1 ]; then
    note "HTTP conformance against the sanitizer build"
    bash tests/conformance/run.sh asan 2>&1 | tee "$out/conformance-asan.log" | tail -n 40
    add_summary "$out/conformance-asan.log" "conformance (sanitizers)"
fi

note "deployment checks"
if [ -f tests/deploy/run.sh ]; then
    bash tests/deploy/run.sh 2>&1 | tee "$out/deploy.log" | tail -n 30
    add_summary "$out/deploy.log" "deploy checks"
fi

note "monitoring checks"
if [ -f tests/monitoring/run.sh ]; then
    bash tests/monitoring/run.sh 2>&1 | tee "$out/monitoring.log" | tail -n 30
    add_summary "$out/monitoring.log" "monitoring checks"
fi

note "room-aware scaling simulation (short variant; SIM_LONG=1 bash tests/sim/run.sh for the long one)"
bash tests/sim/run.sh 2>&1 | tee "$out/sim.log" | tail -n 20
add_summary "$out/sim.log" "scaling simulation"

note "benchmark tooling (bench pod, load generator, bench/run.sh --quick; no figure asserted)"
bash bench/selftest.sh 2>&1 | tee "$out/bench-selftest.log" | tail -n 40
add_summary "$out/bench-selftest.log" "bench selftest"

export FUZZ_SECONDS="${FUZZ_SECONDS:-25}"
note "fuzz targets (libFuzzer + ASan/UBSan, ${FUZZ_SECONDS}s each; FUZZ_SECONDS for longer)"
if [ -f tests/fuzz/run.sh ]; then
    bash tests/fuzz/run.sh 2>&1 | tee "$out/fuzz.log" | grep -vE '^\s+#[0-9]+ ' | tail -n 40
    add_summary "$out/fuzz.log" "fuzz targets"
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
