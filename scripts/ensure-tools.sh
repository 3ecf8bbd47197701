#!/usr/bin/env bash
# Installs what `make test` needs beyond a Rust toolchain, idempotently and quickly when
# already present: PostgreSQL server binaries, and cfn-lint, the SAM CLI, moto (the
# SQS-compatible server of the queue tests) and schemathesis (contract fuzzing) in a private
# virtualenv (so they cannot break, or be broken by, the machine's other Python tools);
# and hurl, built once into the same cache.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/ensure-postgres.sh"

# sqlx-cli (make lint's check of .sqlx/) compiles for minutes the first time: it builds in
# the background while the PyPI installs below mostly wait on the network.
. "$here/lib/sqlx-cli.sh"
sqlx_pid=
if ! sqlx_cli_present; then
  echo "Building sqlx-cli $SQLX_CLI_VERSION into $SQLX_CLI_ROOT in the background (first time only, ~3.5 min on 2 cores) ..."
  sqlx_log=$(mktemp)
  sqlx_started=$SECONDS
  sqlx_cli_install >"$sqlx_log" 2>&1 &
  sqlx_pid=$!
fi

venv=${BOOKSHELF_TOOLS_VENV:-$HOME/.cache/bookshelf/venv}
if [ ! -x "$venv/bin/python" ]; then
  echo "Creating the tools virtualenv in $venv ..."
  python3 -m venv "$venv"
fi
need=()
[ -x "$venv/bin/cfn-lint" ] || need+=(cfn-lint)
[ -x "$venv/bin/sam" ] || need+=(aws-sam-cli)
[ -x "$venv/bin/moto_server" ] || need+=('moto[server]')
[ -x "$venv/bin/st" ] || need+=(schemathesis)
[ -x "$venv/bin/cargo-lambda" ] || need+=(cargo-lambda)
"$venv/bin/python" -c 'import selenium' 2>/dev/null || need+=(selenium)
if [ ${#need[@]} -gt 0 ]; then
  echo "Installing ${need[*]} from PyPI into $venv (first time only, ~60 s) ..."
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${need[@]}"
fi
# checkov (the template's policy scanner) pins its own versions of libraries the SAM CLI
# also uses, so it gets a virtualenv of its own.
checkov_venv=${BOOKSHELF_CHECKOV_VENV:-$HOME/.cache/bookshelf/checkov}
if [ ! -x "$checkov_venv/bin/checkov" ]; then
  echo "Installing checkov into $checkov_venv (about 90 s, first time only) ..."
  python3 -m venv "$checkov_venv"
  "$checkov_venv/bin/python" -m pip install -q --disable-pip-version-check checkov
fi
"$here/ensure-hurl.sh"
# Headless Chromium for the browser test of /docs; without it (not root) that test is skipped.
. "$here/lib/apt.sh"
apt_install "the browser test of /docs" 30 chromium chromium-driver ||
  echo "browser check: will be SKIPPED without Chromium" >&2
if [ -n "$sqlx_pid" ]; then
  if ! wait "$sqlx_pid"; then
    cat "$sqlx_log" >&2
    echo "building sqlx-cli failed" >&2
    exit 1
  fi
  rm -f "$sqlx_log"
  echo "sqlx-cli $SQLX_CLI_VERSION built in $((SECONDS - sqlx_started)) s"
fi
