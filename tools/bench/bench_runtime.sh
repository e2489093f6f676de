#!/usr/bin/env bash
# Runtime benchmark (issue 4, item 8): 20,000 `SELECT 1` through tenant leases, 16 in flight, next to
# raw libpqxx and to drizzle-multitenant 1.3.5's createTenantManager(config).getDb(tenantId).
#
#   tools/bench/bench_runtime.sh [--build DIR] [--runs 3] [--queries 20000] [--inflight 16]
#                                [--pool-size 10] [--shared-pool-size 16] [--max-pools 50]
#                                [--raw-many 200] [--skip-reference] [--memory-url URL]
#                                [--wait-quiet S] [--keep]
#
# Builds nothing: DIR (default build) must hold bin/mt-lease-bench. Scenarios, tenants t0..tN-1
# picked at random (the same seeded sequence for every run and tool):
#   per-tenant 200 / 50      pool_mode per-tenant, max_pools 50, pool_size --pool-size (10, as
#                            the reference's default pg pool `max`)
#   per-tenant 50 warm       the same after one untimed pass (pools already open: steady state)
#   shared 50 / 200 / 10000  pool_mode shared, pool_size --shared-pool-size (16: the raw floor's
#   transaction 50           connection count); transaction: pool_mode transaction, same size
#   shared 50 $1             `SELECT $1::int` (a parameter: the search_path switch needs its own
#   raw 16 / raw 16 $1       round trip); raw: bare libpqxx, one connection per worker
#   raw 200 (cold / warm)    bare libpqxx on --raw-many connections (about what per-tenant mode
#                            holds for 50 tenants), a query taking a free one from its tenant's share
#   reference 200 / 50       drizzle-multitenant 1.3.5 getDb(), maxPools 50, pool max --pool-size
# raw/x compares each mode with raw libpqxx on about as many backends as the mode holds: the
# per-tenant 50-tenant rows with raw 200 (cold with cold, warm with warm), the others with raw 16.
# Every run measures every scenario once, in that order (interleaved, so that a noisy minute hurts
# one run of each rather than every run of one); the table shows medians of --runs runs, each
# figure taken separately. Peak backends are sampled from pg_stat_activity every 20 ms by each
# program; RSS is the client's peak (VmHWM); cpu_us is client + server CPU per query (the server's
# from /proc/PID/schedstat of the backends, so only when PostgreSQL runs on this machine and is
# readable): steadier than queries/s on a busy machine. Before each measurement the script waits up to
# --wait-quiet seconds (default 20) for the CPUs to be <= 25% busy.
#
# Memory goal: a manager holding 50 tenant pools of 10 connections (mt-lease-bench --memory),
# next to 500 bare libpqxx connections. That needs ~520 free connections (without --memory-url,
# at most half of the server's free ones are taken); with fewer it measures as many pools as fit
# and scales the figure to 50 pools (and says so).
# --memory-url points the memory step at another server (any database; it only connects).
#
# Database: $MT_TEST_DATABASE_URL (a superuser URL to a maintenance database). The script creates
# the database bench_runtime (10,000 empty schemas tenant_t0…) and drops it at the end unless
# --keep. The reference is installed with `npm ci` from tools/bench/runtime-node/ into
# DIR/bench-runtime-node (npm registry needed once; --skip-reference runs without it).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_DIR=$ROOT/tools/bench
BUILD=$ROOT/build
RUNS=3
QUERIES=20000
INFLIGHT=16
POOL_SIZE=10
SHARED_POOL_SIZE=16
RAW_MANY=200
MAX_POOLS=50
SKIP_REFERENCE=0
MEMORY_URL=""
QUIET_MAX=20
KEEP=0
DB=bench_runtime
TENANTS_MAX=10000

