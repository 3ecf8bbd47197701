#!/usr/bin/env bash
# GET /docs in headless Chromium, as a person uses it (scripts/lib/browser_check.py): the
# operations render, "Try it out" on GET /books with a token answers 200, the page asks no
# other host for anything, and a screenshot is kept. Needs DATABASE_URL (make test provides
# it). Skipped, saying so, where Chromium is not installed and cannot be (not root).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${BOOKSHELF_TOOLS_VENV:-$HOME/.cache/bookshelf/venv}
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "browser check: SKIPPED — Chromium is not installed (apt-get install chromium chromium-driver)"
  exit 0
fi
. scripts/lib/gateway.sh
start_gateway
shots=${BOOKSHELF_SCREENSHOTS:-$(mktemp -d /tmp/bookshelf-docs-XXXXXX)}
"$venv/bin/python" scripts/lib/browser_check.py "$url" "$shots"
