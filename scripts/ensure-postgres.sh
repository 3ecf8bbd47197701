#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries are installed (needed when DATABASE_URL is unset).
# Idempotent and quick when they are already there.
set -euo pipefail
if [ -n "${DATABASE_URL:-}" ] || [ -n "${PG_BIN:-}" ]; then exit 0; fi
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "PostgreSQL server binaries are missing: install the 'postgresql' package or set DATABASE_URL" >&2
  exit 1
fi
echo "Installing PostgreSQL server binaries with apt ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
