#!/usr/bin/env bash
# Chaos run (issue 10, item 9): sets up a throwaway PostgreSQL 15 primary, a synchronous streaming
# replica (pg_basebackup) and a PgBouncer in transaction mode in front, runs mt_chaos over every pool
# mode with every fault kind, and tears everything down on exit. Exit status is mt_chaos's:
# 0 only when no invariant was violated.
#
#   tools/chaos/run.sh                      the 60-second run of the test suite
#   tools/chaos/run.sh --soak 30m           the soak (duration in s, m or h)
#   tools/chaos/run.sh --duration 120 --threads 8 --tenants 12 --modes all --faults all --seed 7 \
#                      --report-json FILE [--keep] [-- more mt_chaos flags]
#
# Options:
#   --build-dir DIR    build tree with bin/mt_chaos and lib/mtenant/plugins (default: <repo>/build)
#   --duration S       seconds in total, split over the pool modes (default 60)
#   --soak DUR         same as --duration, with a unit (30m, 1h, 90s)
#   --threads N        worker threads (default 8)     --tenants N   tenants (default 12)
#   --modes LIST       pool modes (default all)       --faults LIST fault kinds (default all)
#   --seed N           random seed (default 1)        --report-json FILE   figures as JSON
#   --apply-delay DUR  the replica's recovery_min_apply_delay (default 20ms): with
#                      synchronous_commit = remote_apply every commit waits that long for the
#                      replica, so faults often land on a transaction committed but not yet answered
#   --keep             keep the state folder (data, logs) for a look afterwards
#
# Internal, called by mt_chaos through --fault-exec:  run.sh --state DIR fault KIND
#   KIND: restart (fast restart of the primary), pgbouncer-restart, failover (the primary is stopped
#   hard, the replica promoted, PgBouncer pointed at it, and a new replica rebuilt from it in the
#   background; exit 75 while no replica is ready). The manifest URL lists both hosts with
#   target_session_attrs=read-write, so per-tenant and shared modes follow the failover themselves.
#
# As root, PostgreSQL and PgBouncer run as the postgres user (both refuse root).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SELF=$REPO_ROOT/tools/chaos/run.sh
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
SKIPPED=75

