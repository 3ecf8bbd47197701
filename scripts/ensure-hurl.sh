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
missing=()
for pkg in libcurl4-openssl-dev libclang-dev pkg-config libxml2-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "Installing ${missing[*]} (needed to build hurl) ..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
  else
    echo "hurl needs: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
echo "Building hurl $version into $root (first time only, a few minutes) ..."
cargo install "hurl@$version" --locked --root "$root" --quiet
