#!/usr/bin/env bash
# make scale: release builds of the dev server and the functions under load, then
# scripts/scale.py under a throw-away PostgreSQL limited to 50 connections.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-tools.sh
. scripts/lib/pgbouncer.sh
ensure_pgbouncer
if ! command -v wrk >/dev/null 2>&1; then
  . scripts/lib/apt.sh
  apt_install "make scale (the load generator)" 10 wrk
fi
# More processes and sockets than a default shell allows (two processes an environment).
ulimit -n 65536 2>/dev/null || true
cargo build --release -p bookshelf-functions --bin authorizer --bin books-get --bin library-put --bin orders-create
cargo build --profile server -p bookshelf-devserver --bin bookshelf-dev
exec "${CARGO_TARGET_DIR:-target}/server/bookshelf-dev" with-postgres --max-connections 50 -- python3 scripts/scale.py