log() { printf 'chaos: %s\n' "$*" >&2; }
die() { printf 'chaos: error: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '2,30s/^# \{0,1\}//p' "$SELF"; }

is_root() { [ "$(id -u)" -eq 0 ]; }
as_pg() {
  # fd 9 is the fault lock: a server started here must not inherit (and hold) it.
  if is_root; then (cd / && runuser -u postgres -- "$@") 9>&-; else (cd / && "$@") 9>&-; fi
}

# ---- node helpers (STATE is the run's folder) ---------------------------------------------------

other() { if [ "$1" = a ]; then echo b; else echo a; fi; }
primary() { cat "$STATE/primary"; }
port_of() { cat "$STATE/$1.port"; }
data_of() { echo "$STATE/$1/data"; }
psql_on() { local node=$1; shift; "$PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$(port_of "$node")" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

SERVER_OPTS="-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=300 \
-c synchronous_commit=remote_apply -c wal_level=replica -c max_wal_senders=10 -c max_replication_slots=10 \
-c wal_retrieve_retry_interval=200ms -c wal_receiver_status_interval=1s -c shared_buffers=64MB"

start_node() {
  local node=$1
  touch "$STATE/$node.log"
  if is_root; then chown postgres:postgres "$STATE/$node.log"; fi
  as_pg "$PG_BIN/pg_ctl" start -w -t 60 -D "$(data_of "$node")" -l "$STATE/$node.log" \
    -o "-p $(port_of "$node") -k $STATE/socket $SERVER_OPTS -c recovery_min_apply_delay=$(cat "$STATE/apply_delay")" >/dev/null
}

stop_node() {
  local node=$1 mode=${2:-fast}
  [ -f "$(data_of "$node")/postmaster.pid" ] || return 0
  as_pg "$PG_BIN/pg_ctl" stop -w -t 60 -m "$mode" -D "$(data_of "$node")" >/dev/null 2>&1 || true
}

# True when a socket uses port $1 in any state (a listener, or a client's local port), or
# something answers on it.
port_in_use() {
  if command -v ss >/dev/null 2>&1 && ss -Htan "( sport = :$1 )" 2>/dev/null | grep -q .; then return 0; fi
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
free_port() {
  local port=$1
  while port_in_use "$port" || grep -qx "$port" "$STATE"/*.port 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

# Runs a step until it succeeds or the deadline (seconds) passes.
wait_for() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

replica_streaming() { [ "$(psql_on "$(primary)" -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" -ge 1 ]; }
replica_sync() { [ "$(psql_on "$(primary)" -c "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")" -ge 1 ]; }

# Makes $2 a streaming replica of $1, then turns synchronous replication on at $1. Until then the
# primary commits alone; a failover is refused (exit 75) until the replica is ready again.
build_replica() {
  local from=$1 node=$2
  rm -f "$STATE/replica_ready"
  stop_node "$node" immediate
  rm -rf "$(data_of "$node")"
  mkdir -p "$(data_of "$node")"
  if is_root; then chown postgres:postgres "$(data_of "$node")"; fi
  chmod 700 "$(data_of "$node")"
  psql_on "$from" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'chaos_replica'" >/dev/null
  as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$(port_of "$from")" -U postgres -D "$(data_of "$node")" \
    -C -S chaos_replica -R -X stream -c fast >>"$STATE/$node.basebackup.log" 2>&1
  # The copy must not wait for a replica of its own once promoted.
  rm -f "$(data_of "$node")/chaos_sync.conf"
  start_node "$node"
  wait_for 60 replica_streaming || return 1
  echo "synchronous_standby_names = '*'" >"$(data_of "$from")/chaos_sync.conf"
  if is_root; then chown postgres:postgres "$(data_of "$from")/chaos_sync.conf"; fi
  psql_on "$from" -c "SELECT pg_reload_conf()" >/dev/null
  wait_for 30 replica_sync || return 1
  touch "$STATE/replica_ready"
}

# ---- PgBouncer ------------------------------------------------------------------------------------

write_bouncer_config() {
  local dir=$STATE/bouncer
  mkdir -p "$dir"
  printf '"postgres" ""\n' >"$dir/users.txt"
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
chaos = host=127.0.0.1 port=$(port_of "$(primary)") dbname=chaos
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $(cat "$STATE/bouncer.port")
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = 6
max_client_conn = 400
server_connect_timeout = 3
# The default 15 s pause after a failed server login would dominate every restart's recovery.
server_login_retry = 1
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
ignore_startup_parameters = extra_float_digits,options
EOF
  if is_root; then chown -R postgres:postgres "$dir"; fi
}

bouncer_answers() { "$PG_BIN/psql" -X -At -h 127.0.0.1 -p "$(cat "$STATE/bouncer.port")" -U postgres -d chaos -c 'SELECT 1'; }

start_bouncer() {
  as_pg pgbouncer -d "$STATE/bouncer/pgbouncer.ini" >>"$STATE/bouncer/start.log" 2>&1 || true
  if ! wait_for 30 bouncer_answers; then
    tail -n 20 "$STATE/bouncer/start.log" "$STATE/bouncer/pgbouncer.log" >&2 2>/dev/null
    die "pgbouncer did not answer on 127.0.0.1:$(cat "$STATE/bouncer.port") within 30 s (its log is above)"
  fi
  # PgBouncer removes its pidfile when it dies, even on a FATAL: the supervisor watches this copy.
  cp "$STATE/bouncer/pgbouncer.pid" "$STATE/bouncer/running.pid"
}

stop_bouncer() {
  local pidfile=$STATE/bouncer/pgbouncer.pid pid
  rm -f "$STATE/bouncer/running.pid"
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  wait_for 10 bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# PgBouncer 1.18 (Debian 12's) exits with "FATAL @src/server.c:583 in function server_proto():
# server_proto: server in bad state: 11" when a server answers while a cancel request for it is
# still in flight (pgbouncer/pgbouncer#822, fixed in 1.20 by #927): cancels and restarts make it
# likely. That is the pooler crashing, not mtenant; in production it runs under systemd with
# Restart=on-failure, and the harness does the same: this loop starts it again (under the fault
# lock, so never in the middle of an intentional restart) and records each crash, which the run
# reports. Polling, as a service manager does; no test waits on it.
supervise_bouncer() {
  exec 9>"$STATE/lock"
  local running=$STATE/bouncer/running.pid
  while [ -e "$STATE/supervise" ]; do
    sleep 0.2
    flock 9
    if [ -e "$STATE/supervise" ] && [ -s "$running" ] && ! kill -0 "$(cat "$running")" 2>/dev/null; then
      printf '%s %s\n' "$(date +%T)" "$(grep -a '@src' "$STATE/bouncer/pgbouncer.log" | tail -n 1)" >>"$STATE/bouncer/crashes.log"
      rm -f "$running" "$STATE/bouncer/pgbouncer.pid"
      start_bouncer
    fi
    flock -u 9
  done
}

# ---- faults (mt_chaos --fault-exec) -------------------------------------------------------------

fault() {
  local kind=$1
  exec 9>"$STATE/lock"
  case $kind in
    restart)
      flock 9
      as_pg "$PG_BIN/pg_ctl" restart -w -t 60 -m fast -D "$(data_of "$(primary)")" >/dev/null
      ;;
    pgbouncer-restart)
      flock 9
      stop_bouncer
      start_bouncer
      ;;
    failover)
      flock -n 9 || exit $SKIPPED
      [ -e "$STATE/replica_ready" ] || exit $SKIPPED
      local old new
      old=$(primary)
      new=$(other "$old")
      rm -f "$STATE/replica_ready"
      # Never two writable primaries: the old one is gone before the replica is promoted.
      stop_node "$old" immediate
      as_pg "$PG_BIN/pg_ctl" promote -w -t 60 -D "$(data_of "$new")" >/dev/null
      echo "$new" >"$STATE/primary"
      stop_bouncer
      write_bouncer_config
      start_bouncer
      exec 9>&-
      setsid "$SELF" --state "$STATE" rebuild </dev/null >>"$STATE/rebuild.log" 2>&1 9>&- &
      echo $! >"$STATE/rebuild.pid"
      ;;
    *) die "unknown fault kind: $kind" ;;
  esac
}

rebuild() {
  exec 9>"$STATE/lock"
  local attempt
  for attempt in 1 2 3 4 5; do
    flock 9
    local from
    from=$(primary)
    flock -u 9
    # A restart of the primary during the copy breaks it: try again.
    if build_replica "$from" "$(other "$from")"; then
      log "replica $(other "$from") of $from ready (attempt $attempt)"
      return 0
    fi
    sleep 1
  done
  log "no replica after 5 attempts"
  return 1
}

# ---- the run --------------------------------------------------------------------------------------

teardown() {
  local status=$?
  set +e
  # The rebuild runs in its own session (setsid): its process group holds pg_basebackup too.
  if [ -s "$STATE/rebuild.pid" ]; then
    kill -TERM -- "-$(cat "$STATE/rebuild.pid")" 2>/dev/null
  fi
  rm -f "$STATE/supervise"
  if [ -s "$STATE/supervise.pid" ]; then
    kill -TERM "$(cat "$STATE/supervise.pid")" 2>/dev/null
    wait "$(cat "$STATE/supervise.pid")" 2>/dev/null
  fi
  if [ -s "$STATE/bouncer/crashes.log" ]; then
    log "PgBouncer exited unasked $(wc -l <"$STATE/bouncer/crashes.log") time(s) and was started again (1.18 crashes on pgbouncer/pgbouncer#822); its last crash line each time:"
    sed 's/^/chaos:   /' "$STATE/bouncer/crashes.log" >&2
  fi
  stop_bouncer
  stop_node a immediate
  stop_node b immediate
  if [ "$KEEP" -eq 1 ]; then log "kept $STATE"; else rm -rf "$STATE"; fi
  exit "$status"
}

seconds_of() {
  case $1 in
    *h) echo $(( ${1%h} * 3600 )) ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *s) echo "${1%s}" ;;
    *[!0-9]*|'') die "not a duration: $1 (e.g. 30m, 90s)" ;;
    *) echo "$1" ;;
  esac
}

main() {
  local build_dir=$REPO_ROOT/build duration=60 threads=8 tenants=12 modes=all faults=all seed=1 report="" apply_delay=20ms
  local extra=()
  KEEP=0
  while [ $# -gt 0 ]; do
    case $1 in
      --build-dir) build_dir=$2; shift ;;
      --duration) duration=$(seconds_of "$2"); shift ;;
      --soak) duration=$(seconds_of "$2"); shift ;;
      --threads) threads=$2; shift ;;
      --tenants) tenants=$2; shift ;;
      --modes) modes=$2; shift ;;
      --faults) faults=$2; shift ;;
      --seed) seed=$2; shift ;;
      --report-json) report=$2; shift ;;
      --apply-delay) apply_delay=$2; shift ;;
      --keep) KEEP=1 ;;
      --) shift; extra=("$@"); break ;;
      -h|--help) usage; exit 0 ;;
      *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
  done
  case $build_dir in /*) ;; *) build_dir=$PWD/$build_dir ;; esac
  local chaos=$build_dir/bin/mt_chaos
  [ -x "$chaos" ] || die "$chaos not found: build it (cmake --build $build_dir --target mt_chaos retry-exponential)"
  [ -x "$PG_BIN/initdb" ] || die "$PG_BIN/initdb not found: install postgresql-15 (tools/setup.sh)"
  command -v pgbouncer >/dev/null || die "pgbouncer not found: install it (tools/setup.sh)"
  if is_root; then id postgres >/dev/null 2>&1 || die "no postgres user: install postgresql-15"; fi

  STATE=$(mktemp -d /tmp/mt-chaos.XXXXXX)
  trap teardown EXIT
  trap 'exit 130' INT TERM
  mkdir -p "$STATE/a" "$STATE/b" "$STATE/socket" "$STATE/bouncer"
  echo "$apply_delay" >"$STATE/apply_delay"
  if is_root; then chown -R postgres:postgres "$STATE"; chmod 755 "$STATE"; fi

  # Below the kernel's ephemeral range (32768 and up), so no client connection takes a port
  # between the probe and a restart.
  local base=$(( 20000 + RANDOM % 10000 ))
  free_port "$base" >"$STATE/a.port"
  free_port "$(( $(cat "$STATE/a.port") + 1 ))" >"$STATE/b.port"
  free_port "$(( $(cat "$STATE/b.port") + 1 ))" >"$STATE/bouncer.port"
  echo a >"$STATE/primary"

  log "primary a on 127.0.0.1:$(port_of a), replica b on $(port_of b), pgbouncer on $(cat "$STATE/bouncer.port") (state $STATE)"
  mkdir -p "$(data_of a)"
  if is_root; then chown postgres:postgres "$(data_of a)"; fi
  as_pg "$PG_BIN/initdb" --no-sync -A trust -U postgres -E UTF8 --locale=C -D "$(data_of a)" >"$STATE/initdb.log" 2>&1 \
    || { cat "$STATE/initdb.log" >&2; die "initdb failed"; }
  echo "include_if_exists = 'chaos_sync.conf'" >>"$(data_of a)/postgresql.conf"
  start_node a || { tail -20 "$STATE/a.log" >&2; die "the primary did not start"; }
  psql_on a -c "CREATE DATABASE chaos" >/dev/null
  build_replica a b || { tail -20 "$STATE/b.log" >&2; die "the replica did not come up"; }
  write_bouncer_config
  start_bouncer
  touch "$STATE/supervise"
  supervise_bouncer 9>&- &
  echo $! >"$STATE/supervise.pid"

  cat >"$STATE/multitenant.ini" <<EOF
[database]
url = postgresql://set-per-phase
pool_size = 3
max_pools = $(( tenants / 3 > 0 ? tenants / 3 : 1 ))
connect_timeout = 3s
[isolation]
schema_template = tenant_{id}
[plugins]
path = $build_dir/lib/mtenant/plugins
load = retry-exponential
[roles]
retry = retry-exponential
[plugin.retry-exponential]
max_attempts = 3
initial_delay = 100ms
max_delay = 1s
EOF

  local url="postgresql://postgres@127.0.0.1:$(port_of a),127.0.0.1:$(port_of b)/chaos?target_session_attrs=read-write"
  local args=(--manifest "$STATE/multitenant.ini" --url "$url"
              --pooler-url "postgresql://postgres@127.0.0.1:$(cat "$STATE/bouncer.port")/chaos"
              --pool-mode "$modes" --faults "$faults" --duration "$duration" --threads "$threads"
              --tenants "$tenants" --seed "$seed" --fault-exec "$SELF --state $STATE fault" --require-all-faults)
  [ -z "$report" ] || args+=(--report-json "$report")
  # A short run needs its faults closer together to see every kind in every phase.
  if [ "$duration" -le 120 ]; then args+=(--fault-gap-min 0.3 --fault-gap-max 1); fi
  log "mt_chaos ${args[*]} ${extra[*]}"
  local status=0
  "$chaos" "${args[@]}" "${extra[@]}" || status=$?
  return "$status"
}

if [ "${1:-}" = --state ]; then
  STATE=$2
  shift 2
  case ${1:-} in
    fault) fault "$2" ;;
    rebuild) rebuild ;;
    *) die "unknown internal command: ${1:-}" ;;
  esac
  exit 0
fi
main "$@"
