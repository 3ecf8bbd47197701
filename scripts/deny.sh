#!/usr/bin/env bash
# Dependency hygiene with cargo-deny and deny.toml: licences, bans and sources always;
# RustSec advisories whenever the advisory database can be fetched (it is a git repository
# on github.com). Where it cannot — this project's build machines reach only the package
# registries — the advisory check says so loudly and is skipped, unless
# BOOKSHELF_REQUIRE_ADVISORIES=1 (set it in any CI that has the network) makes that fatal.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.20.2
root=${BOOKSHELF_TOOLS_ROOT:-$HOME/.cache/bookshelf}
deny="$root/bin/cargo-deny"
if ! { [ -x "$deny" ] && "$deny" --version 2>/dev/null | grep -q "$version"; }; then
  echo "Building cargo-deny $version into $root with cargo install (first time only, ~3 min on 2 cores) ..."
  cargo install "cargo-deny@$version" --locked --root "$root"
fi

# Only errors: duplicate versions are warnings by policy and would drown them.
"$deny" --log-level error --locked check --hide-inclusion-graph licenses bans sources

# A database fetched earlier (or now) is used as it is; a missing one cannot be.
dbs="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
if "$deny" --log-level error fetch db >/dev/null 2>&1 || ls -d "$dbs"/advisory-db-*/crates >/dev/null 2>&1; then
  "$deny" --log-level error --offline --locked check --hide-inclusion-graph advisories
elif [ "${BOOKSHELF_REQUIRE_ADVISORIES:-0}" = 1 ]; then
  echo "cargo deny: the RustSec advisory database could not be fetched" >&2
  exit 1
else
  echo "cargo deny: SKIPPED advisories — the RustSec advisory database (github.com) is unreachable from here"
fi
