"""The template `sam local` runs: the one `sam build` wrote, with the local-only settings
declared on every function. `sam local` passes a function only the environment variables
its template declares, so DATABASE_URL, the key material and the SQS endpoint must be
declared (empty) for `--env-vars` to set them; the deployed template stays free of them.
(QUEUE_URL needs nothing: the functions that send declare it already.)
Usage: sam_local_template.py BUILT_TEMPLATE OUT_TEMPLATE
"""

import json
import sys

from samtranslator.yaml_helper import yaml_parse

LOCAL_VARIABLES = [
    "DATABASE_URL",            # instead of the proxy secret
    "BOOKSHELF_SIGNING_KEYS",  # instead of the signing-key secret
    "BOOKSHELF_PUBLIC_KEYS",   # instead of the public-key secret
    "APP_DB_SECRET_ARN",       # emptied: locally db-migrate makes no application role
    "AWS_ENDPOINT_URL_SQS",    # moto
    "BOOKSHELF_WEBHOOK_KEY",   # instead of the webhook sealing key's secret
]

built, out = sys.argv[1], sys.argv[2]
template = yaml_parse(open(built).read())
for resource in template["Resources"].values():
    if resource.get("Type") != "AWS::Serverless::Function":
        continue
    variables = resource["Properties"].setdefault("Environment", {}).setdefault("Variables", {})
    for name in LOCAL_VARIABLES:
        variables.setdefault(name, "")
with open(out, "w") as f:
    json.dump(template, f, indent=1)
