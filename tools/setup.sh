#!/usr/bin/env bash
# Installs what mtenant needs (Debian 12 packages) and builds it.
#
#   tools/setup.sh                 install missing packages, configure, build
#   tools/setup.sh --no-deps       skip the package step
#   tools/setup.sh --no-build      only install packages
#   tools/setup.sh -- -DFOO=BAR    extra arguments for the CMake configure step
#
# Idempotent: packages already installed are not touched (no apt call at all when everything is
# there), and the build is incremental. Runs as root (CI) or as a user with sudo.
#
# Environment:
#   BUILD_DIR   build tree (default: <repo>/build; a relative path is relative to the current
#               directory)
#   BUILD_TYPE  CMake build type (default: RelWithDebInfo)
#   JOBS        parallel build jobs (default: nproc)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$REPO_ROOT/build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$PWD/$BUILD_DIR ;; esac
export BUILD_DIR

PACKAGES=(
  build-essential cmake pkg-config
  libboost-filesystem-dev libboost-program-options-dev
  libpqxx-dev prometheus-cpp-dev libspdlog-dev catch2 nlohmann-json3-dev libssl-dev
  libcpp-httplib-dev libcrypt-dev
  postgresql-15 postgresql-client-15 pgbouncer prometheus
  nodejs npm wrk curl time
  clang-16 libclang-rt-16-dev llvm-16
  python3-jsonschema systemd
  dpkg-dev file lintian man-db groff-base bash-completion zsh
)

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

do_deps=1
do_build=1
cmake_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --no-deps) do_deps=0 ;;
    --no-build) do_build=0 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; cmake_args=("$@"); break ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

# Prints the packages from PACKAGES that are not fully installed.
missing_packages() {
  local pkg status
  for pkg in "${PACKAGES[@]}"; do
    # A Node.js from NodeSource (as on these machines) bundles npm and conflicts with Debian's npm
    # package: an npm already on the PATH counts as installed.
    if [ "$pkg" = npm ] && command -v npm >/dev/null 2>&1; then
      continue
    fi
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != installed ]; then
      printf '%s\n' "$pkg"
    fi
  done
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run '$*' and sudo is not available"
  fi
}

install_deps() {
  command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script expects Debian 12"
  local missing
  mapfile -t missing < <(missing_packages)
  if [ ${#missing[@]} -eq 0 ]; then
    log "all ${#PACKAGES[@]} packages already installed"
    return 0
  fi
  log "installing: ${missing[*]}"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
}

build() {
  local type=${BUILD_TYPE:-RelWithDebInfo}
  local jobs=${JOBS:-$(nproc)}
  # Build-time flags (docs/architecture.md "Build time"), before the caller's arguments so that
  # those win: line tables (-g1: file:line in stack traces and debuggers, no variables or types)
  # instead of full -g, and the test sources at -O0 (the product they test stays at -O2). Full
  # debug info: tools/setup.sh -- -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g -DNDEBUG".
  local flags=(-DMT_TESTS_EXTRA_FLAGS=-O0)
  if [ "$type" = RelWithDebInfo ]; then
    flags+=(-DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG")
  fi
  log "configuring $BUILD_DIR ($type)"
  cmake -S "$REPO_ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$type" "${flags[@]}" "${cmake_args[@]}"
  log "building with $jobs jobs"
  cmake --build "$BUILD_DIR" -j"$jobs"
  log "built: $BUILD_DIR/bin/mtctl"
}

if [ "$do_deps" -eq 1 ]; then install_deps; fi
if [ "$do_build" -eq 1 ]; then build; fi
