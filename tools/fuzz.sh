#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang++-16 in a tree of their own and runs each
# one for a bounded time (issue 11).
#
#   tools/fuzz.sh                     every target, 30 s each, two at a time
#   tools/fuzz.sh --seconds N         N seconds per target
#   tools/fuzz.sh --long              10 minutes per target
#   tools/fuzz.sh --jobs N            targets run at once (default 2: the CI machine has 2 cores)
#   tools/fuzz.sh --no-build          run what is built
#   tools/fuzz.sh ident manifest      only these targets (names as in tests/fuzz/<name>.cpp)
#
# Each target starts from a working corpus, $FUZZ_BUILD_DIR/corpus/<target>, seeded from the
# committed tests/fuzz/corpus/<target> and kept between runs (never committed). Any finding (crash,
# sanitizer report, leak, timeout, out-of-memory, violated property) fails the run with exit 1; the
# input is kept as $FUZZ_BUILD_DIR/findings/<target>/crash-* (or leak-, timeout-, oom-) beside the
# log, and reproduces with `$FUZZ_BUILD_DIR/fuzz/fuzz_<target> FILE`. A table of executions,
# coverage and corpus size per target ends the output.
#
# Environment:
#   FUZZ_BUILD_DIR              build tree (default: <repo>/build-fuzz)
#   FUZZ_CXX                    the Clang to build with (default: clang++-16)
#   CMAKE_CXX_COMPILER_LAUNCHER passed to CMake (ccache, for example)
#   JOBS                        build jobs (default: nproc)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-$REPO_ROOT/build-fuzz}
case $FUZZ_BUILD_DIR in /*) ;; *) FUZZ_BUILD_DIR=$PWD/$FUZZ_BUILD_DIR ;; esac
FUZZ_CXX=${FUZZ_CXX:-clang++-16}
SYMBOLIZER=$(command -v llvm-symbolizer-16 || echo /usr/lib/llvm-16/bin/llvm-symbolizer)
ALL_TARGETS=(ident manifest migration_folder extractors sdk_config plugin_file plugin_descriptor sql_rebase copy_read)

log() { printf 'fuzz: %s\n' "$*" >&2; }
die() { printf 'fuzz: error: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '2,23s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

seconds=30
jobs=2
build=1
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) [ $# -ge 2 ] || die "--seconds needs a number"; seconds=$2; shift ;;
    --seconds=*) seconds=${1#*=} ;;
    --long) seconds=600 ;;
    --jobs) [ $# -ge 2 ] || die "--jobs needs a number"; jobs=$2; shift ;;
    --jobs=*) jobs=${1#*=} ;;
    --no-build) build=0 ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option: $1" ;;
    *) targets+=("$1") ;;
  esac
  shift
done
case $seconds in ''|*[!0-9]*|0) die "--seconds expects a whole number of at least 1, got '$seconds'" ;; esac
case $jobs in ''|*[!0-9]*|0) die "--jobs expects a whole number of at least 1, got '$jobs'" ;; esac
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
  [ -f "$REPO_ROOT/tests/fuzz/$t.cpp" ] || die "no fuzz target '$t' (known: ${ALL_TARGETS[*]})"
done

if [ "$build" -eq 1 ]; then
  command -v "$FUZZ_CXX" >/dev/null 2>&1 || die "$FUZZ_CXX not found; install clang-16 and libclang-rt-16-dev (tools/setup.sh)"
  launcher=()
  [ -z "${CMAKE_CXX_COMPILER_LAUNCHER:-}" ] || launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER="$CMAKE_CXX_COMPILER_LAUNCHER")
  log "configuring $FUZZ_BUILD_DIR ($FUZZ_CXX, MT_FUZZ=ON)"
  # -O1 and line tables only: quicker to build than -O2 -g, and enough for readable sanitizer stacks.
  cmake -S "$REPO_ROOT" -B "$FUZZ_BUILD_DIR" -DCMAKE_CXX_COMPILER="$FUZZ_CXX" -DMT_FUZZ=ON -DMT_BUILD_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
    "${launcher[@]}" >/dev/null
  build_start=$SECONDS
  # One aggregate target lets make compile every target's sources in parallel; a list of targets
  # would be built one after another.
  build_targets=("${targets[@]/#/fuzz_}")
  [ ${#targets[@]} -ne ${#ALL_TARGETS[@]} ] || build_targets=(fuzz_targets)
  cmake --build "$FUZZ_BUILD_DIR" -j"${JOBS:-$(nproc)}" --target "${build_targets[@]}"
  log "built in $((SECONDS - build_start)) s"
fi

# Runs one target; its log and findings go under the build tree, its status to $results/<target>.
run_target() {
  local t=$1 bin=$FUZZ_BUILD_DIR/fuzz/fuzz_$1
  local seeds=$REPO_ROOT/tests/fuzz/corpus/$t work=$FUZZ_BUILD_DIR/corpus/$t findings=$FUZZ_BUILD_DIR/findings/$t
  local logfile=$findings/fuzz.log dict=$REPO_ROOT/tests/fuzz/$t.dict
  mkdir -p "$work" "$findings"
  rm -f "$findings"/crash-* "$findings"/leak-* "$findings"/timeout-* "$findings"/oom-*
  [ -d "$seeds" ] && cp -n "$seeds"/* "$work"/ 2>/dev/null || true
  local args=(-max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1
              -artifact_prefix="$findings/")
  [ -f "$dict" ] && args+=(-dict="$dict")
  local rc=0
  # A leak is a finding too; llvm-symbolizer (llvm-16) turns sanitizer stacks into file:line.
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
    ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$SYMBOLIZER} \
    "$bin" "${args[@]}" "$work" >"$logfile" 2>&1 || rc=$?
  echo "$rc" >"$results/$t"
}

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
log "running ${#targets[@]} target(s), ${seconds} s each, $jobs at a time"
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  log "start $t"
  run_target "$t" &
  running=$((running + 1))
done
wait || true

failed=0
printf '\n%-18s %-8s %12s %9s %7s %8s %8s\n' target result execs exec/s cov ft corpus
for t in "${targets[@]}"; do
  findings=$FUZZ_BUILD_DIR/findings/$t
  logfile=$findings/fuzz.log
  rc=$(cat "$results/$t" 2>/dev/null || echo 99)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logfile" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logfile" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$logfile" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corpus=$(find "$FUZZ_BUILD_DIR/corpus/$t" -type f | wc -l)
  if [ "$rc" = 0 ]; then
    result=ok
  else
    result=FINDING
    failed=1
  fi
  printf '%-18s %-8s %12s %9s %7s %8s %8s\n' "$t" "$result" "${execs:--}" "${rate:--}" "${cov:--}" "${ft:--}" "$corpus"
done
if [ "$failed" -ne 0 ]; then
  for t in "${targets[@]}"; do
    rc=$(cat "$results/$t" 2>/dev/null || echo 99)
    [ "$rc" = 0 ] && continue
    findings=$FUZZ_BUILD_DIR/findings/$t
    log "$t: exit $rc; log: $findings/fuzz.log"
    grep -E 'ERROR: |PROPERTY VIOLATED|SUMMARY: |runtime error|Test unit written to' "$findings/fuzz.log" | head -8 >&2 || true
    for f in "$findings"/crash-* "$findings"/leak-* "$findings"/timeout-* "$findings"/oom-*; do
      [ -e "$f" ] && log "reproduce: $FUZZ_BUILD_DIR/fuzz/fuzz_$t $f"
    done
  done
  exit 1
fi
log "no findings"
