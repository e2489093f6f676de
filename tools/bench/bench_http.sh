#!/usr/bin/env bash
# HTTP load benchmark of the request adapter (issue 6, item 4): wrk against samples/http-service.
#
#   tools/bench/bench_http.sh [--duration 10s] [--runs 3] [--connections 16] [--wrk-threads 2]
#                             [--threads 8] [--tenants-small 200] [--tenants-large 10000]
#                             [--build-dir DIR] [--keep]
#
# Scenarios, each a random tenant per request (X-Tenant-Id: t1…tN), GET /tasks listing 3 rows:
#   raw      GET /raw/tasks: the same listing without the adapter (one fixed connection per server
#            thread, schema-qualified query; no extraction, validation, directory or pool)
#   lease    GET /lease/tasks: through manager.tenant(id) (pool + search_path), no adapter
#   adapter  GET /tasks through mt::adapter::httplib (extract-header, id validation, tenant
#            directory, lease with search_path)
# lease and adapter run in pool_mode per-tenant (max_pools = 50, pool_size = 2) and shared
# (pool_size = 10) over --tenants-small tenants, and in shared mode over --tenants-large.
# Reported: requests/s, p50/p99 latency, errors (socket errors + non-2xx), peak backends of the
# bench database (sampled every 200 ms), the service's CPU time per request (user + system, from
# /proc) and the database backends' (from /proc/PID/schedstat, when PostgreSQL runs on this
# machine): CPU per request is steadier than requests/s on a busy machine. Then the adapter's
# overhead against raw, both ways. Every run measures every scenario once (interleaved); the
# table shows medians of --runs runs, each figure taken separately.
#
# Database: $MT_TEST_DATABASE_URL (a superuser URL to a maintenance database); when unset the
# script starts the project's throwaway server with tools/pg.sh. It creates the database
# bench_http (tenant schemas tenant_t1…tenant_tN, each with a `tasks` table) and drops it at the
# end unless --keep. Needs wrk (Debian package) and a build with samples/http-service.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DURATION=10s
RUNS=3
CONNECTIONS=16
WRK_THREADS=2
THREADS=8
SMALL=200
LARGE=10000
BUILD=${MT_BENCH_BUILD_DIR:-$ROOT/build}
KEEP=0
DB=bench_http

usage() { sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        --wrk-threads) WRK_THREADS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --tenants-small) SMALL=$2; shift 2 ;;
        --tenants-large) LARGE=$2; shift 2 ;;
        --build-dir) BUILD=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench_http.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

log() { printf 'bench_http: %s\n' "$*" >&2; }
die() { printf 'bench_http: error: %s\n' "$*" >&2; exit 1; }

SERVICE=$BUILD/samples/http-service/http-service
[[ -x "$SERVICE" ]] || die "$SERVICE not built (cmake --build $BUILD --target http-service)"
command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
PSQL=$(ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V -r | head -1)
PSQL=${PSQL:-psql}

if [[ -z "${MT_TEST_DATABASE_URL:-}" ]]; then
    log "MT_TEST_DATABASE_URL unset: starting tools/pg.sh"
    eval "$("$ROOT/tools/pg.sh" start)"
fi
ADMIN_URL=$MT_TEST_DATABASE_URL
# The admin URL with its database name replaced.
base=${ADMIN_URL%%\?*}
query=${ADMIN_URL#"$base"}
URL="${base%/*}/$DB$query"

WORK=$(mktemp -d)
SERVICE_PID=""
cleanup() {
    [[ -n "$SERVICE_PID" ]] && kill "$SERVICE_PID" 2>/dev/null && wait "$SERVICE_PID" 2>/dev/null || true
    if [[ $KEEP == 0 ]]; then
        "$PSQL" -X -q -d "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

psql_admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$ADMIN_URL" "$@"; }
psql_db() { PGOPTIONS="-c client_min_messages=warning" "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URL" "$@"; }

# ---- data ---------------------------------------------------------------------------------
TENANTS_MAX=$(( SMALL > LARGE ? SMALL : LARGE ))
log "creating database $DB with $TENANTS_MAX tenant schemas"
psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" 2>/dev/null
psql_db -c "CREATE TABLE public.tenants (id text PRIMARY KEY)"
psql_db -c "INSERT INTO public.tenants SELECT 't' || i FROM generate_series(1, $TENANTS_MAX) i"
# Batches of 500 per transaction keep the lock table small.
psql_db <<SQL
DO \$\$
BEGIN
  FOR i IN 1..$TENANTS_MAX LOOP
    EXECUTE format('CREATE SCHEMA %I', 'tenant_t' || i);
    EXECUTE format('CREATE TABLE %I.tasks (id serial PRIMARY KEY, title text NOT NULL, done boolean NOT NULL DEFAULT false)', 'tenant_t' || i);
    EXECUTE format('INSERT INTO %I.tasks (title) VALUES (%L), (%L), (%L)', 'tenant_t' || i, 'first', 'second', 'third');
    IF i % 500 = 0 THEN COMMIT; END IF;
  END LOOP;
END
\$\$;
SQL

cat >"$WORK/tenants.lua" <<'LUA'
local n, path = 200, "/tasks"
init = function(args)
  n = tonumber(args[1]); path = args[2]
  math.randomseed(os.time() + tonumber((tostring({}):match("0x(%x+)") or "0"), 16) % 1000003)
end
request = function()
  return wrk.format("GET", path, { ["X-Tenant-Id"] = "t" .. math.random(1, n) })
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.timeout + e.status))
end
LUA

