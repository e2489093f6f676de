#!/usr/bin/env bash
# Side-by-side migration benchmark: mtctl vs drizzle-multitenant 1.3.5 vs a psql floor.
#
#   tools/bench/bench.sh [--tenants 100,1000] [--runs 3] [--skip-reference]
#                        [--concurrency 10] [--floor-single] [--no-per-tenant-tx]
#                        [--mtctl PATH] [--keep] [--wait-quiet S] [--report RESULTS.tsv]
#                        [--fresh-only] [--fleet-status 100000]
#
# Database: $MT_TEST_DATABASE_URL (a libpq URL to a maintenance database such as
# postgresql://postgres@127.0.0.1:PORT/postgres, superuser); when unset the script starts the
# project's throwaway server with tools/pg.sh. It creates (and drops at the end) one database per
# tenant count, named bench_mt_<N>. See tools/bench/REFERENCE.md for what is measured and why.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_DIR="$ROOT/tools/bench"
SELF="$BENCH_DIR/bench.sh"
MIGRATIONS="$BENCH_DIR/migrations"
NODE_DIR="${MT_BENCH_NODE_DIR:-${BUILD_DIR:-$ROOT/build}/bench-node}"
WORK="${MT_BENCH_WORK:-${BUILD_DIR:-$ROOT/build}/bench}"
TRACKING_TABLE=__drizzle_migrations

# The psql binary. Debian's /usr/bin/psql is pg_wrapper, a Perl script that costs ~20 ms of CPU at
# every start (3x a real psql's whole connect + query): the floor would measure Perl, not
# PostgreSQL. Use the newest /usr/lib/postgresql/*/bin/psql when there is one.
if [[ -z "${MT_BENCH_PSQL:-}" ]]; then
    MT_BENCH_PSQL=$(command -v psql || true)
    for cand in $(ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V -r); do
        MT_BENCH_PSQL=$cand
        break
    done
fi
export MT_BENCH_PSQL
PSQL=$MT_BENCH_PSQL

# ---------------------------------------------------------------------------------------------
# Internal sub-commands (re-invoked through "$0" so /usr/bin/time measures a single command).
# ---------------------------------------------------------------------------------------------

# __floor-per-tenant URL IDS TEMPLATE CONC: one fresh psql per tenant, CONC at a time.
if [[ "${1:-}" == __floor-per-tenant ]]; then
    url=$2 ids=$3 template=$4 conc=$5
    # xargs exits 123 when any psql failed; keep going so every tenant is attempted.
    xargs -P "$conc" -I '{}' "$PSQL" -X -q -d "$url" -v ON_ERROR_STOP=1 -v "schema=tenant_{}" \
        -f "$template" -o /dev/null < "$ids"
    exit $?
fi

# __floor-sessions URL DRIVER...: one long psql session per driver file, all in parallel.
if [[ "${1:-}" == __floor-sessions ]]; then
    url=$2
    shift 2
    pids=()
    for driver in "$@"; do
        "$PSQL" -X -q -d "$url" -v ON_ERROR_STOP=1 -f "$driver" -o /dev/null &
        pids+=("$!")
    done
    rc=0
    for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
    exit $rc
fi

# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------
usage() {
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    cat <<'EOF'
Options:
  --tenants LIST        comma-separated tenant counts (default 100,1000)
  --runs N              runs per measurement; the table shows medians (default 3)
  --skip-reference      do not run drizzle-multitenant (no npm needed)
  --concurrency N       workers for every tool and for the psql floor (default 10)
  --floor-single        also time the floor through ONE psql session for all tenants (slow)
  --no-per-tenant-tx    skip the mtctl `transaction = per-tenant` variant
  --fresh-only          time only fresh migrate (mtctl, reference, floors): the figures of issue 14
                        item 6 in a quarter of the time
  --rebase              also time fresh migrate of tools/bench/migrations-drizzle-kit (the same
                        SQL with every table reference qualified "public", as drizzle-kit writes
                        it, plus journal and snapshots) with `rebase = auto`, right after the plain
                        folder: the cost of schema rebasing (issue 13)
  --mtctl PATH          mtctl binary (default $MT_MTCTL or build/bin/mtctl)
  --keep                keep the bench_mt_<N> databases at the end
  --wait-quiet S        before each measurement wait up to S seconds (default 60) for the CPUs
                        to be <= 25% busy (autovacuum, other jobs); --no-wait-quiet skips it
  --report RESULTS.tsv  print the table again from an earlier run's raw results (no database)
  --fleet-status LIST   instead of the migrate comparison: status of an up-to-date fleet of each
                        size in LIST (e.g. 100000), time and peak RSS, through
                        tools/bench/bench_fleet.sh --build sql --steps status-json,status-table
                        (with --runs, --mtctl, --keep and --wait-quiet passed on)
Environment: MT_TEST_DATABASE_URL, MT_MTCTL, MT_BENCH_PLUGIN_PATH (manifest [plugins] path),
             MT_BENCH_NODE_DIR (default build/bench-node), MT_BENCH_WORK (default build/bench),
             MT_BENCH_PSQL (psql binary; default the newest /usr/lib/postgresql/*/bin/psql)
EOF
}

TENANTS=100,1000
RUNS=3
SKIP_REF=0
CONC=10
FLOOR_SINGLE=0
PER_TENANT_TX=1
REBASE=0
FRESH_ONLY=0
KEEP=0
QUIET_MAX=60
REPORT=""
FLEET_STATUS=""
MTCTL="${MT_MTCTL:-$ROOT/build/bin/mtctl}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --tenants) TENANTS=$2; shift 2 ;;
        --tenants=*) TENANTS=${1#*=}; shift ;;
        --runs) RUNS=$2; shift 2 ;;
        --runs=*) RUNS=${1#*=}; shift ;;
        --skip-reference) SKIP_REF=1; shift ;;
        --concurrency) CONC=$2; shift 2 ;;
        --concurrency=*) CONC=${1#*=}; shift ;;
        --floor-single) FLOOR_SINGLE=1; shift ;;
        --no-per-tenant-tx) PER_TENANT_TX=0; shift ;;
        --rebase) REBASE=1; shift ;;
        --fresh-only) FRESH_ONLY=1; shift ;;
        --mtctl) MTCTL=$2; shift 2 ;;
        --mtctl=*) MTCTL=${1#*=}; shift ;;
        --keep) KEEP=1; shift ;;
        --no-wait-quiet) QUIET_MAX=0; shift ;;
        --wait-quiet) QUIET_MAX=$2; shift 2 ;;
        --wait-quiet=*) QUIET_MAX=${1#*=}; shift ;;
        --report) REPORT=$2; shift 2 ;;
        --report=*) REPORT=${1#*=}; shift ;;
        --fleet-status) FLEET_STATUS=$2; shift 2 ;;
        --fleet-status=*) FLEET_STATUS=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --runs wants a positive integer" >&2; exit 2; }
[[ "$QUIET_MAX" =~ ^[0-9]+$ ]] || { echo "bench.sh: --wait-quiet wants seconds" >&2; exit 2; }
[[ "$CONC" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --concurrency wants a positive integer" >&2; exit 2; }
if [[ -n "$FLEET_STATUS" ]]; then
    fleet_args=(--fleet "$FLEET_STATUS" --build sql --steps status-json,status-table --runs "$RUNS" --mtctl "$MTCTL")
    [[ $KEEP -eq 1 ]] && fleet_args+=(--keep)
    if [[ $QUIET_MAX -eq 0 ]]; then fleet_args+=(--no-wait-quiet); else fleet_args+=(--wait-quiet "$QUIET_MAX"); fi
    exec "$BENCH_DIR/bench_fleet.sh" "${fleet_args[@]}"
fi
IFS=',' read -r -a COUNTS <<< "$TENANTS"
for n in "${COUNTS[@]}"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: bad tenant count '$n'" >&2; exit 2; }
done
[[ "$MTCTL" = /* ]] || MTCTL="$PWD/$MTCTL"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=tools/bench/lib.sh
. "$BENCH_DIR/lib.sh"

[[ -n "$PSQL" && -x "$PSQL" ]] || die "psql not found (apt-get install postgresql-client-15, or set MT_BENCH_PSQL)"
command -v xargs >/dev/null || die "xargs not found (apt-get install findutils)"
TIME_BIN=/usr/bin/time
if ! "$TIME_BIN" -v true >/dev/null 2>&1; then
    log "WARNING: GNU time not found at /usr/bin/time (apt-get install time): peak RSS will show '?'"
    TIME_BIN=""
fi

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
# Operation keys, in table order, with their labels.
OPS=(fresh status sync diff noop mark)
declare -A OP_LABEL=(
    [fresh]="migrate --all (fresh)"
    [status]="status (all up to date)"
    [sync]="sync --status (all up to date)"
    [diff]="diff (no drift; mtctl only)"
    [noop]="migrate --all (nothing pending)"
    [mark]="migrate --all --mark-applied (fresh)"
)
TOOLS=(mtctl mtctl-per-tenant-tx mtctl-rebased reference floor-psql-per-tenant floor-psql-sessions floor-psql-single)
declare -A TOOL_LABEL=(
    [mtctl]="mtctl"
    [mtctl-per-tenant-tx]="mtctl (transaction=per-tenant)"
    [mtctl-rebased]="mtctl, drizzle-kit layout, rebased"
    [reference]="drizzle-multitenant 1.3.5"
    [floor-psql-per-tenant]="floor: psql per tenant, -P $CONC"
    [floor-psql-sessions]="floor: $CONC long psql sessions"
    [floor-psql-single]="floor: 1 psql session"
)

print_report() {
SUMMARY="$(dirname "$RESULTS")/$(basename "$RESULTS" .tsv | sed 's/^results-/summary-/').txt"
{
    echo "mtctl benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPU(s), concurrency $CONC, medians of $RUNS run(s)"
    echo "server: $("$PSQL" -X -A -t -d "$ADMIN_URL" -c 'SHOW server_version' 2>/dev/null || echo '?') (fsync=$("$PSQL" -X -A -t -d "$ADMIN_URL" -c 'SHOW fsync' 2>/dev/null || echo '?'), synchronous_commit=$("$PSQL" -X -A -t -d "$ADMIN_URL" -c 'SHOW synchronous_commit' 2>/dev/null || echo '?'))," \
         "migrations: ${NMIG:-6} files in tools/bench/migrations"
    echo "load average before the benchmark: $LOAD_START; psql: ${PSQL:-?}"
    if awk -v l="${LOAD_START%% *}" -v c="$(nproc)" 'BEGIN { exit !(l + 0 > c / 2) }'; then
        echo "WARNING: the machine was already busy (load ${LOAD_START%% *} on $(nproc) CPUs): times are inflated and noisy, compare ratios"
    fi
    echo
    # Lines: n \t opkey \t oplabel \t toolkey \t toollabel, in display order; awk joins results.
    for n in "${COUNTS[@]}"; do
        for op in "${OPS[@]}"; do
            for tool in "${TOOLS[@]}"; do
                printf 'ORDER\t%s\t%s\t%s\t%s\t%s\n' "$n" "$op" "${OP_LABEL[$op]}" "$tool" "${TOOL_LABEL[$tool]}"
            done
        done
    done | cat - "$RESULTS" | awk -F'\t' -v conc="$CONC" '
    function median(list,    a, k, i, j, t, m) {
        k = split(list, a, " ")
        for (i = 2; i <= k; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        if (k % 2) m = a[(k + 1) / 2]; else m = (a[k / 2] + a[k / 2 + 1]) / 2
        return m
    }
    # Median of a key, "" when there is none (never auto-creates med[] entries).
    function M(n, op, tool,    k) { k = n SUBSEP op SUBSEP tool; return (k in med) ? med[k] : "" }
    # The conc-way psql floor: the faster of "psql per tenant" and "long psql sessions".
    function floor10(n,    a, b) {
        a = M(n, "fresh", "floor-psql-per-tenant"); b = M(n, "fresh", "floor-psql-sessions")
        if (a == "") return b
        if (b == "") return a
        return (a + 0 < b + 0) ? a : b
    }
    function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "-" : sprintf("%.2fx", a / b) }
    $1 == "ORDER" { norder++; on[norder] = $2; oo[norder] = $3; ol[norder] = $4; ot[norder] = $5; otl[norder] = $6; next }
    {
        key = $1 SUBSEP $2 SUBSEP $3; seen[key] = 1
        if ($5 == "ok") {
            secs[key] = secs[key] " " $6; nok[key]++; nall++
            if ($9 == "busy") nbusy++
            if ($7 != "?" && $7 + 0 > rss[key] + 0) rss[key] = $7
            if (!(key in be)) be[key] = 0
            if ($8 != "?" && $8 + 0 > be[key] + 0) be[key] = $8
            if ($7 == "?") rssq[key] = 1
        } else { nbad[key]++; if (!(key in why)) why[key] = $5 ": " $9 }
    }
    END {
        for (k in seen) if (!nbad[k] && nok[k]) med[k] = median(secs[k])
        fmt = "%6s  %-38s  %-32s  %9s  %8s  %8s  %8s  %8s\n"
        printf fmt, "N", "operation", "tool", "median s", "vs ref", "vs floor", "RSS MB", "backends"
        for (i = 1; i <= norder; i++) {
            k = on[i] SUBSEP oo[i] SUBSEP ot[i]
            if (!(k in seen)) continue
            if (on[i] != lastn && lastn != "") print ""
            lastn = on[i]
            fl = floor10(on[i])
            if (k in med) {
                t = sprintf("%.2f", med[k])
                vr = (ot[i] == "reference") ? "1.00x" : ratio(med[k], M(on[i], oo[i], "reference"))
                vf = (oo[i] == "fresh") ? ratio(med[k], fl) : "-"
                r = (k in rssq) ? "?" : sprintf("%.1f", rss[k] / 1024)
                b = be[k]
            } else { t = "n/a"; vr = "-"; vf = "-"; r = "-"; b = "-"; notes[++nn] = on[i] " " oo[i] " " ot[i] ": " why[k] }
            printf fmt, on[i], ol[i], otl[i], t, vr, vf, r, b
        }
        print ""
        print "vs ref / vs floor: median time divided by the reference (same operation) / by the faster of"
        print "the two " conc "-way psql floors (fresh migrate); below 1.00x is faster. RSS: peak resident set"
        print "of the largest client process (/usr/bin/time -v). backends: peak client backends on the"
        print "database (sampled every 100 ms). status / sync / nothing-pending run on the fleet the"
        print "psql-per-tenant floor migrated (name format)."
        if (nbusy) printf "WARNING: %d of %d measurements ran while the CPUs were still busy after the wait\n", nbusy, nall
        if (nn) { print ""; print "n/a:"; for (j = 1; j <= nn; j++) print "  " notes[j] }

        # Goals of issue 3, where the data exist.
        print ""
        print "goals (issue 3; only those with data for both sides):"
        for (i = 1; i <= norder; i++) {
            n = on[i]; if (n in done) continue; done[n] = 1
            mf = M(n, "fresh", "mtctl"); ff = floor10(n); mt = M(n, "fresh", "mtctl-per-tenant-tx")
            mn = M(n, "noop", "mtctl"); ms = M(n, "status", "mtctl"); rs = M(n, "status", "reference")
            mm = M(n, "mark", "mtctl"); rm = M(n, "mark", "reference")
            msy = M(n, "sync", "mtctl"); rsy = M(n, "sync", "reference"); md = M(n, "diff", "mtctl")
            if (mf != "" && ff != "") printf "  N=%s fresh migrate no slower than the psql floor:  %s (%.2fx the floor)\n", n, (mf <= ff ? "met" : "MISSED"), mf / ff
            if (mt != "" && mf != "") printf "  N=%s transaction=per-tenant vs per-migration:  %.2fx the time\n", n, mt / mf
            mr = M(n, "fresh", "mtctl-rebased")
            if (mr != "" && mf != "") printf "  N=%s rebasing adds < 2%% to fresh migrate (issue 13):  %s (%+.1f%%)\n", n, (mr / mf < 1.02 ? "met" : "MISSED"), (mr / mf - 1) * 100
            if (mn != "" && rs != "") printf "  N=%s nothing pending >= 20x faster than ref status:  %s (%.1fx)\n", n, (rs / mn >= 20 ? "met" : "MISSED"), rs / mn
            if (ms != "" && rs != "") printf "  N=%s status >= 20x faster than ref status:  %s (%.1fx)\n", n, (rs / ms >= 20 ? "met" : "MISSED"), rs / ms
            if (n >= 10000 && mn != "") printf "  N=%s nothing pending < 5 s:  %s (%.2f s)\n", n, (mn < 5 ? "met" : "MISSED"), mn
            if (n >= 10000 && ms != "") printf "  N=%s status < 5 s:  %s (%.2f s)\n", n, (ms < 5 ? "met" : "MISSED"), ms
            if (msy != "" && rsy != "") printf "  N=%s sync --status >= 10x faster than ref sync --status:  %s (%.1fx)\n", n, (rsy / msy >= 10 ? "met" : "MISSED"), rsy / msy
            if (n >= 10000 && msy != "") printf "  N=%s sync --status < 10 s:  %s (%.2f s)\n", n, (msy < 10 ? "met" : "MISSED"), msy
            if (n >= 10000 && md != "") printf "  N=%s diff < 10 s:  %s (%.2f s)\n", n, (md < 10 ? "met" : "MISSED"), md
            if (mm != "" && rm != "") printf "  N=%s mark-applied >= 10x faster than ref:  %s (%.1fx)\n", n, (rm / mm >= 10 ? "met" : "MISSED"), rm / mm
            peak = 0; pb = 0
            split("fresh status sync diff noop mark", opl, " ")
            for (j = 1; j <= 6; j++) {
                kk = n SUBSEP opl[j] SUBSEP "mtctl"
                if (kk in med) { if (rss[kk] + 0 > peak) peak = rss[kk] + 0; if (be[kk] + 0 > pb) pb = be[kk] + 0 }
            }
            if (peak > 0) printf "  N=%s mtctl peak RSS < 30 MB:  %s (%.1f MB)\n", n, (peak < 30 * 1024 ? "met" : "MISSED"), peak / 1024
            if (pb > 0) printf "  N=%s mtctl peak backends <= concurrency + 1:  %s (%d, concurrency %d)\n", n, (pb <= conc + 1 ? "met" : "MISSED"), pb, conc
        }
    }'
} | if [[ -n "$REPORT" ]]; then cat; else tee "$SUMMARY"; fi
[[ -n "$REPORT" ]] || log "summary saved to $SUMMARY (raw runs: $RESULTS)"
}

if [[ -n "$REPORT" ]]; then   # re-print the table of an earlier run
    [[ -f "$REPORT" ]] || die "no such results file: $REPORT"
    RESULTS=$(cd "$(dirname "$REPORT")" && pwd)/$(basename "$REPORT")
    mapfile -t COUNTS < <(awk -F'\t' '!seen[$1]++ { print $1 }' "$RESULTS")
    RUNS=$(awk -F'\t' '$4 > m { m = $4 } END { print m + 0 }' "$RESULTS")
    LOAD_START="(not recorded)"
    ADMIN_URL="${MT_TEST_DATABASE_URL:-}"
    print_report
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------------------------
if [[ -z "${MT_TEST_DATABASE_URL:-}" ]]; then
    [[ -x "$ROOT/tools/pg.sh" ]] || die "MT_TEST_DATABASE_URL is unset and tools/pg.sh is missing"
    log "MT_TEST_DATABASE_URL unset: starting tools/pg.sh"
    "$ROOT/tools/pg.sh" start >&2
    eval "$("$ROOT/tools/pg.sh" env)"
    [[ -n "${MT_TEST_DATABASE_URL:-}" ]] || die "tools/pg.sh env did not set MT_TEST_DATABASE_URL"
fi
ADMIN_URL=$MT_TEST_DATABASE_URL

# db_url NAME: the admin URL with its database replaced by NAME (URL form only).
db_url() {
    local re='^(postgres(ql)?://[^/?]*)(/[^?]*)?(\?.*)?$'
    [[ "$ADMIN_URL" =~ $re ]] || die "MT_TEST_DATABASE_URL must be a postgresql:// URL"
    printf '%s/%s%s' "${BASH_REMATCH[1]}" "$1" "${BASH_REMATCH[4]}"
}
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
psql_admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$ADMIN_URL" "$@"; }
psql_admin -c 'SELECT 1' >/dev/null || die "cannot connect to $ADMIN_URL"

# ---------------------------------------------------------------------------------------------
# Reference implementation (npm, pinned by tools/bench/node/package-lock.json)
# ---------------------------------------------------------------------------------------------
REF_CLI="$NODE_DIR/node_modules/drizzle-multitenant/bin/drizzle-multitenant.js"
ensure_reference() { install_reference "$BENCH_DIR/node" "$NODE_DIR"; }

# ---------------------------------------------------------------------------------------------
# Fleet set-up (never timed)
# ---------------------------------------------------------------------------------------------
MIGRATION_FILES=()
MIGRATION_NAMES=()
for f in "$MIGRATIONS"/*.sql; do
    MIGRATION_FILES+=("$f")
    b=$(basename "$f" .sql)
    MIGRATION_NAMES+=("$b")
done
NMIG=${#MIGRATION_FILES[@]}
[[ $NMIG -eq 6 ]] || die "expected six migrations in $MIGRATIONS, found $NMIG"

# reset_fleet DB N: a fresh database with public.tenants (ids 1..N) and N empty schemas tenant_<id>.
reset_fleet() {
    local db=$1 n=$2
    psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\""
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$(db_url "$db")" -o /dev/null <<SQL
CREATE TABLE public.tenants (id text PRIMARY KEY);
INSERT INTO public.tenants SELECT g::text FROM generate_series(1, $n) AS g;
SELECT format('CREATE SCHEMA %I', 'tenant_' || id) FROM public.tenants ORDER BY id \gexec
ANALYZE public.tenants;
SQL
    psql_admin -c CHECKPOINT 2>/dev/null || true   # superuser or pg_checkpoint only; optional
}

# check_fleet DB N MODE: how many tenants are complete. MODE=migrated: 6 tracking rows and the
# backfill done; MODE=marked: 6 tracking rows and no migration executed. Prints the count.
check_fleet() {
    local db=$1 mode=$2 cond
    if [[ $mode == migrated ]]; then
        cond="(SELECT count(*) FROM %1\$I.$TRACKING_TABLE) = $NMIG AND (SELECT count(*) FROM %1\$I.orders WHERE total_cents > 0 AND item_count > 0) = 50"
    else
        cond="(SELECT count(*) FROM %1\$I.$TRACKING_TABLE) = $NMIG AND to_regclass(format(''%%I.customers'', %1\$L)) IS NULL"
    fi
    # A tenant whose tables are missing makes its query fail: it is simply not counted.
    "$PSQL" -X -q -A -t -d "$(db_url "$db")" 2>/dev/null <<SQL | grep -c '^t$' || true
SELECT format('SELECT $cond', 'tenant_' || id) FROM public.tenants ORDER BY id \gexec
SQL
}

# Floor scripts: the same SQL plus name-format tracking rows, one transaction per migration.
write_floor_template() {
    local out=$1 i
    {
        echo 'SET search_path TO :"schema";'
        echo "CREATE TABLE IF NOT EXISTS \"$TRACKING_TABLE\" (id SERIAL PRIMARY KEY, name VARCHAR(255) NOT NULL UNIQUE, applied_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP);"
        for ((i = 0; i < NMIG; i++)); do
            echo 'BEGIN;'
            cat "${MIGRATION_FILES[$i]}"
            echo
            echo "INSERT INTO \"$TRACKING_TABLE\" (name) VALUES ('${MIGRATION_NAMES[$i]}');"
            echo 'COMMIT;'
        done
    } > "$out"
}

# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------
RESULTS=""           # TSV: n op tool run status secs rss_kb backends note
M_SECS="" M_RSS="" M_BACKENDS="" M_RC=0

# measure DB LOG CMD...: wall time, peak RSS (largest process), peak client backends in DB.
measure() {
    local db=$1 logf=$2
    shift 2
    local stop="$WORK/.sampler.stop" samples="$WORK/.sampler.out" tfile="$WORK/.time.out"
    rm -f "$stop" "$tfile"
    : > "$samples"
    (
        while [[ ! -e "$stop" ]]; do
            echo "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND backend_type = 'client backend';"
            sleep 0.1
        done | "$PSQL" -X -q -A -t -d "$ADMIN_URL" > "$samples" 2>/dev/null
    ) &
    local sampler=$!
    sleep 0.15
    local t0 t1
    t0=$(date +%s%N)
    set +e
    if [[ -n "$TIME_BIN" ]]; then
        "$TIME_BIN" -v -o "$tfile" "$@" > "$logf" 2>&1
    else
        "$@" > "$logf" 2>&1
    fi
    M_RC=$?
    set -e
    t1=$(date +%s%N)
    touch "$stop"
    wait "$sampler" || true
    M_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    M_RSS="?"
    if [[ -f "$tfile" ]]; then
        M_RSS=$(awk -F': *' '/Maximum resident set size/ { print $2 }' "$tfile")
        [[ -n "$M_RSS" ]] || M_RSS="?"
    fi
    M_BACKENDS=$(sort -n "$samples" | tail -n 1)
    [[ -n "$M_BACKENDS" ]] || M_BACKENDS="?"
}

record() { # n op tool run status note
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" \
        "${M_SECS:--}" "${M_RSS:--}" "${M_BACKENDS:--}" "${6:-}" >> "$RESULTS"
}
record_na() { M_SECS="-" M_RSS="-" M_BACKENDS="-"; record "$1" "$2" "$3" "$4" na "$5"; }


# run_op N RUN OP TOOL DB LOG CHECK CMD...: measure, then check the fleet (CHECK: migrated,
# marked or none), and record ok or fail.
run_op() {
    local n=$1 run=$2 op=$3 tool=$4 db=$5 logf=$6 check=$7
    shift 7
    log "N=$n run $run: $op / $tool"
    wait_quiet
    measure "$db" "$logf" "$@"
    if [[ $M_RC -ne 0 ]]; then
        log "  FAILED (exit $M_RC) after ${M_SECS}s, log: $logf"
        record "$n" "$op" "$tool" "$run" fail "exit $M_RC, see $logf"
        return 1
    fi
    if [[ $check != none ]]; then
        local good
        good=$(check_fleet "$db" "$check")
        if [[ "$good" -ne "$n" ]]; then
            log "  WRONG RESULT: $good of $n tenants $check, log: $logf"
            record "$n" "$op" "$tool" "$run" fail "$good/$n tenants $check, see $logf"
            return 1
        fi
    fi
    log "  ${M_SECS}s, peak RSS ${M_RSS} kB, peak backends ${M_BACKENDS}"
    if [[ $M_BUSY -eq 1 ]]; then record "$n" "$op" "$tool" "$run" ok "busy"; else record "$n" "$op" "$tool" "$run" ok ""; fi
    return 0
}

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
write_manifest() { # FILE DB
    local plugin_path="${MT_BENCH_PLUGIN_PATH:-}"
    [[ -n "$plugin_path" || ! -d "${BUILD_DIR:-$ROOT/build}/plugins" ]] || plugin_path="${BUILD_DIR:-$ROOT/build}/plugins"
    {
        echo "# written by tools/bench/bench.sh"
        echo "[database]"
        echo "url = $(db_url "$2")"
        echo
        echo "[isolation]"
        echo "schema_template = tenant_{id}"
        echo
        echo "[migrations]"
        echo "tenant_dir = $MIGRATIONS"
        echo "table = $TRACKING_TABLE"
        echo "format = auto"
        echo "default_format = name"
        echo "concurrency = $CONC"
        echo
        echo "[plugins]"
        [[ -z "$plugin_path" ]] || echo "path = $plugin_path"
        echo "load = tracking-name, tracking-hash, tracking-drizzle-kit, discovery-sql, retry-exponential"
        echo
        echo "[roles]"
        echo "discovery = discovery-sql"
        echo "retry = retry-exponential"
        echo
        echo "[plugin.discovery-sql]"
        echo "query = SELECT id FROM public.tenants ORDER BY id"
    } > "$1"
}

write_ref_config() { # FILE DB
    cat > "$1" <<EOF
// written by tools/bench/bench.sh: drizzle-multitenant 1.3.5 configuration for the benchmark
import pg from "pg";
const url = "$(db_url "$2")";
export default {
  connection: { url },
  isolation: { strategy: "schema", schemaNameTemplate: (id) => \`tenant_\${id}\` },
  schemas: { tenant: {} },
  migrations: {
    tenantFolder: "$MIGRATIONS",
    migrationsTable: "$TRACKING_TABLE",
    tenantDiscovery: async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const { rows } = await client.query("SELECT id FROM public.tenants ORDER BY id");
        return rows.map((r) => r.id);
      } finally {
        await client.end();
      }
    },
  },
};
EOF
}

MTCTL_OK=1
MTCTL_WHY=""
if [[ ! -x "$MTCTL" ]]; then
    MTCTL_OK=0
    MTCTL_WHY="mtctl not built ($MTCTL)"
    log "WARNING: $MTCTL_WHY: its rows will show n/a"
fi
[[ $SKIP_REF -eq 1 ]] || ensure_reference

mkdir -p "$WORK"
trap 'touch "$WORK/.sampler.stop" 2>/dev/null || true' EXIT
STAMP=$(date +%Y%m%d-%H%M%S)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
RESULTS="$WORK/results-$STAMP.tsv"
: > "$RESULTS"
log "results: $RESULTS, logs: $WORK/<N>/"

bench_count() {
    local n=$1 db="bench_mt_$1" dir="$WORK/$1" run
    mkdir -p "$dir"
    rm -f "$dir"/*.log
    local ini="$dir/multitenant.ini" refdir="$NODE_DIR/work-$n"
    write_manifest "$ini" "$db"
    mkdir -p "$refdir"   # under NODE_DIR so the config's `import "pg"` resolves
    local refcfg="$refdir/tenant.config.mjs"
    write_ref_config "$refcfg" "$db"
    local ref=(node "$REF_CLI")
    local mt=("$MTCTL" -c "$ini")

    local template="$dir/floor-tenant.sql" ids="$dir/ids.txt"
    write_floor_template "$template"
    seq 1 "$n" | sort > "$ids"   # same order as ORDER BY id on text ids
    local drivers=() w
    for ((w = 0; w < CONC; w++)); do
        drivers+=("$dir/floor-session-$w.sql")
        awk -v w="$w" -v c="$CONC" -v t="$template" \
            'NR % c == w { printf "\\set schema tenant_%s\n\\i %s\n", $1, t }' "$ids" > "$dir/floor-session-$w.sql"
    done
    awk -v t="$template" '{ printf "\\set schema tenant_%s\n\\i %s\n", $1, t }' "$ids" > "$dir/floor-single.sql"

    for ((run = 1; run <= RUNS; run++)); do
        # (c) the floor, per-tenant psql; its fleet then serves status / sync / no-op for both tools.
        reset_fleet "$db" "$n"
        local fleet_ok=1
        run_op "$n" "$run" fresh floor-psql-per-tenant "$db" "$dir/floor-per-tenant.$run.log" migrated \
            "$SELF" __floor-per-tenant "$(db_url "$db")" "$ids" "$template" "$CONC" || fleet_ok=0
        if [[ $FRESH_ONLY -eq 1 ]]; then
            :
        elif [[ $fleet_ok -eq 1 ]]; then
            if [[ $SKIP_REF -eq 0 ]]; then
                (cd "$refdir" && run_op "$n" "$run" status reference "$db" "$dir/ref-status.$run.log" none \
                    "${ref[@]}" status -c "$refcfg" --json) || true
                (cd "$refdir" && run_op "$n" "$run" sync reference "$db" "$dir/ref-sync.$run.log" none \
                    "${ref[@]}" sync --status -c "$refcfg" --json) || true
                (cd "$refdir" && run_op "$n" "$run" noop reference "$db" "$dir/ref-noop.$run.log" migrated \
                    "${ref[@]}" migrate --all --concurrency "$CONC" -c "$refcfg" --json) || true
            fi
            if [[ $MTCTL_OK -eq 1 ]]; then
                run_op "$n" "$run" status mtctl "$db" "$dir/mtctl-status.$run.log" none \
                    "${mt[@]}" status --all || true
                run_op "$n" "$run" sync mtctl "$db" "$dir/mtctl-sync.$run.log" none \
                    "${mt[@]}" sync --status || true
                run_op "$n" "$run" diff mtctl "$db" "$dir/mtctl-diff.$run.log" none \
                    "${mt[@]}" diff --all || true
                run_op "$n" "$run" noop mtctl "$db" "$dir/mtctl-noop.$run.log" migrated \
                    "${mt[@]}" migrate --all --concurrency "$CONC" || true
            else
                for op in status sync diff noop; do record_na "$n" "$op" mtctl "$run" "$MTCTL_WHY"; done
            fi
        else
            for op in status sync noop; do
                record_na "$n" "$op" mtctl "$run" "floor fleet failed"
                [[ $SKIP_REF -eq 1 ]] || record_na "$n" "$op" reference "$run" "floor fleet failed"
            done
        fi

        # (c) the floor, one long psql session per worker (and optionally one for everything).
        reset_fleet "$db" "$n"
        run_op "$n" "$run" fresh floor-psql-sessions "$db" "$dir/floor-sessions.$run.log" migrated \
            "$SELF" __floor-sessions "$(db_url "$db")" "${drivers[@]}" || true
        if [[ $FLOOR_SINGLE -eq 1 ]]; then
            reset_fleet "$db" "$n"
            run_op "$n" "$run" fresh floor-psql-single "$db" "$dir/floor-single.$run.log" migrated \
                "$SELF" __floor-sessions "$(db_url "$db")" "$dir/floor-single.sql" || true
        fi

        # (a) mtctl fresh, (f) mtctl mark-applied
        if [[ $MTCTL_OK -eq 1 ]]; then
            reset_fleet "$db" "$n"
            run_op "$n" "$run" fresh mtctl "$db" "$dir/mtctl-fresh.$run.log" migrated \
                "${mt[@]}" migrate --all --concurrency "$CONC" || true
            if [[ $REBASE -eq 1 ]]; then
                reset_fleet "$db" "$n"
                run_op "$n" "$run" fresh mtctl-rebased "$db" "$dir/mtctl-fresh-rebased.$run.log" migrated \
                    "${mt[@]}" --migrations.tenant_dir="$BENCH_DIR/migrations-drizzle-kit" --migrations.rebase=auto \
                    migrate --all --concurrency "$CONC" || true
            fi
            if [[ $PER_TENANT_TX -eq 1 ]]; then
                reset_fleet "$db" "$n"
                run_op "$n" "$run" fresh mtctl-per-tenant-tx "$db" "$dir/mtctl-fresh-per-tenant.$run.log" migrated \
                    "${mt[@]}" --migrations.transaction=per-tenant migrate --all --concurrency "$CONC" || true
            fi
            if [[ $FRESH_ONLY -eq 0 ]]; then
                reset_fleet "$db" "$n"
                run_op "$n" "$run" mark mtctl "$db" "$dir/mtctl-mark.$run.log" marked \
                    "${mt[@]}" migrate --all --mark-applied --concurrency "$CONC" || true
            fi
        else
            record_na "$n" fresh mtctl "$run" "$MTCTL_WHY"
            [[ $PER_TENANT_TX -eq 0 ]] || record_na "$n" fresh mtctl-per-tenant-tx "$run" "$MTCTL_WHY"
            record_na "$n" mark mtctl "$run" "$MTCTL_WHY"
        fi

        # (b) reference fresh, (f) reference mark-applied
        if [[ $SKIP_REF -eq 0 ]]; then
            reset_fleet "$db" "$n"
            (cd "$refdir" && run_op "$n" "$run" fresh reference "$db" "$dir/ref-fresh.$run.log" migrated \
                "${ref[@]}" migrate --all --concurrency "$CONC" -c "$refcfg" --json) || true
            [[ $FRESH_ONLY -eq 0 ]] || continue
            reset_fleet "$db" "$n"
            (cd "$refdir" && run_op "$n" "$run" mark reference "$db" "$dir/ref-mark.$run.log" marked \
                "${ref[@]}" migrate --all --mark-applied --concurrency "$CONC" -c "$refcfg" --json) || true
        fi
    done
    [[ $KEEP -eq 1 ]] || psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
}

for n in "${COUNTS[@]}"; do bench_count "$n"; done

print_report
