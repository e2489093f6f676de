#!/usr/bin/env bash
# drizzle-multitenant 1.3.5 and mtctl on one database: both directions of migrate, status and
# sync --status agreement tenant by tenant, mark-applied both ways, a rename alone repaired by
# mtctl sync --mark-missing (issue 14, item 4), sync after a rename / delete / manual apply,
# convert-format round trips read back by the reference (issue 11, item 5).
#
#   tools/bench/compat_test.sh
#
# Needs a running PostgreSQL: MT_TEST_DATABASE_URL (else DATABASE_URL), a libpq URL to a
# maintenance database as a superuser (eval "$(tools/pg.sh start)" exports both). The suite creates
# its own database mt_compat_<pid> there and drops it at the end (MT_KEEP_DB=1 keeps it).
# The reference is installed with `npm ci` from tools/bench/node/package-lock.json into
# MT_BENCH_NODE_DIR (default $BUILD_DIR/bench-node, shared with tools/bench/bench.sh).
# mtctl: MT_MTCTL (default $BUILD_DIR/bin/mtctl). MT_PLUGIN_PATH: optional manifest [plugins] path.
#
# Prints "ok - CASE" / "not ok - CASE" per case and a last line
#   compat: <passed> passed, <failed> failed (PASS|FAIL)
# Exit 0 only when every case passed; 1 when one failed or something it needs is missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_DIR="$ROOT/tools/bench"
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
NODE_DIR="${MT_BENCH_NODE_DIR:-$BUILD_DIR/bench-node}"
MTCTL="${MT_MTCTL:-$BUILD_DIR/bin/mtctl}"

log() { printf 'compat: %s\n' "$*" >&2; }
die() {
    printf 'not ok - environment\n    %s\ncompat: 0 passed, 1 failed (FAIL)\n' "$*"
    printf 'compat_test.sh: %s\n' "$*" >&2
    exit 1
}
# shellcheck source=tools/bench/lib.sh
. "$BENCH_DIR/lib.sh"

[[ -x "$MTCTL" ]] || die "mtctl not found or not executable at $MTCTL (build it: cmake --build build --target mtctl; or set MT_MTCTL)"
MTCTL=$(cd "$(dirname "$MTCTL")" && pwd)/$(basename "$MTCTL")  # the driver runs in its own folder
MT_TEST_DATABASE_URL=${MT_TEST_DATABASE_URL:-${DATABASE_URL:-}}
[[ -n "$MT_TEST_DATABASE_URL" ]] || die "no database: set MT_TEST_DATABASE_URL (or DATABASE_URL), e.g. eval \"\$(tools/pg.sh start)\""
install_reference "$BENCH_DIR/node" "$NODE_DIR"

export MT_TEST_DATABASE_URL MT_MTCTL="$MTCTL" MT_COMPAT_NODE_DIR="$NODE_DIR"
exec node "$BENCH_DIR/compat_test.mjs"
