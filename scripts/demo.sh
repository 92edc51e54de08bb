#!/usr/bin/env bash
# README command 1: install, build, and run a live demo (router + 3 Socket.IO pods).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/install-deps.sh"
bash "$repo/scripts/build.sh" build
for d in examples/backend tests/e2e; do
    if [ ! -d "$repo/$d/node_modules" ]; then
        (cd "$repo/$d" && npm ci --no-audit --no-fund --loglevel=error)
    fi
done
exec bash "$repo/examples/demo.sh"
