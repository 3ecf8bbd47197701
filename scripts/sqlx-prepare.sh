#!/usr/bin/env bash
# The query data in .sqlx/ is what lets sqlx's `query!` macros check every static query
# against the schema at compile time with no database at hand (.cargo/config.toml sets
# SQLX_OFFLINE). It is made from the migrations, so:
#   scripts/sqlx-prepare.sh           regenerate it after changing a query or a migration
#   scripts/sqlx-prepare.sh --check   fail when it is stale (make lint)
# Both run against a throw-away PostgreSQL cluster started here (DATABASE_URL instead,
# migrated first, when no server binaries are installed).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/sqlx-cli.sh
if ! sqlx_cli_present; then
  echo "Building sqlx-cli $SQLX_CLI_VERSION into $SQLX_CLI_ROOT with cargo install (first time only, ~3.5 min on 2 cores) ..."
  sqlx_cli_install
fi
export PATH="$SQLX_CLI_ROOT/bin:$PATH"

bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
if [ -n "$bin" ] && [ -x "$bin/initdb" ]; then
  dir=$(mktemp -d /tmp/bookshelf-sqlx-XXXXXX)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_owner=()
  if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root.
    chown postgres:postgres "$dir"
    as_owner=(runuser -u postgres --)
  fi
  stop() {
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir" stop -m immediate -w >/dev/null 2>&1 || true
    rm -rf "$dir"
  }
  trap stop EXIT
  "${as_owner[@]}" "$bin/initdb" -D "$dir" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  "${as_owner[@]}" "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w start \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c fsync=off" >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
elif [ -z "${DATABASE_URL:-}" ]; then
  echo "sqlx-prepare: no PostgreSQL server binaries (scripts/ensure-postgres.sh) and no DATABASE_URL" >&2
  exit 1
fi

sqlx migrate run --source migrations >/dev/null
# --all-targets: the same dependency builds as clippy's, so nothing is checked twice.
cargo sqlx prepare --workspace "$@" -- --all-targets --quiet
