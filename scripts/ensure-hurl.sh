#!/usr/bin/env bash
# Installs hurl (the HTTP test runner of tests/hurl/) once, into a cache shared by every
# clone: hurl is not packaged for Debian 12 and its newest release needs a newer rustc, so
# we build the pinned 8.0.1 from crates.io (~3.5 min the first time, instant afterwards).
set -euo pipefail
version=8.0.1
root=${BOOKSHELF_TOOLS_ROOT:-$HOME/.cache/bookshelf}
bin="$root/bin/hurl"
if command -v hurl >/dev/null 2>&1 && hurl --version 2>/dev/null | grep -q "^hurl $version"; then
  exit 0
fi
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "^hurl $version"; then
  exit 0
fi
# hurl links libcurl and its build generates bindings with libclang.
. "$(dirname "$0")/lib/apt.sh"
apt_install "building hurl" 60 libcurl4-openssl-dev libclang-dev pkg-config libxml2-dev
echo "Building hurl $version into $root with cargo install (first time only, ~3.5 min on 2 cores) ..."
cargo install "hurl@$version" --locked --root "$root"
