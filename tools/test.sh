#!/usr/bin/env bash
# Runs the whole test suite against a throwaway PostgreSQL 15: what CI runs (.ci/run).
#
#   tools/test.sh                  set up, build, start PostgreSQL, run every suite, stop it
#   tools/test.sh -R manifest      extra arguments go to the normal suite's ctest (here: only tests
#                                  matching "manifest")
#   MT_SUITES="normal asan" tools/test.sh    only the suites named
#
# Suites, in this order (MT_SUITES selects; default: all of them):
#   normal   ctest in $BUILD_DIR: every Catch test, the compile check, the 60 s chaos run
#   node     tests/node/run.sh: drizzle-orm's migrator and mtctl on one database
#   drizzle-kit  tests/drizzle-kit/run.sh: drizzle-kit generates samples/drizzle-project in steps,
#            mtctl applies each unedited to 50 tenants; drizzle-orm and drizzle-multitenant check
#   compat   tools/bench/compat_test.sh: drizzle-multitenant 1.3.5 and mtctl on one database
#   asan     tools/sanitize.sh asan: the whole ctest suite built with ASan+UBSan (build-asan)
#   tsan     tools/sanitize.sh tsan: the runtime and concurrency tests built with TSan (build-tsan)
#   fuzz     tools/fuzz.sh: every libFuzzer target for its bounded time (build-fuzz, clang-16)
# A suite whose script is missing or not executable fails the run: nothing is skipped silently.
#
# Steps: tools/setup.sh (packages + build), tools/pg.sh start, then the suites. The tests find the
# database through MT_TEST_DATABASE_URL (DATABASE_URL, BUILD_DIR and MT_MTCTL, the built mtctl,
# are exported too). PostgreSQL is stopped on exit (also on failure or Ctrl-C) if this script
# started it; one that was already running (e.g. left by tools/demo.sh) is left running.
# Every suite runs even after an earlier one failed; the end prints each suite's result and time.
#
# Exit status: 0 when every selected suite passed, 1 when any failed, 2 on a bad MT_SUITES.
#
# Environment: BUILD_DIR (default <repo>/build; the sanitizer and fuzz trees sit beside it as
# <repo>/build-asan, build-tsan, build-fuzz), MT_SUITES, plus whatever tools/setup.sh,
# tools/pg.sh, tools/sanitize.sh and tools/fuzz.sh read.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$REPO_ROOT/build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$PWD/$BUILD_DIR ;; esac
export BUILD_DIR
cd "$REPO_ROOT"

ALL_SUITES="normal node drizzle-kit compat asan tsan fuzz"
SUITES=${MT_SUITES:-$ALL_SUITES}
# The old switch: ctest only.
if [ "${MT_SKIP_EXTRA_SUITES:-0}" = 1 ]; then SUITES=normal; fi

log() { printf 'test: %s\n' "$*" >&2; }
die() { printf 'test: error: %s\n' "$*" >&2; exit 2; }

for s in $SUITES; do
  case " $ALL_SUITES " in *" $s "*) ;; *) die "unknown suite '$s' in MT_SUITES (known: $ALL_SUITES)" ;; esac
done

t0=$(date +%s)
tools/setup.sh
log "set-up and build took $(( $(date +%s) - t0 )) s"

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
summary=()
# run_suite NAME COMMAND...: runs one suite, records its result and time. The command's first word
# must be an executable file: a missing suite is a failure, not a skip.
run_suite() {
  local name=$1; shift
  local start rc=0
  start=$(date +%s)
  if [ ! -x "$1" ]; then
    log "suite $name: $1 is missing or not executable"
    rc=127
  else
    log "suite $name: $*"
    "$@" || rc=$?
  fi
  local took=$(( $(date +%s) - start ))
  if [ "$rc" -eq 0 ]; then
    summary+=("$(printf '%-11s passed  %5d s' "$name" "$took")")
  else
    summary+=("$(printf '%-11s FAILED  %5d s  (exit %d)' "$name" "$took" "$rc")")
    status=1
  fi
}

for s in $SUITES; do
  case $s in
    normal) run_suite normal "$(command -v ctest)" --test-dir "$BUILD_DIR" --output-on-failure --no-tests=error -j2 "$@" ;;
    node) run_suite node tests/node/run.sh ;;
    drizzle-kit) run_suite drizzle-kit tests/drizzle-kit/run.sh ;;
    compat) run_suite compat tools/bench/compat_test.sh ;;
    asan) run_suite asan tools/sanitize.sh asan ;;
    tsan) run_suite tsan tools/sanitize.sh tsan ;;
    fuzz) run_suite fuzz tools/fuzz.sh ;;
  esac
done

log "results (total $(( $(date +%s) - t0 )) s, set-up included):"
for line in "${summary[@]}"; do log "  $line"; done
if [ "$status" -eq 0 ]; then log "all suites passed"; fi
exit "$status"
