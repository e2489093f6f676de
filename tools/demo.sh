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
# `health --all`, and the library sample samples/runtime. Each command is echoed before it runs;
# the first failure stops the demo with a non-zero exit.
#
# PostgreSQL keeps running afterwards so you can explore; stop it with tools/pg.sh stop.
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
DEMO_DIR=$BUILD_DIR/demo

# How to call tools/pg.sh for this build tree (BUILD_DIR only shown when it is not the default).
PG_SH="tools/pg.sh"
if [ "$BUILD_DIR" != "$REPO_ROOT/build" ]; then
  PG_SH="BUILD_DIR=$BUILD_DIR tools/pg.sh"
fi

die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '\ndemo: failed (exit %s).' "$rc" >&2
    if [ -n "${DATABASE_URL:-}" ]; then
      printf ' PostgreSQL is still running; stop it with: %s stop' "$PG_SH" >&2
    fi
    printf '\n' >&2
  fi
}
trap on_exit EXIT

# Echoes a command the way a shell trace would (the mtctl path shown as "mtctl"), then runs it.
run() {
  local line="+" arg
  for arg in "$@"; do
    if [ "$arg" = "$MTCTL" ]; then arg=mtctl; fi
    if [ "$arg" = psql_demo ]; then arg=psql; fi
    case $arg in
      *[\"\$\`\\]*) arg="'${arg//\'/\'\\\'\'}'" ;;
      *\'*) arg="\"$arg\"" ;;
      *[!A-Za-z0-9_./:=@,+-]*|"") arg="'$arg'" ;;
    esac
    line+=" $arg"
  done
  printf '%s\n' "$line"
  "$@"
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

cat <<EOF

Demo done. PostgreSQL 15 keeps running with database mtenant_demo. To explore:
  cd $DEMO_DIR
  export DATABASE_URL=$DATABASE_URL
  $MTCTL --help
Stop it with: $PG_SH stop          (add --purge to delete its data too)
EOF
