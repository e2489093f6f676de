#!/usr/bin/env bash
# A throwaway PostgreSQL 15 for development and tests, kept under "$BUILD_DIR/pg".
#
#   tools/pg.sh start          initdb if needed, start on a free port, print the env (idempotent)
#   tools/pg.sh env            print the export lines:   eval "$(tools/pg.sh env)"
#   tools/pg.sh status         say whether it runs; exit 0 when running, 3 when not
#   tools/pg.sh stop [--purge] [--immediate]
#                              stop it; --purge also deletes its data, log and port file;
#                              --immediate stops as a crash would (no shutdown checkpoint, crash
#                              recovery at the next start)
#
# Only `export ...` lines go to stdout (so `eval "$(tools/pg.sh start)"` works); everything else
# goes to stderr. The server listens on 127.0.0.1 only, trusts every local connection, and runs
# with durability off (fsync, synchronous_commit, full_page_writes): test data only.
# As root it runs as the postgres user (PostgreSQL refuses root).
#
# Environment:
#   BUILD_DIR      build tree (default: <repo>/build); the cluster lives in $BUILD_DIR/pg
#   PG_BIN         PostgreSQL binaries (default: /usr/lib/postgresql/15/bin)
#   PG_PORT_BASE   first port to probe (default: 25432, below the ephemeral port range so no
#                  client socket holds it); the first free one is used
#   PG_EXTRA_OPTS  extra server options appended to the defaults, e.g. "-c log_statement=all"
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$REPO_ROOT/build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$PWD/$BUILD_DIR ;; esac

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_PORT_BASE=${PG_PORT_BASE:-25432}
PG_ROOT=$BUILD_DIR/pg
PG_DATA=$PG_ROOT/data
PG_LOG=$PG_ROOT/postgres.log
PG_PORT_FILE=$PG_ROOT/port
PG_SETTINGS="-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 -c shared_buffers=256MB -c max_locks_per_transaction=256"

