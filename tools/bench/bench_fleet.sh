#!/usr/bin/env bash
# Fleet-scale benchmark: time and peak RSS of mtctl's fleet-wide read commands at N tenants.
#
#   tools/bench/bench_fleet.sh [--fleet 10000,100000] [--runs 1] [--concurrency 10] [--build mtctl|sql]
#                              [--build-jobs 2] [--mtctl PATH] [--plugin-path DIR] [--keep] [--wait-quiet S]
#                              [--steps status-json,status-table,...]
#
# For each N it builds a database bench_fleet_<N> with N empty tenant schemas and their tracking
# tables with every migration of tools/bench/migrations recorded (plain SQL for the schemas, then
# `mtctl migrate --all --mark-applied`; or, with --build sql, schemas and tables in one SQL pass),
# reports how long each step took, then measures (wall time, peak RSS of mtctl from /usr/bin/time -v)
# on the up-to-date fleet:
#   status --json, status (table), sync --status, diff, migrate --all (nothing pending),
#   migrate --all --mark-applied (nothing pending), tenant list --json, tenant list (table).
# The database is dropped at the end unless --keep. Database: $MT_TEST_DATABASE_URL (a superuser
# URL to a maintenance database); when unset, the project's throwaway server (tools/pg.sh start).
# 100,000 schemas take about 6 GB of disk and keep PostgreSQL busy for minutes: develop at 10,000.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_DIR="$ROOT/tools/bench"
MIGRATIONS="$BENCH_DIR/migrations"
WORK="${MT_BENCH_WORK:-${BUILD_DIR:-$ROOT/build}/bench}"

usage() {
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    cat <<'EOF'
Options:
  --fleet LIST          comma-separated tenant counts (default 10000)
  --runs N              runs of each measured command; the table shows the median time and the
                        largest peak RSS (default 1)
  --concurrency N       migrations.concurrency for the migrate runs (default 10)
  --build mtctl|sql     how the tracking tables are built: `mtctl migrate --all --mark-applied`
                        (default; timed with its peak RSS, the fresh --mark-applied figure) or plain
                        SQL: schema, table and records of 500 tenants per DO block, in --build-jobs
                        sessions at once (the fast way to 100,000)
  --build-jobs N        psql sessions of the SQL build (default 2: one per core of a small machine)
  --mtctl PATH          mtctl binary (default $MT_MTCTL or build/bin/mtctl)
  --plugin-path DIR     the manifest's [plugins] path (default $MT_BENCH_PLUGIN_PATH, else none: the
                        plugins beside the kernel library mtctl runs with)
  --keep                keep the bench_fleet_<N> databases (a later run with --keep reuses them)
  --steps LIST          only these measurements, comma-separated (default all: status-json,
                        status-table, sync-status, diff, noop, mark-noop, list-json, list-table;
                        `none` builds the fleet and measures nothing, with --keep to prepare it)
  --wait-quiet S        before each measurement wait up to S seconds (default 30) for the CPUs
                        to be <= 25% busy; --no-wait-quiet skips it
