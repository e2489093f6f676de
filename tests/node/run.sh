#!/usr/bin/env bash
# drizzle-kit compatibility check: mtctl's drizzle-kit-format tracking tables vs drizzle-orm's
# own migrator (issue 3). Exits non-zero on failure; the last line reads
#   node-compat: <passed> passed, <failed> failed (PASS|FAIL)
#
#   tests/node/run.sh [--variant tenant|shared|all]
#
# Environment: MT_TEST_DATABASE_URL (postgresql:// URL of a maintenance database, superuser; when
# unset, tools/pg.sh is started), MT_MTCTL (default build/bin/mtctl), MT_PLUGIN_PATH (optional
# manifest [plugins] path), MT_NODE_COMPAT_VARIANT (default all), MT_NODE_COMPAT_DIR (where npm
# installs drizzle-orm and pg, default $BUILD_DIR/node-compat, else build/node-compat), MT_KEEP_DB=1 (keep the databases).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/node"
NODE_DIR="${MT_NODE_COMPAT_DIR:-${BUILD_DIR:-$ROOT/build}/node-compat}"

variant="${MT_NODE_COMPAT_VARIANT:-all}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --variant) variant=$2; shift 2 ;;
        --variant=*) variant=${1#*=}; shift ;;
        -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done

fail_early() {
    echo "not ok - $1"
    echo "node-compat: 0 passed, 1 failed (FAIL)"
    exit 1
}

command -v node >/dev/null || fail_early "node not found (Node 20 is needed)"
command -v npm >/dev/null || fail_early "npm not found"

MTCTL="${MT_MTCTL:-$ROOT/build/bin/mtctl}"
[[ -x "$MTCTL" ]] || fail_early "mtctl not found or not executable at $MTCTL (build it, or set MT_MTCTL)"

if [[ -z "${MT_TEST_DATABASE_URL:-}" ]]; then
    [[ -x "$ROOT/tools/pg.sh" ]] || fail_early "MT_TEST_DATABASE_URL is unset and tools/pg.sh is missing"
    "$ROOT/tools/pg.sh" start >&2
    eval "$("$ROOT/tools/pg.sh" env)"
    [[ -n "${MT_TEST_DATABASE_URL:-}" ]] || fail_early "tools/pg.sh env did not set MT_TEST_DATABASE_URL"
fi

# drizzle-orm and pg, pinned by tests/node/package-lock.json, installed under build/ on demand.
mkdir -p "$NODE_DIR"
if ! cmp -s "$HERE/package-lock.json" "$NODE_DIR/package-lock.json" \
    || ! cmp -s "$HERE/package.json" "$NODE_DIR/package.json" \
    || [[ ! -d "$NODE_DIR/node_modules/drizzle-orm" || ! -d "$NODE_DIR/node_modules/pg" ]]; then
    echo "# installing drizzle-orm and pg (npm ci) into $NODE_DIR" >&2
    cp "$HERE/package.json" "$HERE/package-lock.json" "$NODE_DIR/"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2) \
        || fail_early "npm ci in $NODE_DIR failed (network? registry?)"
fi

export MT_MTCTL="$MTCTL" MT_NODE_COMPAT_MODULES="$NODE_DIR" MT_NODE_COMPAT_VARIANT="$variant"
exec node "$HERE/compat.mjs"