usage() { sed -n '2,38p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build) BUILD=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --queries) QUERIES=$2; shift 2 ;;
        --inflight) INFLIGHT=$2; shift 2 ;;
        --pool-size) POOL_SIZE=$2; shift 2 ;;
        --shared-pool-size) SHARED_POOL_SIZE=$2; shift 2 ;;
        --max-pools) MAX_POOLS=$2; shift 2 ;;
        --raw-many) RAW_MANY=$2; shift 2 ;;
        --skip-reference) SKIP_REFERENCE=1; shift ;;
        --memory-url) MEMORY_URL=$2; shift 2 ;;
        --wait-quiet) QUIET_MAX=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench_runtime: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac

log() { printf 'bench_runtime: %s\n' "$*" >&2; }
die() { printf 'bench_runtime: error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=tools/bench/lib.sh
. "$BENCH_DIR/lib.sh"

LEASE_BENCH=$BUILD/bin/mt-lease-bench
[[ -x "$LEASE_BENCH" ]] || die "$LEASE_BENCH not built (cmake --build $BUILD --target mt-lease-bench)"
[[ -n "${MT_TEST_DATABASE_URL:-}" ]] || die "set MT_TEST_DATABASE_URL to a superuser URL (e.g. from tools/pg.sh start)"
PSQL=${MT_BENCH_PSQL:-$(ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V -r | head -1)}
PSQL=${PSQL:-psql}
ADMIN_URL=$MT_TEST_DATABASE_URL
base=${ADMIN_URL%%\?*}
query=${ADMIN_URL#"$base"}
URL="${base%/*}/$DB$query"

WORK=$(mktemp -d)
cleanup() {
    if [[ $KEEP == 0 ]]; then
        "$PSQL" -X -q -d "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
psql_admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$ADMIN_URL" "$@"; }
psql_admin -c 'SELECT 1' >/dev/null || die "cannot connect to $ADMIN_URL"

# ---- reference (npm, pinned by tools/bench/runtime-node/package-lock.json) ------------------
NODE_DIR=${MT_BENCH_RUNTIME_NODE_DIR:-$BUILD/bench-runtime-node}
if [[ $SKIP_REFERENCE == 0 ]]; then
    install_reference "$BENCH_DIR/runtime-node" "$NODE_DIR"
    # Beside its node_modules, so that its imports resolve there.
    cp "$BENCH_DIR/runtime-node/lease_bench.mjs" "$NODE_DIR/"
fi

# ---- database ---------------------------------------------------------------------------------
log "creating database $DB with $TENANTS_MAX tenant schemas"
psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" 2>/dev/null
PGOPTIONS="-c client_min_messages=warning" "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URL" <<SQL
DO \$\$
BEGIN
  FOR i IN 0..$((TENANTS_MAX - 1)) LOOP
    EXECUTE format('CREATE SCHEMA %I', 'tenant_t' || i);
    IF i % 1000 = 999 THEN COMMIT; END IF;
  END LOOP;
END
\$\$;
SQL
psql_admin -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null 2>&1 || true

manifest() {  # FILE MODE POOL_SIZE [URL]
    cat >"$1" <<INI
[database]
url = ${4:-$URL}
pool_mode = $2
pool_size = $3
max_pools = $MAX_POOLS
INI
}
manifest "$WORK/per-tenant.ini" per-tenant "$POOL_SIZE"
manifest "$WORK/shared.ini" shared "$SHARED_POOL_SIZE"
manifest "$WORK/transaction.ini" transaction "$SHARED_POOL_SIZE"

# A field of a flat JSON line (numbers and booleans only).
jget() { grep -o "\"$2\":[^,}]*" <<<"$1" | head -1 | cut -d: -f2; }

# ---- scenarios --------------------------------------------------------------------------------
# name|label|pool description|tenants|command...
SCENARIOS=(
    "pt200|per-tenant|max_pools $MAX_POOLS x $POOL_SIZE|200|$LEASE_BENCH --manifest $WORK/per-tenant.ini"
    "pt50|per-tenant|max_pools $MAX_POOLS x $POOL_SIZE|50|$LEASE_BENCH --manifest $WORK/per-tenant.ini"
    "pt50w|per-tenant, warm|max_pools $MAX_POOLS x $POOL_SIZE|50|$LEASE_BENCH --manifest $WORK/per-tenant.ini --warm"
    "sh50|shared|pool_size $SHARED_POOL_SIZE|50|$LEASE_BENCH --manifest $WORK/shared.ini"
    "sh200|shared|pool_size $SHARED_POOL_SIZE|200|$LEASE_BENCH --manifest $WORK/shared.ini"
    "sh10k|shared|pool_size $SHARED_POOL_SIZE|10000|$LEASE_BENCH --manifest $WORK/shared.ini"
    "tx50|transaction|pool_size $SHARED_POOL_SIZE|50|$LEASE_BENCH --manifest $WORK/transaction.ini"
    "raw|raw libpqxx|$INFLIGHT connections|50|$LEASE_BENCH --manifest $WORK/shared.ini --raw"
    "rawm|raw libpqxx|$RAW_MANY connections|50|$LEASE_BENCH --manifest $WORK/shared.ini --raw --raw-connections $RAW_MANY"
    "rawmw|raw libpqxx, warm|$RAW_MANY connections|50|$LEASE_BENCH --manifest $WORK/shared.ini --raw --raw-connections $RAW_MANY --warm"
    "sh50p|shared, \$1|pool_size $SHARED_POOL_SIZE|50|$LEASE_BENCH --manifest $WORK/shared.ini --param"
    "rawp|raw libpqxx, \$1|$INFLIGHT connections|50|$LEASE_BENCH --manifest $WORK/shared.ini --raw --param"
)
if [[ $SKIP_REFERENCE == 0 ]]; then
    REF="node $NODE_DIR/lease_bench.mjs --url $URL --max-pools $MAX_POOLS --pool-size $POOL_SIZE"
    SCENARIOS+=("ref200|drizzle-multitenant|maxPools $MAX_POOLS x $POOL_SIZE|200|$REF"
                "ref50|drizzle-multitenant|maxPools $MAX_POOLS x $POOL_SIZE|50|$REF")
fi

RESULTS=$WORK/results
: >"$RESULTS"
log "$RUNS runs of $QUERIES queries, $INFLIGHT in flight; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq "$RUNS"); do
    for s in "${SCENARIOS[@]}"; do
        IFS='|' read -r name label pool tenants cmd <<<"$s"
        wait_quiet
        out=$($cmd --tenants "$tenants" --queries "$QUERIES" --inflight "$INFLIGHT" 2>"$WORK/$name.err" | tail -1) || true
        if [[ -z "$out" || "$(jget "$out" errors)" != 0 ]]; then
            log "run $run $name: failed: $(head -3 "$WORK/$name.err")"
            continue
        fi
        log "run $run $name: $(printf '%.0f' "$(jget "$out" qps)") q/s"
        printf '%s\t%s\n' "$name" "$out" >>"$RESULTS"
    done
done

# median NAME FIELD: the median over the runs of one scenario's field ("" when it never ran).
median() {
    awk -F'\t' -v n="$1" '$1 == n { print $2 }' "$RESULTS" | while read -r line; do jget "$line" "$2"; done |
        { grep -E '^-?[0-9][0-9.eE+-]*$' || true; } | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
fmt() { [[ -n "$2" ]] && printf "$1" "$2" || printf 'n/a'; }

echo
echo "Runtime benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$QUERIES x SELECT 1, $INFLIGHT in flight, medians of $RUNS runs"
echo
printf '%-22s %-20s %7s %7s %7s %7s %9s %6s %7s %6s %12s %6s %6s\n' scenario pool tenants 'q/s' p50_ms p99_ms evictions pools peak_be rss_mb 'cpu_us c+s' 'x ref' 'raw/x'
RAW_QPS=$(median raw qps)
RAWP_QPS=$(median rawp qps)
for s in "${SCENARIOS[@]}"; do
    IFS='|' read -r name label pool tenants cmd <<<"$s"
    qps=$(median "$name" qps)
    ref=""
    case $name in
        pt200|sh200|ref200) ref=$(median ref200 qps) ;;
        ref50|pt50|pt50w|sh50|tx50|sh50p|sh10k) ref=$(median ref50 qps) ;;
    esac
    [[ $name == ref* ]] && ref=""
    vsref=""; vsraw=""
    [[ -n "$qps" && -n "$ref" ]] && vsref=$(awk -v a="$qps" -v b="$ref" 'BEGIN { printf "%.1f", a / b }')
    floor=$RAW_QPS
    case $name in
        sh50p) floor=$RAWP_QPS ;;
        pt50) floor=$(median rawm qps) ;;
        pt50w) floor=$(median rawmw qps) ;;
    esac
    [[ -n "$qps" && -n "$floor" && $name != raw* ]] && vsraw=$(awk -v a="$qps" -v b="$floor" 'BEGIN { printf "%.2f", b / a }')
    cpu_c=$(median "$name" client_cpu_us_per_query)
    cpu_s=$(median "$name" server_cpu_us_per_query)
    cpu="n/a"
    [[ -n "$cpu_c" && -n "$cpu_s" ]] && cpu=$(printf '%.0f+%.0f' "$cpu_c" "$cpu_s")
    printf '%-22s %-20s %7s %7s %7s %7s %9s %6s %7s %6s %12s %6s %6s\n' "$label" "$pool" "$tenants" \
        "$(fmt %.0f "$qps")" "$(fmt %.2f "$(median "$name" p50_ms)")" "$(fmt %.2f "$(median "$name" p99_ms)")" \
        "$(fmt %.0f "$(median "$name" evictions)")" "$(fmt %.0f "$(median "$name" pools_created)")" \
        "$(fmt %.0f "$(median "$name" peak_backends)")" "$(fmt %.0f "$(median "$name" rss_mb)")" \
        "$cpu" "${vsref:-}" "${vsraw:-}"
