#!/usr/bin/env bash
# A guided tour: builds mtenant, starts a throwaway PostgreSQL 15, creates a demo database with three
# tenants and runs mtctl against it.
#
#   tools/demo.sh
#
# Steps: tools/setup.sh; tools/pg.sh start; (re)create database mtenant_demo; in the scratch folder
# "$BUILD_DIR/demo": `mtctl init`, two sample tenant migrations, table public.tenants with acme,
# globex, initech; then `mtctl plugins`, `tenant list`, `tenant create` (acme with its
# migrations, the others without), `doctor`, `migrate --all --dry-run`, `migrate --all`, `status`,
# `health --all`, the library sample samples/runtime, and the REST sample samples/http-service on
# a free loopback port: tasks created and listed for acme and globex with curl (each sees only its
# own), 404 for an unknown tenant, 400 without a tenant id, /health/db and /metrics. Each command is
# echoed before it runs; the first failure (or an unexpected HTTP status) stops the demo with a
# non-zero exit.
#
# The service is stopped at the end (also on failure). PostgreSQL keeps running afterwards so you
# can explore; stop it with tools/pg.sh stop.
#
# Environment: BUILD_DIR (default <repo>/build), plus whatever tools/setup.sh and tools/pg.sh read.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$REPO_ROOT/build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$PWD/$BUILD_DIR ;; esac
export BUILD_DIR
cd "$REPO_ROOT"

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
MTCTL=$BUILD_DIR/bin/mtctl
HTTP_SERVICE=$BUILD_DIR/samples/http-service/http-service
DEMO_DIR=$BUILD_DIR/demo
service_pid=

# How to call tools/pg.sh for this build tree (BUILD_DIR only shown when it is not the default).
PG_SH="tools/pg.sh"
if [ "$BUILD_DIR" != "$REPO_ROOT/build" ]; then
  PG_SH="BUILD_DIR=$BUILD_DIR tools/pg.sh"
fi

die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

stop_service() {
  if [ -n "$service_pid" ]; then
    kill "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
    service_pid=
  fi
}

on_exit() {
  local rc=$?
  stop_service
  if [ "$rc" -ne 0 ]; then
    printf '\ndemo: failed (exit %s).' "$rc" >&2
    if [ -n "${DATABASE_URL:-}" ]; then
      printf ' PostgreSQL is still running; stop it with: %s stop' "$PG_SH" >&2
    fi
    printf '\n' >&2
  fi
}
trap on_exit EXIT

# Echoes a command the way a shell trace would (the mtctl and http-service paths shown by name).
show() {
  local line="+" arg
  for arg in "$@"; do
    if [ "$arg" = "$MTCTL" ]; then arg=mtctl; fi
    if [ "$arg" = "$HTTP_SERVICE" ]; then arg=http-service; fi
    if [ "$arg" = psql_demo ]; then arg=psql; fi
    case $arg in
      "&") ;;
      *[\"\$\`\\]*) arg="'${arg//\'/\'\\\'\'}'" ;;
      *\'*) arg="\"$arg\"" ;;
      *[!A-Za-z0-9_./:=@,+-]*|"") arg="'$arg'" ;;
    esac
    line+=" $arg"
  done
  printf '%s\n' "$line"
}

# Echoes a command, then runs it.
run() {
  show "$@"
  "$@"
}

