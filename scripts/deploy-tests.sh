#!/usr/bin/env bash
# Offline proof of the deployed stack (part of `make test`): cfn-lint with its informational
# checks, then the unit tests of tests/deploy/ — assertions on the CloudFormation AWS's SAM
# translator makes of template.yaml, the stack created in moto's CloudFormation, and the
# policy scan (checkov) with every finding explained in the template.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${BOOKSHELF_TOOLS_VENV:-$HOME/.cache/bookshelf/venv}
export CHECKOV=${CHECKOV:-${BOOKSHELF_CHECKOV_VENV:-$HOME/.cache/bookshelf/checkov}/bin/checkov}
# Nothing here calls AWS: a fixed region and dummy credentials.
export AWS_DEFAULT_REGION=eu-west-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export SAM_CLI_TELEMETRY=0

"$venv/bin/cfn-lint" --include-checks I -- template.yaml
cd tests/deploy
"$venv/bin/python" -m unittest -v test_template test_stack test_policy_scan 2>&1 \
  | grep -v "^Feature 'normalized_open_api_version'"
