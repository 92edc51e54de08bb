#!/usr/bin/env bash
# Offline checks of everything that deploys pod-router: docker/, deploy/,
# .github/workflows/ (docs/deployment.md, "Checks").
#
#   bash tests/deploy/run.sh
#
# One line per check, "ok - name" or "not ok - name" (details follow as
# "#   ..." lines), and as the last line "N passed, N failed". Exits 1 when a
# check failed. Needs kubectl (for `kubectl kustomize`), node >= 18 and npm;
# installs yamllint, shellcheck and the C build dependencies with apt-get
# when they are missing and it runs as root, and its npm dependencies with
# `npm ci` when tests/deploy/node_modules is missing.
set -uo pipefail

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
root=$(CDPATH='' cd -- "$here/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pod-router-deploy-tests.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

passed=0
failed=0

pass() {
    echo "ok - $1"
    passed=$((passed + 1))
}

fail() {
    echo "not ok - $1"
    failed=$((failed + 1))
}

skip() {
    echo "# skip - $1"
}

# check NAME COMMAND...: one counted check; the command's output is shown
# (indented) only when it fails.
check() {
    local name=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then
        pass "$name"
    else
        fail "$name"
        tail -n 60 "$tmp/out" | sed -e 's/^/#   /'
    fi
}

# counted FILE: echoes a node checker's output and counts its ok/not ok lines.
counted() {
    local line
    while IFS= read -r line; do
        case $line in
            "ok - "*) passed=$((passed + 1)) ;;
            "not ok - "*) failed=$((failed + 1)) ;;
        esac
        echo "$line"
    done <"$1"
}

# node_check NAME COMMAND...: runs a node checker; if it crashed without
# reporting, that is one failed check.
node_check() {
    local name=$1
    shift
    local before=$((passed + failed))
    "$@" >"$tmp/node.out" 2>"$tmp/node.err"
    local rc=$?
    counted "$tmp/node.out"
    if [ $((passed + failed)) -eq "$before" ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; }; then
        fail "$name (exit status $rc)"
        tail -n 30 "$tmp/node.err" | sed -e 's/^/#   /'
    fi
}

# ---- tools -----------------------------------------------------------------