# A request with curl, echoed; prints the body and the status, which must be the expected one.
#   http EXPECTED_STATUS CURL_ARGS...      (the body is left in $body)
http() {
  local expected=$1 out status
  shift
  show curl -sS "$@"
  out=$(curl -sS -w '\n%{http_code}' "$@") || die "curl failed"
  body=${out%$'\n'*}
  status=${out##*$'\n'}
  printf '%s\n  -> HTTP %s\n' "$body" "$status"
  [ "$status" = "$expected" ] || die "expected HTTP $expected, got $status"
}

psql_demo() {
  PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"
}

tools/setup.sh
[ -x "$MTCTL" ] || die "$MTCTL was not built"

pg_env=$(tools/pg.sh start)
eval "$pg_env"
export MT_TEST_DATABASE_URL DATABASE_URL

echo
echo "== database mtenant_demo"
run psql_demo "$MT_TEST_DATABASE_URL" -c 'DROP DATABASE IF EXISTS mtenant_demo WITH (FORCE)'
run psql_demo "$MT_TEST_DATABASE_URL" -c 'CREATE DATABASE mtenant_demo'

echo
echo "== project in $DEMO_DIR"
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"
cd "$DEMO_DIR"
run "$MTCTL" init
mkdir -p drizzle/tenant drizzle/shared

cat >drizzle/tenant/0000_create_tasks.sql <<'SQL'
CREATE TABLE tasks (
  id serial PRIMARY KEY,
  title text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
SQL
cat >drizzle/tenant/0001_add_done.sql <<'SQL'
ALTER TABLE tasks ADD COLUMN done boolean NOT NULL DEFAULT false;
SQL
echo "wrote drizzle/tenant/0000_create_tasks.sql, drizzle/tenant/0001_add_done.sql"

run psql_demo "$DATABASE_URL" -c 'CREATE TABLE public.tenants (id text PRIMARY KEY)'
run psql_demo "$DATABASE_URL" -c "INSERT INTO public.tenants (id) VALUES ('acme'), ('globex'), ('initech')"

echo
echo "== mtctl (manifest ./multitenant.ini, url = \${DATABASE_URL} = $DATABASE_URL)"
run "$MTCTL" plugins
run "$MTCTL" tenant list

# The tenant registry (public.tenants) lists the tenants; each needs its schema: `tenant create`
# makes it and applies every migration in one transaction; --no-migrate leaves them to `migrate`.
run "$MTCTL" tenant create --id acme
run "$MTCTL" tenant create --id globex --no-migrate
run "$MTCTL" tenant create --id initech --no-migrate
run "$MTCTL" doctor
run "$MTCTL" migrate --all --dry-run
run "$MTCTL" migrate --all
run "$MTCTL" status
run "$MTCTL" health --all

echo
echo "== the library: samples/runtime uses mt::TenantManager in each pool mode"
run "$BUILD_DIR/samples/runtime/runtime-sample"

echo
echo "== samples/http-service: tasks per tenant over HTTP, the tenant from the X-Tenant-Id header"
[ -x "$HTTP_SERVICE" ] || die "$HTTP_SERVICE was not built"
service_args=(--listen 127.0.0.1:0
  "--plugins.load=tracking-name, tracking-hash, tracking-drizzle-kit, discovery-sql, retry-exponential, metrics-prometheus, extract-header"
  --roles.extractor=extract-header --roles.sinks=metrics-prometheus)
show "$HTTP_SERVICE" "${service_args[@]}" "&"
"$HTTP_SERVICE" "${service_args[@]}" >http-service.log 2>&1 &
service_pid=$!
# Port 0: the service picks a free port and says which on its first line.
address=
for _ in $(seq 1 100); do
  address=$(sed -n 's/^listening on \([0-9.]*:[0-9]*\)$/\1/p' http-service.log)
  [ -n "$address" ] && break
  kill -0 "$service_pid" 2>/dev/null || die "http-service exited: $(cat http-service.log)"
  sleep 0.1
done
[ -n "$address" ] || die "http-service did not start listening in 10 s: $(cat http-service.log)"
BASE=http://$address
echo "listening on $address"

http 201 -H 'X-Tenant-Id: acme' -d '{"title":"Ship the demo"}' "$BASE/tasks"
http 201 -H 'X-Tenant-Id: globex' -d '{"title":"Hire a CFO"}' "$BASE/tasks"
http 201 -H 'X-Tenant-Id: globex' -d '{"title":"Close Q3"}' "$BASE/tasks"
# Each tenant lists only its own tasks: the handler's SQL names no schema, the lease's search_path does.
http 200 -H 'X-Tenant-Id: acme' "$BASE/tasks"
case $body in *"Hire a CFO"*|*"Close Q3"*) die "acme sees globex's tasks" ;; esac
case $body in *"Ship the demo"*) ;; *) die "acme does not see its task" ;; esac
http 200 -H 'X-Tenant-Id: globex' "$BASE/tasks"
case $body in *"Ship the demo"*) die "globex sees acme's task" ;; esac
case $body in *"Hire a CFO"*"Close Q3"*) ;; *) die "globex does not see its two tasks" ;; esac
http 200 -H 'X-Tenant-Id: initech' "$BASE/tasks"
http 404 -H 'X-Tenant-Id: umbrella' "$BASE/tasks"
http 400 "$BASE/tasks"
http 200 "$BASE/health/db"
metrics_pattern='^mt_(queries_total|pools_active)|^mt_pool_connections.*tenant="(acme|globex)"'
printf "+ curl -sS %s/metrics | grep -E '%s'\n" "$BASE" "$metrics_pattern"
curl -sS "$BASE/metrics" | grep -E "$metrics_pattern" || die "/metrics has no mt_ query or pool metrics"
stop_service
echo "stopped http-service"

cat <<EOF

Demo done. PostgreSQL 15 keeps running with database mtenant_demo. To explore:
  cd $DEMO_DIR
  export DATABASE_URL=$DATABASE_URL
  $MTCTL --help
Stop it with: $PG_SH stop          (add --purge to delete its data too)
EOF
