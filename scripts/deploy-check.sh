#!/usr/bin/env bash
# Proves what can be proved of the deployment without AWS: the template lints and
# validates offline, every function builds through `sam build` (cargo-lambda, arm64,
# provided.al2023), and every zipped artifact stays within the size budget.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-tools.sh
venv=${BOOKSHELF_TOOLS_VENV:-$HOME/.cache/bookshelf/venv}
[ -x "$venv/bin/cargo-lambda" ] || "$venv/bin/python" -m pip install -q --disable-pip-version-check cargo-lambda
export PATH="$venv/bin:$PATH"
# Offline: a fixed region and dummy credentials; nothing here calls AWS.
export AWS_DEFAULT_REGION=eu-west-1 AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=dummy
export SAM_CLI_TELEMETRY=0

echo "== lint"
cfn-lint template.yaml
sam validate --lint --template template.yaml

[ "${LINT_ONLY:-}" = 1 ] && exit 0

echo "== build (sam build → cargo lambda build --release, arm64)"
if command -v rustup >/dev/null 2>&1; then
  rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || true
fi
sam build --beta-features --no-cached --template template.yaml

echo "== artifacts (zipped, budget 5 MB each)"
budget=$((5 * 1024 * 1024))
over=0
tmp=$(mktemp -d)
printf '%-28s %10s %10s\n' function bootstrap zipped
for dir in .aws-sam/build/*Function; do
  name=$(basename "$dir")
  [ -f "$dir/bootstrap" ] || continue
  (cd "$dir" && python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED, compresslevel=9); z.write("bootstrap"); z.close()' "$tmp/$name.zip")
  raw=$(stat -c %s "$dir/bootstrap")
  zipped=$(stat -c %s "$tmp/$name.zip")
  printf '%-28s %10s %10s\n' "$name" "$raw" "$zipped"
  [ "$zipped" -le "$budget" ] || { echo "  ^ over the 5 MB budget"; over=1; }
done
rm -rf "$tmp"
exit $over