apt_updated=0
# ensure_debs PKG...: installs the Debian packages that are missing, when
# running as root on a machine with apt-get (CI, the dev machines).
ensure_debs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "# missing Debian packages (not root, not installing): ${missing[*]}"
        return 1
    fi
    echo "# installing ${missing[*]}"
    if [ "$apt_updated" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if command -v dpkg-query >/dev/null 2>&1; then
    ensure_debs yamllint shellcheck binutils docker-compose \
        meson ninja-build pkg-config gcc libc6-dev libuv1-dev libhiredis-dev libcjson-dev libssl-dev node-llhttp || true
fi

cd "$root" || exit 2

# ---- npm dependencies ------------------------------------------------------

if [ -d "$here/node_modules" ] && [ "$here/node_modules/.package-lock.json" -nt "$here/package-lock.json" ]; then
    check "npm dependencies of tests/deploy installed (npm ls)" npm --prefix "$here" ls --depth=0
else
    check "npm ci in tests/deploy" npm --prefix "$here" ci --no-audit --no-fund
fi

# ---- renders ---------------------------------------------------------------

renders=()
render() {
    local name=$1 dir=$2
    if ! command -v kubectl >/dev/null 2>&1; then
        fail "kustomize: render $dir (kubectl not installed)"
        return
    fi
    if kubectl kustomize "$dir" >"$tmp/$name.yaml" 2>"$tmp/render.err"; then
        pass "kustomize: render $dir"
        renders+=("$name=$tmp/$name.yaml")
    else
        fail "kustomize: render $dir"
        sed -e 's/^/#   /' "$tmp/render.err" | tail -n 30
    fi
}

render base deploy/k8s/base
for overlay in deploy/k8s/overlays/*/; do
    overlay=${overlay%/}
    render "$(basename "$overlay")" "$overlay"
done
if [ -f deploy/monitoring/kustomization.yaml ]; then
    render monitoring deploy/monitoring
else
    skip "kustomize: render deploy/monitoring (no kustomization.yaml)"
fi

node_check "manifest checks" node "$here/manifests.mjs" "${renders[@]}"

# RBAC sufficiency of the CI identity and release independence (issue 9).
rbac_args=()
for r in "${renders[@]}"; do
    case $r in production=* | development=*) rbac_args+=("$r") ;; esac
done
node_check "rbac checks" node "$here/rbac.mjs" "$root" "${rbac_args[@]}"
if command -v kubectl >/dev/null 2>&1; then
    node_check "release checks" node "$here/release.mjs" "$root"
else
    fail "release independence (kubectl not installed)"
fi

# ---- workflows -------------------------------------------------------------

node_check "workflow checks" node "$here/workflows.mjs" "$root"

# ---- docker ----------------------------------------------------------------

node_check "docker checks" node "$here/docker.mjs" static "$root"

if docker compose version >/dev/null 2>&1; then
    check "docker compose config: docker/compose.yaml" docker compose -f docker/compose.yaml config -q
elif command -v docker-compose >/dev/null 2>&1; then
    check "docker-compose config: docker/compose.yaml" docker-compose -f docker/compose.yaml config -q
else
    skip "docker compose config (no compose CLI here; compose.yaml is checked structurally above and by yamllint)"
fi

# ---- yamllint and shellcheck -----------------------------------------------

# Every file of the repository with the given name patterns, outside
# node_modules, .git and build directories.
repo_files() {
    local args=() first=1 p
    for p in "$@"; do
        [ "$first" -eq 1 ] || args+=(-o)
        args+=(-name "$p")
        first=0
    done
    find . \( -name node_modules -o -name .git -o \( -type d -name 'build*' \) \) -prune \
        -o -type f \( "${args[@]}" \) -print | sed -e 's|^\./||' | sort
}

mapfile -t yaml_files < <(repo_files '*.yml' '*.yaml')
if command -v yamllint >/dev/null 2>&1; then
    check "yamllint (.yamllint) on ${#yaml_files[@]} YAML files" yamllint -c .yamllint "${yaml_files[@]}"
else
    fail "yamllint on ${#yaml_files[@]} YAML files (yamllint not installed)"
fi

mapfile -t sh_files < <(repo_files '*.sh')
[ -f .ci/run ] && sh_files+=(.ci/run)
if command -v shellcheck >/dev/null 2>&1; then
    check "shellcheck on ${#sh_files[@]} shell scripts" shellcheck -x "${sh_files[@]}"
else
    fail "shellcheck on ${#sh_files[@]} shell scripts (shellcheck not installed)"
fi

# ---- host build with docker/build.sh ---------------------------------------

# Build from a copy of exactly what the image's build stage copies, so a
# file missing from the image's build context fails here too.
build_ok=0
ctx=$tmp/context
mkdir -p "$ctx"
copy_context() {
    local p
    while IFS= read -r p; do
        [ -n "$p" ] || continue
        cp -a --parents "${p%/}" "$ctx/" || return 1
    done < <(node "$here/docker.mjs" build-context "$root")
}
if check "image build context copied (COPY lines of docker/Dockerfile)" copy_context &&
    check "host build: docker/build.sh (release, tests disabled) into a temp DESTDIR" \
        env BUILD_DIR="$tmp/build" sh "$ctx/docker/build.sh" "$tmp/install" /usr/local; then
    build_ok=1
fi

bin=$tmp/install/usr/local/bin/pod-router
version=$(sed -n "s/^[[:space:]]*version[[:space:]]*:[[:space:]]*'\([^']*\)'.*/\1/p" meson.build | head -n 1)
version_ok() {
    local out rc=0
    out=$("$bin" --version 2>&1) || rc=$?
    echo "$out"
    if [ "$rc" -ne 0 ]; then
        echo "exit status $rc"
        return 1
    fi
    case $out in
        *"$version"*) return 0 ;;
        *) echo "--version does not print the project version $version"; return 1 ;;
    esac
}
if [ "$build_ok" -eq 1 ]; then
    check "installed binary runs: pod-router --version prints $version" version_ok
    node_check "runtime library check" node "$here/docker.mjs" runtime-libs "$root" "$bin"
    render_files=()
    for r in "${renders[@]}"; do
        case $r in monitoring=*) ;; *) render_files+=("${r#*=}") ;; esac
    done
    node_check "flag check" node "$here/flags.mjs" "$bin" docker/compose.yaml "${render_files[@]}"
else
    fail "installed binary runs: pod-router --version (build failed)"
    fail "runtime stage provides every shared library of the built binary (build failed)"
    fail "pod-router arguments in deploy/k8s and docker/compose.yaml are flags of the built binary (build failed)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