seconds() { local d=$1; case $d in *ms) echo 1 ;; *s) echo "${d%s}" ;; *m) echo $(( ${d%m} * 60 )) ;; *) echo "$d" ;; esac; }
DURATION_S=$(seconds "$DURATION")

# start_service MODE POOL_SIZE: the sample service on a free port, with --bench-raw.
start_service() {
    cat >"$WORK/multitenant.ini" <<INI
[database]
url = $URL
pool_mode = $1
pool_size = $2
max_pools = 50
[plugins]
load = discovery-sql, retry-exponential, extract-header
[roles]
discovery = discovery-sql
retry = retry-exponential
extractor = extract-header
[plugin.discovery-sql]
query = SELECT id FROM public.tenants ORDER BY id
INI
    : >"$WORK/service.log"
    "$SERVICE" -c "$WORK/multitenant.ini" --listen 127.0.0.1:0 --threads "$THREADS" --bench-raw >"$WORK/service.log" 2>&1 &
    SERVICE_PID=$!
    for _ in $(seq 100); do grep -q '^listening on ' "$WORK/service.log" && break; sleep 0.1; done
    ADDR=$(sed -n 's/^listening on //p' "$WORK/service.log")
    [[ -n "$ADDR" ]] || die "http-service did not start: $(cat "$WORK/service.log")"
}

stop_service() {
    kill "$SERVICE_PID" 2>/dev/null || true
    wait "$SERVICE_PID" 2>/dev/null || true
    SERVICE_PID=""
}

# peak_backends SECONDS: the most client backends connected to $DB, sampled every 200 ms.
peak_backends() {
    psql_admin -At <<SQL 2>&1 | sed -n 's/.*peak=//p'
DO \$\$
DECLARE m int := 0; c int;
BEGIN
  FOR i IN 1..($1 * 5) LOOP
    PERFORM pg_stat_clear_snapshot();
    SELECT count(*) INTO c FROM pg_stat_activity WHERE datname = '$DB' AND backend_type = 'client backend';
    m := greatest(m, c);
    PERFORM pg_sleep(0.2);
  END LOOP;
  RAISE NOTICE 'peak=%', m;
END
\$\$;
SQL
}