done
echo "x ref: queries/s over the reference's with as many tenants (10,000 tenants: over its 50-tenant,"
echo "no-eviction figure); raw/x: raw libpqxx's queries/s over the row's: per-tenant 50 over raw on"
echo "$RAW_MANY connections (warm over warm), the \$1 row over raw \$1, the others over raw on $INFLIGHT."
echo "pools: pools created (the reference: onPoolCreated calls)."

# ---- memory -----------------------------------------------------------------------------------
MEM_ADMIN=${MEMORY_URL:-$URL}
manifest "$WORK/memory.ini" per-tenant 10 "$MEM_ADMIN"
sed -i "s/^max_pools = .*/max_pools = 50/" "$WORK/memory.ini"
free=$("$PSQL" -X -At -d "$MEM_ADMIN" -c "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int - (SELECT count(*) FROM pg_stat_activity)")
# Leave room for everybody else on a shared server: half the free connections (at least 20).
if [[ -n "$MEMORY_URL" ]]; then spare=20; else spare=$(( free / 2 > 20 ? free / 2 : 20 )); fi
pools=$(( (free - spare) / 10 ))
(( pools > 50 )) && pools=50
echo
if (( pools < 1 )); then
    echo "memory: skipped, the server has only $free free connections"
else
    wait_quiet
    mem=$("$LEASE_BENCH" --manifest "$WORK/memory.ini" --memory --pools "$pools" --pool-connections 10 2>"$WORK/mem.err" | tail -1) || true
    rawmem=$("$LEASE_BENCH" --manifest "$WORK/memory.ini" --memory --raw --pools "$pools" --pool-connections 10 2>>"$WORK/mem.err" | tail -1) || true
    if [[ -z "$mem" || -z "$rawmem" ]]; then
        echo "memory: failed: $(head -3 "$WORK/mem.err")"
    else
        added=$(jget "$mem" rss_added_mb)
        scaled=$(awk -v a="$added" -v p="$pools" 'BEGIN { printf "%.1f", a * 50 / p }')
        printf 'memory: a manager holding %d pools x 10 connections (%s backends) adds %.1f MB RSS (%.1f kB per connection;\n' \
            "$pools" "$(jget "$mem" connections)" "$added" "$(jget "$mem" kb_per_connection)"
        printf '        bare libpqxx: %.1f MB for %s connections, %.1f kB each)' "$(jget "$rawmem" rss_added_mb)" \
            "$(jget "$rawmem" connections)" "$(jget "$rawmem" kb_per_connection)"
        if (( pools < 50 )); then
            printf '; scaled to 50 pools: %s MB (the server had %d free connections)' "$scaled" "$free"
        fi
        echo
        awk -v s="$scaled" 'BEGIN { exit !(s < 20) }' && echo "memory goal (< 20 MB for 50 x 10): met" ||
            echo "memory goal (< 20 MB for 50 x 10): missed"
    fi
