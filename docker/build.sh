#!/bin/sh
# Build pod-router in release mode and install it under a staging root.
#
#   docker/build.sh DESTDIR [PREFIX]
#
# The binary ends up in DESTDIR/PREFIX/bin/pod-router (PREFIX defaults to
# /usr/local). The image build (docker/Dockerfile) and the host CI check
# (tests/deploy/run.sh) run this same script, so a build that breaks the
# image breaks CI first.
#
# Build dependencies (Debian 12 package names, the same list as the build
# stage of docker/Dockerfile):
#   meson ninja-build pkg-config gcc libc6-dev libuv1-dev libhiredis-dev
#   libcjson-dev libssl-dev node-llhttp libwebsockets-dev
#
# Environment: BUILD_DIR (default: a fresh temporary directory, removed at
# exit) and MESON_ARGS (extra `meson setup` arguments, word-split).
set -eu

usage() {
    echo "usage: $0 DESTDIR [PREFIX]" >&2
    exit 2
}

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ] || [ -z "$1" ]; then
    usage
fi

destdir=$1
prefix=${2:-/usr/local}
case $prefix in
    /*) ;;
    *) echo "$0: PREFIX must be absolute, got '$prefix'" >&2; exit 2 ;;
esac

srcdir=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
mkdir -p -- "$destdir"
destdir=$(CDPATH='' cd -- "$destdir" && pwd)

if [ -n "${BUILD_DIR:-}" ]; then
    builddir=$BUILD_DIR
    rm -rf -- "$builddir"
else
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/pod-router-build.XXXXXX")
    trap 'rm -rf -- "$tmp"' EXIT INT TERM
    builddir=$tmp/build
fi

# shellcheck disable=SC2086 # MESON_ARGS is a list of arguments on purpose
meson setup "$builddir" "$srcdir" \
    --buildtype=release \
    --prefix="$prefix" \
    -Dtests=disabled \
    -Dbench=disabled \
    ${MESON_ARGS:-}
ninja -C "$builddir"
DESTDIR=$destdir meson install -C "$builddir" --no-rebuild --strip

bin=$destdir$prefix/bin/pod-router
if [ ! -x "$bin" ]; then
    echo "$0: $bin was not installed" >&2
    exit 1
fi
echo "installed $bin"
