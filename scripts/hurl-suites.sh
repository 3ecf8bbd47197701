#!/usr/bin/env bash
# The hurl suites (tests/hurl/): the README walk-through and one file per API section, run
# as a user would against the local gateway. Needs DATABASE_URL (make test provides it).
# Against an already running server instead: HURL_BASE=http://127.0.0.1:3000 scripts/hurl-suites.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-hurl.sh
hurl=$(command -v hurl || echo "${BOOKSHELF_TOOLS_ROOT:-$HOME/.cache/bookshelf}/bin/hurl")

if [ -n "${HURL_BASE:-}" ]; then
  url=$HURL_BASE
else
  . scripts/lib/gateway.sh
  start_gateway
fi

# Unique names per run, so the suites also run against a database that has seen them before;
# and a fresh valid ISBN (ISBN-10 with its ISBN-13 form) for the catalog's uniqueness checks.
# hurl types a --variable that looks like a number ("0441172717" becomes 441172717, and a hex
# run id such as "1234e5678901" a float), so every value here carries a non-numeric character:
# the run id a letter prefix, the ISBN-10 its hyphens.
run=r$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])')
read -r isbn10 isbn13 < <(python3 - <<'PY'
import random
body = "".join(random.choice("0123456789") for _ in range(9))
c10 = (11 - sum((10 - i) * int(d) for i, d in enumerate(body)) % 11) % 11
core = "978" + body
c13 = (10 - sum((3 if i % 2 else 1) * int(d) for i, d in enumerate(core)) % 10) % 10
check = 'X' if c10 == 10 else c10
print(f"{body[0]}-{body[1:4]}-{body[4:9]}-{check}", f"{core}{c13}")
PY
)

suites=tests/hurl
import_suite=tests/hurl/import.hurl
if [ -n "${SAM_LOCAL_DIFFERENCES:-}" ]; then
  # Its upload URL is our gateway's stand-in for S3, which sam local does not have (the
  # importer's own path is run there through events/import-worker/).
  echo "hurl: import.hurl skipped against sam local start-api (no upload store to presign for)"
  import_suite=
  # Against `sam local start-api`: the listed emulator differences taken out, nothing else.
  suites=$(mktemp -d)
  python3 scripts/lib/hurl_differences.py "$SAM_LOCAL_DIFFERENCES" tests/hurl "$suites"
fi

echo "hurl suites against $url (run $run)"
"$hurl" --test --jobs 1 --color \
  --variable "base=$url" --variable "run=$run" \
  --variable "isbn10=$isbn10" --variable "isbn13=$isbn13" \
  --variable "admin_email=${BOOKSHELF_ADMIN_EMAIL:-admin@bookshelf.local}" \
  --variable "admin_password=${BOOKSHELF_ADMIN_PASSWORD:-bookshelf-admin}" \
  "$suites/walkthrough.hurl" "$suites/auth.hurl" "$suites/users.hurl" "$suites/books.hurl" \
  "$suites/library.hurl" "$suites/reading.hurl" "$suites/stats.hurl" "$suites/people.hurl" \
  "$suites/orders.hurl" "$suites/meta.hurl" "$suites/sync.hurl" $import_suite
