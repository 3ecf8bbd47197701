#!/usr/bin/env bash
# The API in headless Chromium, as a browser uses it (scripts/lib/browser_check.py): /docs
# renders its operations, "Try it out" on GET /books with a token answers 200, the page asks
# no other host for anything, and screenshots are kept; then a cross-origin fetch with a
# token from a page on an allowed origin succeeds and from another origin fails. Needs
# DATABASE_URL (make test provides it). Skipped, saying so, without Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${BOOKSHELF_TOOLS_VENV:-$HOME/.cache/bookshelf/venv}
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "browser check: SKIPPED — Chromium is not installed (apt-get install chromium chromium-driver)"
  exit 0
fi
. scripts/lib/gateway.sh
# Two origins for one static page server: 127.0.0.1:PORT is allowed, localhost:PORT is not.
pages=$(mktemp -d)
echo '<!DOCTYPE html><title>another origin</title>' >"$pages/index.html"
page_port=$(free_port)
python3 -m http.server "$page_port" --bind 127.0.0.1 --directory "$pages" >/dev/null 2>&1 &
pages_pid=$!
export ALLOWED_ORIGINS="http://127.0.0.1:$page_port"
start_gateway
trap 'kill $pages_pid 2>/dev/null; rm -rf "$pages"; stop_gateway' EXIT
shots=${BOOKSHELF_SCREENSHOTS:-$(mktemp -d /tmp/bookshelf-docs-XXXXXX)}
"$venv/bin/python" scripts/lib/browser_check.py "$url" "$shots" \
  "http://127.0.0.1:$page_port" "http://localhost:$page_port"
