#!/usr/bin/env bash
# The deployed data path through a transaction-pooling proxy: PgBouncer (pool_mode =
# transaction, 4 server connections, round robin) between the handlers and PostgreSQL, as
# RDS Proxy is deployed, with DB_POOLING=transaction as the template sets it. The HTTP
# integration tests and the hurl suites run through it; the owner (migrations, the tests'
# own checks) stays direct, as db-migrate's advisory-locked migrations would pin anyway.
# Needs DATABASE_URL (make test provides it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pgbouncer.sh
start_pgbouncer transaction 4

export BOOKSHELF_POOLER="127.0.0.1:$pgbouncer_port" DB_POOLING=${DB_POOLING:-transaction}
echo "pooler stage: the application role through PgBouncer (transaction pooling, 4 server connections) on $BOOKSHELF_POOLER"

# Not here: the pool's own tests (they check what a direct connection keeps), the fault
# tests (each starts a cluster of its own) and the layout tests (no database path).
runner="nextest run --no-fail-fast"
cargo nextest --version >/dev/null 2>&1 || runner="test --no-fail-fast"
if [ "$runner" = "test --no-fail-fast" ]; then
  cargo test --no-fail-fast -p bookshelf-devserver --test api -- \
    --skip pool:: --skip faults:: --skip layout:: --skip deploy::statements_are_named
else
  cargo nextest run --no-fail-fast -p bookshelf-devserver --test api -E \
    'not (test(/^pool::/) | test(/^faults::/) | test(/^layout::/) | test(/^deploy::statements_are_named/))'
fi

scripts/hurl-suites.sh

# The proof that the proxy multiplexed: many more transactions than server connections,
# and never more server connections than the pool.
pgbouncer_show POOLS | awk -F'|' '{ if ($5 + $6 + $7 + $8 > max) max = $5 + $6 + $7 + $8 } END { print "most server connections of one pool at the end:", max + 0 }'
pgbouncer_show STATS | awk -F'|' '$1 != "pgbouncer" { x += $2; q += $3 } END { print "transactions through PgBouncer:", x, "statements:", q }'
if grep -E "prepared statement|does not exist" "$pgbouncer_dir/pgbouncer.log" | grep -v "closing because" | head -5 | grep .; then
  echo "PgBouncer saw statements that needed a server connection they did not get" >&2
  exit 1
fi
