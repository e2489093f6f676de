#!/usr/bin/env bash
# Runs the whole test suite against a throwaway PostgreSQL 15.
#
#   tools/test.sh                  set up, build, start PostgreSQL, run every suite, stop it
#   tools/test.sh -R manifest      extra arguments go to ctest (here: only tests matching "manifest")
#
# Steps: tools/setup.sh (packages + build), tools/pg.sh start, then
#   ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 [ARGS...]
# then the optional suites tools/bench/compat_test.sh and tests/node/run.sh when they exist and are
# executable. The tests find the database through MT_TEST_DATABASE_URL (DATABASE_URL, BUILD_DIR
# and MT_MTCTL, the built mtctl, are exported too). PostgreSQL is stopped on exit (also on failure or Ctrl-C) if this script started it; one that
# was already running (e.g. left by tools/demo.sh) is left running.
#
# Exit status: ctest's status when it fails, else 1 when an optional suite fails, else 0.
#
# Environment: BUILD_DIR (default <repo>/build), MT_SKIP_EXTRA_SUITES=1 to run ctest only,
# plus whatever tools/setup.sh and tools/pg.sh read.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$REPO_ROOT/build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$PWD/$BUILD_DIR ;; esac
export BUILD_DIR
cd "$REPO_ROOT"

log() { printf 'test: %s\n' "$*" >&2; }

tools/setup.sh

started_pg=0
# shellcheck disable=SC2317  # only called from the EXIT trap
stop_pg() {
  if [ "$started_pg" -eq 1 ]; then
    tools/pg.sh stop || log "warning: could not stop PostgreSQL (tools/pg.sh stop)"
  fi
}
trap stop_pg EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! tools/pg.sh status 2>/dev/null; then
  started_pg=1
fi
pg_env=$(tools/pg.sh start)
eval "$pg_env"
export MT_TEST_DATABASE_URL DATABASE_URL
export MT_MTCTL=$BUILD_DIR/bin/mtctl
log "MT_TEST_DATABASE_URL=$MT_TEST_DATABASE_URL"

status=0
if ctest --test-dir "$BUILD_DIR" --output-on-failure --no-tests=error -j2 "$@"; then
  :
else
  status=$?
  log "ctest failed (exit $status)"
fi

if [ "${MT_SKIP_EXTRA_SUITES:-0}" != 1 ]; then
  for suite in tools/bench/compat_test.sh tests/node/run.sh; do
    if [ -x "$suite" ]; then
      log "running $suite"
      if ! "$suite"; then
        log "$suite failed"
        if [ "$status" -eq 0 ]; then status=1; fi
      fi
    fi
  done
fi

if [ "$status" -eq 0 ]; then log "all suites passed"; fi
exit "$status"
