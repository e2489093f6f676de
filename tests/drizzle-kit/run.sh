#!/usr/bin/env bash
# A drizzle user's whole loop (issue 13): drizzle-kit 0.31 generates samples/drizzle-project's
# schema in four steps, mtctl applies each to a fleet unedited, and drizzle-orm, its migrator and
# drizzle-multitenant 1.3.5 check the result. Exits non-zero on failure; the last line reads
#   drizzle-kit-loop: <passed> passed, <failed> failed (PASS|FAIL)
#
#   tests/drizzle-kit/run.sh
#
# Environment: MT_TEST_DATABASE_URL (superuser URL of a maintenance database; when unset,
# tools/pg.sh is started), MT_MTCTL (default build/bin/mtctl), MT_PLUGIN_PATH (optional),
# MT_LOOP_TENANTS (fleet size, default 50), MT_DRIZZLE_KIT_DIR (where npm installs the pinned
# packages, default $BUILD_DIR/drizzle-kit-loop, else build/drizzle-kit-loop), MT_KEEP_DB=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/drizzle-kit"
NODE_DIR="${MT_DRIZZLE_KIT_DIR:-${BUILD_DIR:-$ROOT/build}/drizzle-kit-loop}"

case "${1:-}" in
    "") ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
esac

fail_early() {
    echo "not ok - $1"
    echo "drizzle-kit-loop: 0 passed, 1 failed (FAIL)"
    exit 1
}

command -v node >/dev/null || fail_early "node not found (Node 20 is needed)"
command -v npm >/dev/null || fail_early "npm not found"
command -v script >/dev/null || fail_early "script(1) not found (util-linux): drizzle-kit's rename question needs a terminal"

MTCTL="${MT_MTCTL:-$ROOT/build/bin/mtctl}"
[[ -x "$MTCTL" ]] || fail_early "mtctl not found or not executable at $MTCTL (build it, or set MT_MTCTL)"

if [[ -z "${MT_TEST_DATABASE_URL:-}" ]]; then
    [[ -x "$ROOT/tools/pg.sh" ]] || fail_early "MT_TEST_DATABASE_URL is unset and tools/pg.sh is missing"
    "$ROOT/tools/pg.sh" start >&2
    eval "$("$ROOT/tools/pg.sh" env)"
    [[ -n "${MT_TEST_DATABASE_URL:-}" ]] || fail_early "tools/pg.sh env did not set MT_TEST_DATABASE_URL"
fi

# drizzle-kit, drizzle-orm, pg and drizzle-multitenant, pinned by package-lock.json, under build/.
mkdir -p "$NODE_DIR"
if ! cmp -s "$HERE/package-lock.json" "$NODE_DIR/package-lock.json" \
    || ! cmp -s "$HERE/package.json" "$NODE_DIR/package.json" \
    || [[ ! -d "$NODE_DIR/node_modules/drizzle-kit" || ! -d "$NODE_DIR/node_modules/drizzle-multitenant" ]]; then
    echo "# installing the pinned packages (npm ci) into $NODE_DIR" >&2
    cp "$HERE/package.json" "$HERE/package-lock.json" "$NODE_DIR/"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2) \
        || fail_early "npm ci in $NODE_DIR failed (network? registry?)"
fi

export MT_MTCTL="$MTCTL" MT_DRIZZLE_KIT_MODULES="$NODE_DIR"
exec node "$HERE/loop.mjs"