log() { printf 'pg: %s\n' "$*" >&2; }
die() { printf 'pg: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,22s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

# A Unix socket path must fit in 107 bytes and PostgreSQL's option parsing dislikes spaces and
# quotes: a deep or odd build tree falls back to a folder under /tmp named after the cluster, so it
# stays the same across start/stop.
socket_dir() {
  local dir=$PG_ROOT/socket
  case $dir in
    *[!A-Za-z0-9/._+-]*) dir="" ;;
  esac
  if [ -z "$dir" ] || [ $((${#dir} + 20)) -gt 100 ]; then
    dir=/tmp/mtenant-pg-$(printf '%s' "$PG_ROOT" | md5sum | cut -c1-12)
  fi
  printf '%s\n' "$dir"
}
PG_SOCKET=$(socket_dir)

is_root() { [ "$(id -u)" -eq 0 ]; }

# Runs a PostgreSQL program as the cluster's owner, from / (so the postgres user never needs
# access to the caller's working directory).
as_owner() {
  if is_root; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

# As root: let the postgres user reach $1 by adding o+x to each ancestor it cannot traverse
# (checked from / downward, so only the folders that block it change).
make_traversable() {
  local dir ancestors=()
  dir=$(dirname "$1")
  while [ "$dir" != / ]; do
    ancestors=("$dir" "${ancestors[@]}")
    dir=$(dirname "$dir")
  done
  for dir in "${ancestors[@]}"; do
    if ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
      log "chmod o+x $dir (so the postgres user can reach $1)"
      chmod o+x "$dir"
    fi
  done
}

prepare_dirs() {
  mkdir -p "$PG_ROOT" "$PG_SOCKET"
  if is_root; then
    id postgres >/dev/null 2>&1 || die "no postgres user: install postgresql-15 (tools/setup.sh)"
    chown postgres:postgres "$PG_ROOT" "$PG_SOCKET"
    [ -e "$PG_DATA" ] && chown -R postgres:postgres "$PG_DATA"
    [ -e "$PG_LOG" ] && chown postgres:postgres "$PG_LOG"
    make_traversable "$PG_ROOT"
    make_traversable "$PG_SOCKET"
  fi
  chmod 700 "$PG_SOCKET"
}

is_running() {
  [ -f "$PG_DATA/PG_VERSION" ] || return 1
  as_owner "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}

# The port the running server listens on (from postmaster.pid, falling back to the port file).
current_port() {
  local port=""
  if [ -r "$PG_DATA/postmaster.pid" ]; then
    port=$(sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null || true)
  fi
  if [ -z "$port" ] && [ -r "$PG_PORT_FILE" ]; then
    port=$(cat "$PG_PORT_FILE")
  fi
  [ -n "$port" ] || die "cannot tell the port of the cluster in $PG_DATA"
  printf '%s\n' "$port"
}

# True when something listens on (or accepts connections at) 127.0.0.1:$1 or *:$1.
port_in_use() {
  local port=$1
  if command -v ss >/dev/null 2>&1 &&
     ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
    return 0
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    return 0
  fi
  return 1
}

free_port() {
  local port=$1
  while port_in_use "$port"; do
    port=$((port + 1))
    [ "$port" -le 65535 ] || die "no free TCP port from $PG_PORT_BASE upward"
  done
  printf '%s\n' "$port"
}

print_env() {
  local port=$1
  printf 'export MT_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:%s/postgres\n' "$port"
  printf 'export DATABASE_URL=postgresql://postgres@127.0.0.1:%s/mtenant_demo\n' "$port"
}

init_cluster() {
  [ -x "$PG_BIN/initdb" ] || die "$PG_BIN/initdb not found: install postgresql-15 (tools/setup.sh)"
  log "initdb $PG_DATA"
  rm -rf "$PG_DATA"
  mkdir -p "$PG_DATA"
  if is_root; then chown postgres:postgres "$PG_DATA"; fi
  as_owner "$PG_BIN/initdb" --no-sync -A trust -U postgres -E UTF8 --locale=C -D "$PG_DATA" \
    >"$PG_ROOT/initdb.log" 2>&1 || { cat "$PG_ROOT/initdb.log" >&2; die "initdb failed"; }
}

cmd_start() {
  prepare_dirs
  if is_running; then
    local port
    port=$(current_port)
    printf '%s\n' "$port" >"$PG_PORT_FILE"
    log "already running on 127.0.0.1:$port (data $PG_DATA)"
    print_env "$port"
    return 0
  fi
  [ -f "$PG_DATA/PG_VERSION" ] || init_cluster

  # Another process may take the probed port before the server binds it: try the next one.
  local port=$PG_PORT_BASE attempt
  for attempt in 1 2 3 4 5; do
    port=$(free_port "$port")
    log "starting PostgreSQL 15 on 127.0.0.1:$port (data $PG_DATA, log $PG_LOG)"
    : >"$PG_LOG"
    if is_root; then chown postgres:postgres "$PG_LOG"; fi
    if as_owner "$PG_BIN/pg_ctl" start -w -t 60 -D "$PG_DATA" -l "$PG_LOG" \
         -o "-p $port -k '$PG_SOCKET' $PG_SETTINGS ${PG_EXTRA_OPTS:-}" >/dev/null; then
      printf '%s\n' "$port" >"$PG_PORT_FILE"
      log "ready"
      print_env "$port"
      return 0
    fi
    if grep -q 'could not bind\|could not create any TCP/IP sockets\|Address already in use' "$PG_LOG"; then
      log "port $port taken meanwhile (attempt $attempt), trying the next one"
      port=$((port + 1))
      continue
    fi
    break
  done
  tail -n 30 "$PG_LOG" >&2 || true
  die "PostgreSQL did not start; full log: $PG_LOG"
}

cmd_env() {
  is_running || die "not running (data $PG_DATA); start it with: tools/pg.sh start"
  print_env "$(current_port)"
}

cmd_status() {
  if is_running; then
    log "running on 127.0.0.1:$(current_port) (data $PG_DATA, log $PG_LOG)"
    return 0
  fi
  if [ -f "$PG_DATA/PG_VERSION" ]; then
    log "stopped (data $PG_DATA kept; tools/pg.sh start resumes it)"
  else
    log "stopped (no cluster in $PG_DATA)"
  fi
  return 3
}

cmd_stop() {
  local purge=0 mode=fast
  while [ $# -gt 0 ]; do
    case $1 in
      --purge) purge=1 ;;
      --immediate) mode=immediate ;;
      *) usage >&2; die "unknown argument to stop: $1" ;;
    esac
    shift
  done
  if is_running; then
    log "stopping, $mode mode (data $PG_DATA)"
    as_owner "$PG_BIN/pg_ctl" stop -w -t 60 -m "$mode" -D "$PG_DATA" >/dev/null
  else
    log "not running"
  fi
  if [ "$purge" -eq 1 ]; then
    log "removing $PG_ROOT"
    rm -rf "$PG_ROOT"
    case $PG_SOCKET in "$PG_ROOT"/*) ;; *) rm -rf "$PG_SOCKET" ;; esac
  fi
}

[ $# -ge 1 ] || { usage >&2; exit 2; }
command=$1
shift
case $command in
  start)  [ $# -eq 0 ] || die "start takes no arguments"; cmd_start ;;
  env)    [ $# -eq 0 ] || die "env takes no arguments"; cmd_env ;;
  status) [ $# -eq 0 ] || die "status takes no arguments"; cmd_status ;;
  stop)   cmd_stop "$@" ;;
  -h|--help|help) usage ;;
  *) usage >&2; die "unknown command: $command" ;;
esac
