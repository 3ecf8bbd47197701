#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries are installed (needed when DATABASE_URL is unset).
# Idempotent and quick when they are already there.
set -euo pipefail
if [ -n "${DATABASE_URL:-}" ] || [ -n "${PG_BIN:-}" ]; then exit 0; fi
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then exit 0; fi
. "$(dirname "$0")/lib/apt.sh"
apt_install "the private PostgreSQL cluster (or set DATABASE_URL)" 40 postgresql