RESULTS=$WORK/results.tsv
# utime + stime of the service process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVICE_PID/stat"; }
# "pid ns" for every client backend of $DB (ns on a CPU so far; absent when not readable here).
backend_cpu() {
    local pid
    for pid in $(psql_admin -At -c "SELECT pid FROM pg_stat_activity WHERE datname = '$DB' AND backend_type = 'client backend'"); do
        [[ -r /proc/$pid/schedstat ]] && echo "$pid $(cut -d' ' -f1 "/proc/$pid/schedstat")"
    done
    return 0
}
# CPU the backends used between two backend_cpu snapshots, in ns (a backend first seen at the end
# started during the run: all of its CPU counts); empty when none was readable.
backend_cpu_delta() {
    awk 'NR == FNR { start[$1] = $2; next } { sum += $2 - ($1 in start ? start[$1] : 0); n++ } END { if (n) printf "%.0f", sum }' "$1" "$2"
}
# measure NAME TENANTS MODE PATH RUN
measure() {
    local name=$1 tenants=$2 mode=$3 path=$4 run=$5
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d2s -s "$WORK/tenants.lua" "http://$ADDR" -- "$tenants" "$path" >/dev/null
    peak_backends "$DURATION_S" >"$WORK/peak" &
    local sampler=$!
    local out cpu_before cpu_after
    backend_cpu >"$WORK/db_before"
    cpu_before=$(cpu_ticks)
    out=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$WORK/tenants.lua" "http://$ADDR" -- "$tenants" "$path")
    cpu_after=$(cpu_ticks)
    backend_cpu >"$WORK/db_after"
    wait "$sampler" || true
    read -r _ requests duration_us p50 p99 errors <<<"$(grep '^RESULT' <<<"$out")"
    local rps
    rps=$(awk -v r="$requests" -v d="$duration_us" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
    local cpu_us db_us db_ns
    cpu_us=$(awk -v t=$(( cpu_after - cpu_before )) -v hz="$(getconf CLK_TCK)" -v r="$requests" \
        'BEGIN { printf "%.0f", (r > 0 ? t / hz * 1e6 / r : 0) }')
    db_ns=$(backend_cpu_delta "$WORK/db_before" "$WORK/db_after")
    db_us=$(awk -v n="$db_ns" -v r="$requests" 'BEGIN { if (n == "" || r == 0) print "n/a"; else printf "%.0f", n / 1000 / r }')
    printf '%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%s\t%s\t%s\t%s\n' "$run" "$name" "$tenants" "$mode" "$rps" \
        "$(awk -v v="$p50" 'BEGIN { print v / 1000 }')" "$(awk -v v="$p99" 'BEGIN { print v / 1000 }')" \
        "$errors" "$(cat "$WORK/peak")" "$cpu_us" "$db_us" | tee -a "$RESULTS" >&2
}

log "wrk: $WRK_THREADS threads, $CONNECTIONS connections, $DURATION per run, $RUNS runs; service: $THREADS threads"
: >"$RESULTS"
# A fresh service per scenario, so that peak backends count only that scenario's connections.
scenario() {  # RUN NAME TENANTS POOL_MODE POOL_SIZE PATH
    start_service "$4" "$5"
    measure "$2" "$3" "$([[ $2 == raw ]] && echo "fixed connection" || echo "$4")" "$6" "$1"
    stop_service
}
for run in $(seq "$RUNS"); do
    scenario "$run" raw "$SMALL" per-tenant 2 /raw/tasks
    scenario "$run" lease "$SMALL" per-tenant 2 /lease/tasks
    scenario "$run" adapter "$SMALL" per-tenant 2 /tasks
    scenario "$run" lease "$SMALL" shared 10 /lease/tasks
    scenario "$run" adapter "$SMALL" shared 10 /tasks
    scenario "$run" raw "$LARGE" shared 10 /raw/tasks
    scenario "$run" lease "$LARGE" shared 10 /lease/tasks
    scenario "$run" adapter "$LARGE" shared 10 /tasks
done

# Medians over the runs, per scenario (name, tenants, mode), each column on its own; errors: the
# largest count, peak backends: the highest.
MEDIANS=$WORK/medians.tsv
awk -F'\t' '
    { k = $2 "\t" $3 "\t" $4; if (!(k in seen)) { seen[k] = 1; order[++n] = k }
      for (c = 5; c <= 11; c++) v[k, c, ++cnt[k, c]] = $c }
    function med(k, c,    m, i, j, t, a) {
        m = 0
        for (i = 1; i <= cnt[k, c]; i++) if (v[k, c, i] != "n/a") a[++m] = v[k, c, i] + 0
        if (m == 0) return "n/a"
        for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    function most(k, c,    i, m) { m = 0; for (i = 1; i <= cnt[k, c]; i++) if (v[k, c, i] + 0 > m) m = v[k, c, i] + 0; return m }
    END {
        for (i = 1; i <= n; i++) {
            k = order[i]
            printf "%s\t%.0f\t%.2f\t%.2f\t%d\t%d\t%s\t%s\n", k, med(k, 5), med(k, 6), med(k, 7), most(k, 8), most(k, 9),
                   med(k, 10), med(k, 11)
        }
    }' "$RESULTS" >"$MEDIANS"

echo
echo "HTTP benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs; medians of $RUNS runs of $DURATION"
printf '%-8s %8s %-17s %9s %8s %8s %7s %14s %12s %10s\n' scenario tenants pool_mode req/s p50_ms p99_ms errors peak_backends cpu_us/req db_us/req
while IFS=$'\t' read -r name tenants mode rps p50 p99 errors peak cpu db; do
    printf '%-8s %8s %-17s %9s %8s %8s %7s %14s %12s %10s\n' "$name" "$tenants" "$mode" "$rps" "$p50" "$p99" "$errors" "$peak" "$cpu" "$db"
done <"$MEDIANS"
echo "cpu_us/req: the service's CPU per request; db_us/req: the database backends' CPU per request."
echo
awk -F'\t' '
    $1 == "raw" { raw[$2] = $4; rawcpu[$2] = $9 + $10 }
    $1 == "lease" { lease[$2 "\t" $3] = $4; leasecpu[$2 "\t" $3] = $9 + $10 }
    $1 == "adapter" { rps[$2 "\t" $3] = $4; cpu[$2 "\t" $3] = $9 + $10 }
    END {
        for (k in rps) {
            split(k, p, "\t")
            if (raw[p[1]] > 0)
                printf "%s tenants, %s: adapter %.1f%% fewer requests/s than raw (lease alone %.1f%%);", p[1], p[2],
                       100 * (1 - rps[k] / raw[p[1]]), 100 * (1 - lease[k] / raw[p[1]])
            if (rawcpu[p[1]] > 0)
                printf " service + database CPU per request: raw %s us, lease %s us (+%.1f%%), adapter %s us (+%.1f%%)\n",
                       rawcpu[p[1]], leasecpu[k], 100 * (leasecpu[k] / rawcpu[p[1]] - 1), cpu[k], 100 * (cpu[k] / rawcpu[p[1]] - 1)
            else printf "\n"
        }
    }' "$MEDIANS" | sort
