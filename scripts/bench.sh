#!/usr/bin/env bash
# make bench: the functions' release build and the dev server's own profile (`server`), then
# scripts/bench.py under a throw-away PostgreSQL cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-tools.sh
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
  else
    echo "wrk is missing: apt-get install wrk" >&2; exit 1
  fi
fi
cargo build --release -p bookshelf-functions
cargo build --profile server -p bookshelf-devserver --bins
cargo bench -p bookshelf-auth --bench auth --no-run -q
exec "${CARGO_TARGET_DIR:-target}/server/bookshelf-dev" with-postgres -- python3 scripts/bench.py
