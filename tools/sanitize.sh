#!/usr/bin/env bash
# Builds a sanitizer tree from CMakePresets.json and runs its test suite; fails on any report.
#
#   tools/sanitize.sh asan [CTEST ARGS...]   ASan+UBSan (build-asan): every CTest test, with the
#                                            instrumented mtctl, plugins and samples the tests spawn
#   tools/sanitize.sh tsan [CTEST ARGS...]   TSan (build-tsan): the runtime and concurrency tests,
#                                            the labels of the preset's MT_TESTS_ONLY_TAGS (tenant
#                                            manager, leases, isolation, adapters, serve, HTTP rude
#                                            clients, locks, routing, concurrency, the chaos run)
#
# Extra arguments go to ctest (e.g. -R extract). The database is MT_TEST_DATABASE_URL when set (as
# tools/test.sh exports it); otherwise a PostgreSQL of this tree is started with tools/pg.sh and
# stopped on exit. Every sanitizer report also goes to a file under <tree>/sanitizer-reports: the
# run fails when any exists, even from a process whose exit status no test looked at.
#
# Exit status: ctest's when it fails, else 1 when a report file exists, else 0; 2 on bad usage.
#
# Environment: CMAKE_CXX_COMPILER_LAUNCHER (e.g. ccache), JOBS (build jobs, default nproc),
# CTEST_JOBS (default 2), ASAN_OPTIONS/UBSAN_OPTIONS/LSAN_OPTIONS/TSAN_OPTIONS (appended to ours,
# so they win), plus whatever tools/pg.sh reads.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUPP=$REPO_ROOT/tests/sanitizers

log() { printf 'sanitize: %s\n' "$*" >&2; }
usage() { sed -n '2,21s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

[ $# -ge 1 ] || { usage >&2; exit 2; }
preset=$1
shift
case $preset in
  asan|tsan) ;;
  -h|--help|help) usage; exit 0 ;;
  *) usage >&2; log "error: unknown sanitizer '$preset' (asan or tsan)"; exit 2 ;;
esac
BUILD_DIR=$REPO_ROOT/build-$preset
cd "$REPO_ROOT"

configure_args=()
if [ -n "${CMAKE_CXX_COMPILER_LAUNCHER:-}" ]; then
  configure_args+=("-DCMAKE_CXX_COMPILER_LAUNCHER=$CMAKE_CXX_COMPILER_LAUNCHER")
fi
log "configuring $BUILD_DIR (preset $preset)"
cmake --preset "$preset" "${configure_args[@]}" >/dev/null
log "building with ${JOBS:-$(nproc)} jobs"
cmake --build --preset "$preset" -j"${JOBS:-$(nproc)}"

started_pg=0
# shellcheck disable=SC2317  # only called from the EXIT trap
stop_pg() {
  if [ "$started_pg" -eq 1 ]; then
    BUILD_DIR=$BUILD_DIR tools/pg.sh stop || log "warning: could not stop PostgreSQL (BUILD_DIR=$BUILD_DIR tools/pg.sh stop)"
  fi
}
trap stop_pg EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ -z "${MT_TEST_DATABASE_URL:-}" ]; then
  if ! BUILD_DIR=$BUILD_DIR tools/pg.sh status 2>/dev/null; then started_pg=1; fi
  eval "$(BUILD_DIR=$BUILD_DIR tools/pg.sh start)"
fi
export MT_TEST_DATABASE_URL DATABASE_URL="${DATABASE_URL:-}" BUILD_DIR
# The tests run the mtctl, plugins and http-service of the tree they were built in (paths compiled
# into mt_tests); MT_MTCTL is for scripts that read it.
export MT_MTCTL=$BUILD_DIR/bin/mtctl

reports=$BUILD_DIR/sanitizer-reports
rm -rf "$reports"
mkdir -p "$reports"
# Reports go to stderr only when log_path is unset; with it each process writes <prefix>.<pid>,
# which this script prints and counts after ctest. The common flags: stop at the first report
# with a non-zero exit, full stacks, and the suppressions for third-party code.
common="halt_on_error=1:print_stacktrace=1:symbolize=1"
if command -v llvm-symbolizer >/dev/null 2>&1; then
  common="$common:external_symbolizer_path=$(command -v llvm-symbolizer)"
fi
ctest_filter=()
case $preset in
  asan)
    export ASAN_OPTIONS="$common:log_path=$reports/asan:detect_leaks=1:abort_on_error=0:check_initialization_order=1:detect_stack_use_after_return=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
    export LSAN_OPTIONS="suppressions=$SUPP/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
    export UBSAN_OPTIONS="$common:log_path=$reports/ubsan:suppressions=$SUPP/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
    ;;
  tsan)
    export TSAN_OPTIONS="$common:log_path=$reports/tsan:suppressions=$SUPP/tsan.supp:second_deadlock_stack=1:print_suppressions=0${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
    # The tree compiled only the test files with these tags (CMakePresets.json): run exactly them.
    tags=$(sed -n 's/^MT_TESTS_ONLY_TAGS:STRING=//p' "$BUILD_DIR/CMakeCache.txt")
    [ -n "$tags" ] || { log "error: $BUILD_DIR/CMakeCache.txt has no MT_TESTS_ONLY_TAGS (the tsan preset sets it)"; exit 2; }
    ctest_filter=(-L "^($tags)\$")
    ;;
esac
log "MT_TEST_DATABASE_URL=$MT_TEST_DATABASE_URL, reports in $reports"

status=0
if ctest --test-dir "$BUILD_DIR" --output-on-failure --no-tests=error -j"${CTEST_JOBS:-2}" \
     "${ctest_filter[@]}" "$@"; then
  :
else
  status=$?
  log "ctest failed (exit $status)"
fi

shopt -s nullglob
found=("$reports"/*)
if [ ${#found[@]} -gt 0 ]; then
  for file in "${found[@]}"; do
    printf '==== %s\n' "$file" >&2
    cat "$file" >&2
  done
  log "${#found[@]} sanitizer report file(s) in $reports"
  if [ "$status" -eq 0 ]; then status=1; fi
else
  log "no sanitizer reports"
fi
exit "$status"