Environment: MT_TEST_DATABASE_URL, MT_MTCTL, MT_BENCH_PLUGIN_PATH, MT_BENCH_WORK (default build/bench),
             MT_BENCH_PSQL (psql binary; default the newest /usr/lib/postgresql/*/bin/psql)
EOF
}

FLEET=10000
RUNS=1
BUILD=mtctl
BUILD_JOBS=2
CONC=10
KEEP=0
STEP_LIST=""
QUIET_MAX=30
MTCTL="${MT_MTCTL:-$ROOT/build/bin/mtctl}"
PLUGIN_PATH="${MT_BENCH_PLUGIN_PATH:-}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --fleet) FLEET=$2; shift 2 ;;
        --fleet=*) FLEET=${1#*=}; shift ;;
        --runs) RUNS=$2; shift 2 ;;
        --runs=*) RUNS=${1#*=}; shift ;;
        --concurrency) CONC=$2; shift 2 ;;
        --concurrency=*) CONC=${1#*=}; shift ;;
        --build) BUILD=$2; shift 2 ;;
        --build=*) BUILD=${1#*=}; shift ;;
        --build-jobs) BUILD_JOBS=$2; shift 2 ;;
        --build-jobs=*) BUILD_JOBS=${1#*=}; shift ;;
        --mtctl) MTCTL=$2; shift 2 ;;
        --mtctl=*) MTCTL=${1#*=}; shift ;;
        --plugin-path) PLUGIN_PATH=$2; shift 2 ;;
        --plugin-path=*) PLUGIN_PATH=${1#*=}; shift ;;
        --keep) KEEP=1; shift ;;
        --steps) STEP_LIST=$2; shift 2 ;;
        --steps=*) STEP_LIST=${1#*=}; shift ;;
        --no-wait-quiet) QUIET_MAX=0; shift ;;
        --wait-quiet) QUIET_MAX=$2; shift 2 ;;
        --wait-quiet=*) QUIET_MAX=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench_fleet.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "bench_fleet.sh: --runs wants a positive integer" >&2; exit 2; }
[[ "$CONC" =~ ^[1-9][0-9]*$ ]] || { echo "bench_fleet.sh: --concurrency wants a positive integer" >&2; exit 2; }
[[ "$BUILD_JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "bench_fleet.sh: --build-jobs wants a positive integer" >&2; exit 2; }
[[ "$QUIET_MAX" =~ ^[0-9]+$ ]] || { echo "bench_fleet.sh: --wait-quiet wants seconds" >&2; exit 2; }
[[ "$BUILD" == mtctl || "$BUILD" == sql ]] || { echo "bench_fleet.sh: --build wants mtctl or sql" >&2; exit 2; }
IFS=',' read -r -a COUNTS <<< "$FLEET"
for n in "${COUNTS[@]}"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "bench_fleet.sh: bad tenant count '$n'" >&2; exit 2; }
done
[[ "$MTCTL" = /* ]] || MTCTL="$PWD/$MTCTL"

log() { printf '[fleet %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'bench_fleet.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=tools/bench/lib.sh
. "$BENCH_DIR/lib.sh"

[[ -x "$MTCTL" ]] || die "mtctl not found at $MTCTL (build it: cmake --build build --target mtctl)"
TIME_BIN=/usr/bin/time
"$TIME_BIN" -v true >/dev/null 2>&1 || die "GNU time not found at /usr/bin/time (apt-get install time)"
if [[ -z "${MT_BENCH_PSQL:-}" ]]; then
    MT_BENCH_PSQL=$(command -v psql || true)
    for cand in $(ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V -r); do
        MT_BENCH_PSQL=$cand
        break
    done
fi
PSQL=$MT_BENCH_PSQL
[[ -n "$PSQL" && -x "$PSQL" ]] || die "psql not found (apt-get install postgresql-client-15, or set MT_BENCH_PSQL)"

if [[ -z "${MT_TEST_DATABASE_URL:-}" ]]; then
    log "MT_TEST_DATABASE_URL is unset: starting the project's throwaway server (tools/pg.sh start)"
    eval "$("$ROOT/tools/pg.sh" start)"
fi
ADMIN_URL=$MT_TEST_DATABASE_URL
db_url() { # DB: ADMIN_URL with its database replaced
    local base=${ADMIN_URL%%\?*} query=""
    [[ "$ADMIN_URL" == *\?* ]] && query="?${ADMIN_URL#*\?}"
    echo "${base%/*}/$1$query"
}
psql_db() { local db=$1; shift; "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$(db_url "$db")" "$@"; }

mkdir -p "$WORK"
STAMP=$(date +%Y%m%d-%H%M%S)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
RESULTS="$WORK/fleet-$STAMP.tsv"   # n \t step \t seconds \t rss_kb \t exit
: > "$RESULTS"

# measure LOG CMD...: wall seconds in M_SECS, peak RSS (kB) in M_RSS, exit status in M_RC.
measure() {
    local logf=$1 tfile="$WORK/.fleet-time.out"
    shift
    local t0 t1
    t0=$(date +%s%N)
    set +e
    "$TIME_BIN" -v -o "$tfile" "$@" > "$logf" 2> "$logf.err"
    M_RC=$?
    set -e
    t1=$(date +%s%N)
    M_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
    M_RSS=$(awk -F': *' '/Maximum resident set size/ { print $2 }' "$tfile")
}

write_manifest() { # FILE DB
    cat > "$1" <<EOF
# written by tools/bench/bench_fleet.sh
[database]
url = $(db_url "$2")

[isolation]
schema_template = tenant_{id}

[migrations]
tenant_dir = $MIGRATIONS
table = __drizzle_migrations
format = auto
default_format = name
concurrency = $CONC

[plugins]
${PLUGIN_PATH:+path = $PLUGIN_PATH}
load = tracking-name, tracking-hash, tracking-drizzle-kit, discovery-sql

[roles]
discovery = discovery-sql

[plugin.discovery-sql]
query = SELECT id FROM public.tenants ORDER BY id
EOF
}

# build_fleet N DB: N tenants t0000001… in public.tenants, their empty schemas (SQL), then the
# tracking tables with every migration recorded (mtctl migrate --all --mark-applied, measured; or
# both by SQL, build_sql), then VACUUM ANALYZE; each step timed.
build_fleet() {
    local n=$1 db=$2 dir=$3 t0 t1
    if [[ $KEEP -eq 1 ]] && [[ "$("$PSQL" -X -A -t -d "$ADMIN_URL" -c "SELECT 1 FROM pg_database WHERE datname = '$db'" 2>/dev/null)" == 1 ]] \
        && [[ "$(psql_db "$db" -A -t -c "SELECT count(*) FROM public.tenants" 2>/dev/null)" == "$n" ]]; then
        log "N=$n: reusing database $db (--keep)"
        return 0
    fi
    "$PSQL" -X -q -d "$ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\""
    psql_db "$db" -c "CREATE TABLE public.tenants (id text PRIMARY KEY)" \
        -c "INSERT INTO public.tenants SELECT 't' || lpad(g::text, 7, '0') FROM generate_series(1, $n) g"
    if [[ $BUILD == sql ]]; then
        build_sql "$n" "$db"
    else
        log "N=$n: creating $n schemas"
        t0=$(date +%s%N)
        # 500 schemas per transaction: one CREATE SCHEMA takes few locks, but a single transaction
        # for all of them would keep 100,000 catalog entries' invalidations pending until its commit.
        awk -v n="$n" 'BEGIN {
            for (i = 1; i <= n; i++) {
                if (i % 500 == 1) print "BEGIN;"
                printf "CREATE SCHEMA tenant_t%07d;\n", i
                if (i % 500 == 0 || i == n) print "COMMIT;"
            }
        }' | psql_db "$db" -o /dev/null
        t1=$(date +%s%N)
        M_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
        log "  schemas: ${M_SECS}s"
        printf '%s\t%s\t%s\t%s\t%s\n' "$n" build-schemas "$M_SECS" - 0 >> "$RESULTS"
        psql_db "$db" -c "VACUUM ANALYZE" >/dev/null 2>&1 || true
        log "N=$n: tracking tables: migrate --all --mark-applied"
        measure "$dir/build-mark-applied.log" "$MTCTL" -c "$dir/multitenant.ini" --no-progress migrate --all --mark-applied
        log "  ${M_SECS}s, peak RSS ${M_RSS} kB, exit $M_RC"
        printf '%s\t%s\t%s\t%s\t%s\n' "$n" build-mark-applied "$M_SECS" "$M_RSS" "$M_RC" >> "$RESULTS"
        [[ $M_RC -eq 0 ]] || die "migrate --all --mark-applied failed (exit $M_RC), see $dir/build-mark-applied.log.err"
    fi
    t0=$(date +%s%N)
    psql_db "$db" -c "VACUUM ANALYZE" >/dev/null 2>&1 || true
    t1=$(date +%s%N)
    M_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
    log "  VACUUM ANALYZE: ${M_SECS}s"
    printf '%s\t%s\t%s\t%s\t%s\n' "$n" build-vacuum "$M_SECS" - 0 >> "$RESULTS"
}

# build_sql N DB: what creating the schemas and `migrate --all --mark-applied` leave (each schema
# with the name format's table holding every migration's name and hash), in one pass of DO blocks of
# 500 tenants each (one transaction: its locks stay well inside max_locks_per_transaction), spread
# over BUILD_JOBS psql sessions at once, since the server's catalog work is the whole cost.
build_sql() {
    local n=$1 db=$2 names="" hashes="" f t0 t1 job pids=()
    for f in "$MIGRATIONS"/*.sql; do
        names+="${names:+,}$(basename "$f" .sql)"
        hashes+="${hashes:+,}$(sha256sum "$f" | cut -d' ' -f1)"
    done
    log "N=$n: schemas and tracking tables (SQL, $BUILD_JOBS sessions)"
    t0=$(date +%s%N)
    for ((job = 0; job < BUILD_JOBS; job++)); do
        awk -v n="$n" -v jobs="$BUILD_JOBS" -v job="$job" -v names="$names" -v hashes="$hashes" 'BEGIN {
            q = "\047"
            print "SET client_min_messages = warning;"
            for (lo = 1; lo <= n; lo += 500) {
                if (int((lo - 1) / 500) % jobs != job) continue
                hi = lo + 499; if (hi > n) hi = n
                printf "DO $$ DECLARE s text; BEGIN FOR i IN %d..%d LOOP s := %st%s || lpad(i::text, 7, %s0%s); ", lo, hi, q, q, q, q
                printf "EXECUTE format(%sCREATE SCHEMA %%I%s, %stenant_%s || s); ", q, q, q, q
                printf "EXECUTE format(%sCREATE TABLE %%I.__drizzle_migrations (id serial PRIMARY KEY, name varchar(255) NOT NULL UNIQUE, applied_at timestamptz DEFAULT now(), hash text)%s, %stenant_%s || s); ", q, q, q, q
                printf "EXECUTE format(%sINSERT INTO %%I.__drizzle_migrations (name, hash) SELECT * FROM unnest($1, $2)%s, %stenant_%s || s) USING %s{%s}%s::text[], %s{%s}%s::text[]; ", q, q, q, q, q, names, q, q, hashes, q
                print "END LOOP; END $$;"
            }
        }' | psql_db "$db" -o /dev/null &
        pids+=($!)
    done
    for job in "${pids[@]}"; do wait "$job" || die "the SQL build failed (see the psql errors above)"; done
    t1=$(date +%s%N)
    M_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
    log "  ${M_SECS}s"
    printf '%s\t%s\t%s\t%s\t%s\n' "$n" build-sql "$M_SECS" - 0 >> "$RESULTS"
}

ALL_STEPS=(status-json status-table sync-status diff noop mark-noop list-json list-table)
STEPS=("${ALL_STEPS[@]}")
if [[ -n "$STEP_LIST" ]]; then
    STEPS=()
    if [[ "$STEP_LIST" != none ]]; then
        IFS=',' read -r -a STEPS <<< "$STEP_LIST"
        for step in "${STEPS[@]}"; do
            [[ " ${ALL_STEPS[*]} " == *" $step "* ]] || die "unknown step '$step' in --steps (one of: ${ALL_STEPS[*]}, or none)"
        done
    fi
fi
declare -A STEP_LABEL=(
    [build-schemas]="build: N empty schemas (SQL)"
    [build-mark-applied]="build: migrate --all --mark-applied"
    [build-sql]="build: schemas, tracking tables, records (SQL)"
    [build-vacuum]="build: VACUUM ANALYZE"
    [status-json]="status --json"
    [status-table]="status (table)"
    [sync-status]="sync --status"
    [diff]="diff"
    [noop]="migrate --all (nothing pending)"
    [mark-noop]="migrate --all --mark-applied (nothing pending)"
    [list-json]="tenant list --json"
    [list-table]="tenant list (table)"
)
declare -A STEP_ARGS=(
    [status-json]="--json status --all"
    [status-table]="status --all"
    [sync-status]="sync --status"
    [diff]="diff --all"
    [noop]="migrate --all"
    [mark-noop]="migrate --all --mark-applied"
    [list-json]="--json tenant list"
    [list-table]="tenant list"
)
bench_fleet() {
    local n=$1 db="bench_fleet_$1" dir="$WORK/fleet-$1" step run
    mkdir -p "$dir"
    write_manifest "$dir/multitenant.ini" "$db"
    build_fleet "$n" "$db" "$dir"
    for step in "${STEPS[@]}"; do
        for ((run = 1; run <= RUNS; run++)); do
            wait_quiet
            # shellcheck disable=SC2086  # STEP_ARGS holds several words on purpose
            measure "$dir/$step.$run.log" "$MTCTL" -c "$dir/multitenant.ini" --no-progress ${STEP_ARGS[$step]}
            log "N=$n $step run $run: ${M_SECS}s, peak RSS ${M_RSS} kB, exit $M_RC"
            printf '%s\t%s\t%s\t%s\t%s\n' "$n" "$step" "$M_SECS" "$M_RSS" "$M_RC" >> "$RESULTS"
        done
    done
    if [[ $KEEP -eq 0 ]]; then
        log "N=$n: dropping $db"
        "$PSQL" -X -q -d "$ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
    fi
}

for n in "${COUNTS[@]}"; do bench_fleet "$n"; done

{
    echo "mtctl fleet benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPU(s), load average before: $LOAD_START"
    echo "server: $("$PSQL" -X -A -t -d "$ADMIN_URL" -c 'SHOW server_version' 2>/dev/null || echo '?'); mtctl: $MTCTL"
    echo
    printf '%8s  %-48s  %9s  %8s  %5s\n' N step "time s" "RSS MB" exit
    for n in "${COUNTS[@]}"; do
        for step in build-schemas build-mark-applied build-sql build-vacuum "${STEPS[@]}"; do
            awk -F'\t' -v n="$n" -v s="$step" -v label="${STEP_LABEL[$step]}" '
                $1 == n && $2 == s { t[++k] = $3; if ($4 != "-" && $4 + 0 > r) r = $4 + 0; if ($5 != 0) bad = $5 }
                END {
                    if (!k) exit
                    for (i = 2; i <= k; i++) { x = t[i]; for (j = i - 1; j >= 1 && t[j] + 0 > x + 0; j--) t[j + 1] = t[j]; t[j + 1] = x }
                    m = (k % 2) ? t[(k + 1) / 2] : (t[k / 2] + t[k / 2 + 1]) / 2
                    printf "%8s  %-48s  %9.2f  %8s  %5s\n", n, label, m, (r ? sprintf("%.1f", r / 1024) : "-"), (bad ? bad : 0)
                }' "$RESULTS"
        done
    done
    echo
    echo "time: median wall time; RSS: largest peak resident set of mtctl (/usr/bin/time -v); raw: $RESULTS"
} | tee "$WORK/fleet-summary-$STAMP.txt"
