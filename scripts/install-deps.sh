#!/usr/bin/env bash
# Install what building, running and testing pod-router needs on Debian 12 (idempotent).
set -euo pipefail

packages=(
    meson ninja-build pkg-config gcc libuv1-dev libhiredis-dev libwebsockets-dev
    libcjson-dev libcriterion-dev libssl-dev node-llhttp redis-server redis-sentinel
    haproxy nginx wrk prometheus yamllint shellcheck nodejs npm curl
    clang libclang-rt-14-dev chromium python3 python3-h11
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from outside Debian (a newer build already on PATH): keep it.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    filtered=()
    for p in "${missing[@]}"; do
        [ "$p" = nodejs ] || [ "$p" = npm ] || filtered+=("$p")
    done
    missing=("${filtered[@]}")
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}" >&2
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
