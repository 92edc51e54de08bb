#!/usr/bin/env bash
# Configure (once) and build a meson build directory: scripts/build.sh [dir] [meson options...]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-build}"
shift || true
cd "$repo"
if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" -Dtests=enabled "$@" >/dev/null
fi
ninja -C "$dir" >/dev/null
