# Sourced by the scripts that run the API through a transaction-pooling proxy (the pooler
# stage of make test, make scale): PgBouncer from Debian, the local stand-in for RDS Proxy.
# PgBouncer 1.18 is stricter than RDS Proxy: it keeps no prepared statement across
# transactions, so a data path that works through it in transaction mode works through any.
# start_pgbouncer MODE POOL_SIZE [QUERY_WAIT_TIMEOUT_S]: in front of DATABASE_URL's server;
# sets pgbouncer_port, pgbouncer_dir; stopped when the calling script exits.

ensure_pgbouncer() {
  command -v pgbouncer >/dev/null && return 0
  . "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
  apt_install "the pooler stage (PgBouncer, the local stand-in for RDS Proxy)" 15 pgbouncer
}

start_pgbouncer() {
  local mode=$1 size=$2 wait=${3:-120} pg_port owner
  ensure_pgbouncer
  pg_port=$(python3 -c 'import os, urllib.parse; print(urllib.parse.urlparse(os.environ["DATABASE_URL"]).port or 5432)')
  pgbouncer_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  pgbouncer_dir=$(mktemp -d)
  # PgBouncer refuses to run as root.
  owner=$(id -un); [ "$(id -u)" = 0 ] && owner=postgres
  # Clients sign in as any role the server knows (trust, as the throw-away cluster's
  # loopback does); server_round_robin spreads consecutive transactions of one client over
  # the server connections, so whatever a transaction leaves behind is missed at once.
  cat >"$pgbouncer_dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$pg_port
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgbouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $pgbouncer_dir/users.txt
auth_user = postgres
admin_users = postgres
pool_mode = $mode
server_round_robin = 1
max_client_conn = 5000
default_pool_size = $size
max_db_connections = $size
query_wait_timeout = $wait
# The tests make a database each: the server connections of finished ones must not linger.
server_idle_timeout = 2
ignore_startup_parameters = extra_float_digits
logfile = $pgbouncer_dir/pgbouncer.log
pidfile = $pgbouncer_dir/pgbouncer.pid
INI
  echo '"postgres" ""' >"$pgbouncer_dir/users.txt"
  chown -R "$owner" "$pgbouncer_dir"
  ulimit -n 65536 2>/dev/null || true
  runuser -u "$owner" -- pgbouncer -d "$pgbouncer_dir/pgbouncer.ini" 2>/dev/null \
    || pgbouncer -d "$pgbouncer_dir/pgbouncer.ini"
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$pgbouncer_port") 2>/dev/null && break
    sleep 0.1
  done
  trap stop_pgbouncer EXIT
}

# The admin console's SHOW command (SHOW POOLS, SHOW STATS), as rows of |-separated values.
pgbouncer_show() {
  command -v psql >/dev/null || return 0
  psql -X -A -t -F '|' "postgresql://postgres@127.0.0.1:$pgbouncer_port/pgbouncer" -c "SHOW $1"
}

stop_pgbouncer() {
  [ -f "$pgbouncer_dir/pgbouncer.pid" ] && kill "$(cat "$pgbouncer_dir/pgbouncer.pid")" 2>/dev/null || true
  sleep 0.2
  rm -rf "$pgbouncer_dir"
}