fi

# ---- goals ------------------------------------------------------------------------------------
if [[ $SKIP_REFERENCE == 0 ]]; then
    echo
    awk -v pt200="$(median pt200 qps)" -v ref200="$(median ref200 qps)" -v ref50="$(median ref50 qps)" \
        -v sh200="$(median sh200 qps)" -v sh10k="$(median sh10k qps)" -v sh50="$(median sh50 qps)" \
        -v sh200b="$(median sh200 peak_backends)" -v sh10kb="$(median sh10k peak_backends)" \
        -v sh50p99="$(median sh50 p99_ms)" -v sh200p99="$(median sh200 p99_ms)" -v sh10kp99="$(median sh10k p99_ms)" \
        -v pt50="$(median pt50 qps)" -v pt50w="$(median pt50w qps)" -v tx50="$(median tx50 qps)" -v raw="$RAW_QPS" \
        -v rawm="$(median rawm qps)" -v rawmw="$(median rawmw qps)" -v many="$RAW_MANY" -v inflight="$INFLIGHT" \
        -v size="$SHARED_POOL_SIZE" '
        function verdict(ok) { return ok ? "met" : "MISSED" }
        BEGIN {
            printf "goal per-tenant 200 >= 5x reference: %.1fx, %s\n", pt200 / ref200, verdict(pt200 >= 5 * ref200)
            printf "goal shared 200 / 10,000 >= 2x reference 50: %.1fx / %.1fx, %s\n", sh200 / ref50, sh10k / ref50,
                   verdict(sh200 >= 2 * ref50 && sh10k >= 2 * ref50)
            printf "goal shared peak backends <= pool_size %d: %d / %d, %s\n", size, sh200b, sh10kb, verdict(sh200b <= size && sh10kb <= size)
            printf "goal shared p99 within 2x of 50 tenants (%.2f ms): %.2f / %.2f ms, %s\n", sh50p99, sh200p99, sh10kp99,
                   verdict(sh200p99 <= 2 * sh50p99 && sh10kp99 <= 2 * sh50p99)
            printf "goal 50 tenants >= 2x reference: per-tenant %.1fx, warm %.1fx, shared %.1fx, transaction %.1fx, %s\n",
                   pt50 / ref50, pt50w / ref50, sh50 / ref50, tx50 / ref50,
                   verdict(pt50 >= 2 * ref50 && sh50 >= 2 * ref50 && tx50 >= 2 * ref50)
            printf "goal 50 tenants within 1.3x of raw on as many connections: per-tenant %.2f (warm %.2f) vs raw on %d,",
                   rawm / pt50, rawmw / pt50w, many
            all = rawm <= 1.3 * pt50 && raw <= 1.3 * sh50 && raw <= 1.3 * tx50
            some = rawm <= 1.3 * pt50 || raw <= 1.3 * sh50 || raw <= 1.3 * tx50
            printf " shared %.2f, transaction %.2f vs raw on %d: %s\n", raw / sh50, raw / tx50, inflight,
                   all ? "met in every mode" : (some ? "met in some modes only" : "MISSED")
            printf "  (per-tenant 50 against raw on %d connections instead: %.2f, warm %.2f)\n", inflight, raw / pt50, raw / pt50w
        }'
fi
