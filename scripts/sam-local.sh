#!/usr/bin/env bash
# `sam local` for real (part of `make test` when a Docker engine answers): `sam build` of
# every function (debug, this machine's architecture), a locally made base image, then
#   1. `sam local invoke <Function> -e events/<function>/<file>.json` for every sample
#      event, each against its exact expected outcome (events/expected.json);
#   2. `sam local start-api` with the Lambda authorizer, and the hurl suites against it,
#      apart from the requests listed in tests/sam-local-differences.json.
# Needs DATABASE_URL (make test: a throw-away cluster). Without Docker it says so, once,
# and succeeds: the README's commands still work on a laptop without Docker.
# `scripts/sam-local.sh build` stops after the build; `scripts/sam-local.sh serve` skips the
# invocations and keeps the API served by `sam local start-api` until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! docker info >/dev/null 2>&1; then
  echo "SKIPPED sam local invoke / start-api: no Docker engine answers ('docker info' failed)"
  exit 0
fi
venv=${BOOKSHELF_TOOLS_VENV:-$HOME/.cache/bookshelf/venv}
export PATH="$venv/bin:$PATH" SAM_CLI_TELEMETRY=0
# Nothing reaches AWS: a fixed region and dummy credentials (passed into the containers).
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
case $(uname -m) in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "sam-local: unsupported machine $(uname -m)"; exit 1 ;;
esac
out=.aws-sam/local
mkdir -p "$out"

echo "== sam build (debug, $arch, cargo-lambda with cargo as the compiler)"
started=$SECONDS
# `sam build` runs `cargo lambda build --bin X` once per function; one build of the whole
# workspace first makes each of those a no-op.
CARGO_LAMBDA_COMPILER=cargo cargo lambda build --workspace --quiet \
  $([ "$arch" = arm64 ] && echo --arm64 || echo --x86-64)
# The template fixes arm64 (so `sam deploy` cannot disagree with `sam build`); a local run
# builds for this machine instead, from a copy whose CodeUri still names the checkout.
"$venv/bin/python" - "$arch" "$PWD" "$out/template-arch.json" <<'PY'
import json, sys
from samtranslator.yaml_helper import yaml_parse
arch, root, out = sys.argv[1:]
template = yaml_parse(open("template.yaml").read())
template["Globals"]["Function"]["Architectures"] = [arch]
for resource in template["Resources"].values():
    if resource.get("Type") == "AWS::Serverless::Function":
        resource["Properties"]["CodeUri"] = root
json.dump(template, open(out, "w"))
PY
CARGO_LAMBDA_COMPILER=cargo SAM_BUILD_MODE=debug sam build --template "$out/template-arch.json" \
  --build-dir "$out/build" --no-cached \
  >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
image=$(scripts/lambda-base-image.sh "$out/build")
"$venv/bin/python" scripts/lib/sam_local_template.py "$out/build/template.yaml" "$out/build/template-local.json"
echo "built in $((SECONDS - started)) s; base image $image"
[ "${1:-}" = build ] && exit 0

. scripts/lib/gateway.sh   # free_port
bridge=$(ip -4 -o addr show docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1)
bridge=${bridge:-172.17.0.1}
db_port=$("$venv/bin/python" -c 'import sys, urllib.parse; print(urllib.parse.urlparse(sys.argv[1]).port or 5432)' "$DATABASE_URL")
fwd_port=$(free_port)
sqs_port=$(free_port)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# The containers reach the host at the bridge's address: PostgreSQL through a forwarder
# (it listens on loopback and trusts it), moto listening there directly.
python3 scripts/lib/tcp_forward.py "$bridge" "$fwd_port" "$db_port" &
pids+=($!)
"$venv/bin/moto_server" -H "$bridge" -p "$sqs_port" >"$work/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fsS "http://$bridge:$sqs_port/moto-api/" >/dev/null 2>&1 && break; sleep 0.1; done
sqs="http://$bridge:$sqs_port"
"${CARGO_TARGET_DIR:-target}/debug/bookshelf-dev" migrate >/dev/null
# SAM runs no event source mappings or schedules: the worker stands in for both. It
# creates the orders and activities queues (and their DLQs) as the stack defines them.
DATABASE_URL=$DATABASE_URL SQS_ENDPOINT=$sqs "${CARGO_TARGET_DIR:-target}/debug/bookshelf-dev" worker \
  >"$out/worker.log" 2>&1 &
pids+=($!)
queue_url=""
for _ in $(seq 1 100); do
  read -r queue_url activity_queue_url < <("$venv/bin/python" -c '
import sys, boto3
try:
    sqs = boto3.client("sqs", endpoint_url=sys.argv[1])
    print(sqs.get_queue_url(QueueName="bookshelf-orders")["QueueUrl"],
          sqs.get_queue_url(QueueName="bookshelf-activities")["QueueUrl"])
except Exception:
    print()' "$sqs") || true
  [ -n "$queue_url" ] && [ -n "${activity_queue_url:-}" ] && break
  sleep 0.2
done
[ -n "$queue_url" ] || { cat "$out/worker.log"; exit 1; }
container_db=$("$venv/bin/python" -c '
import sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
print(u._replace(netloc=u.netloc.rsplit("@", 1)[0] + "@" + sys.argv[2] if "@" in u.netloc else sys.argv[2]).geturl())' \
  "$DATABASE_URL" "$bridge:$fwd_port")
"${CARGO_TARGET_DIR:-target}/debug/bookshelf-dev" keys >"$work/keys.txt"
"$venv/bin/python" - "$work/keys.txt" "$out/env.json" "$container_db" "$queue_url" "$sqs" "$activity_queue_url" <<'PY'
import json, sys
keys, path, db, queue, sqs, activities = sys.argv[1:]
# `bookshelf-dev keys` prints "# SigningKeysSecret ..." then its JSON, "# PublicKeysSecret ..." then its JSON.
first, second = open(keys).read().split("\n# PublicKeysSecret", 1)
signing = json.dumps(json.loads(first.split("\n", 1)[1]))
public = json.dumps(json.loads(second.split("\n", 1)[1]))
json.dump({"Parameters": {"DATABASE_URL": db, "BOOKSHELF_SIGNING_KEYS": signing,
                          "BOOKSHELF_PUBLIC_KEYS": public, "APP_DB_SECRET_ARN": "",
                          "QUEUE_URL": queue, "ACTIVITY_QUEUE_URL": activities,
                          "BOOKSHELF_WEBHOOK_KEY": "sam-local-webhook-key",
                          "AWS_ENDPOINT_URL_SQS": sqs, "RUST_LOG": "info"}},
          open(path, "w"))
PY
common=(--template "$out/build/template-local.json" --env-vars "$out/env.json"
        --invoke-image "$image" --skip-pull-image)
# The same settings for hand-made `sam local invoke ... --config-file .aws-sam/local/samconfig.toml`
# while `scripts/sam-local.sh serve` keeps the database forwarder and moto up.
cat >"$out/samconfig.toml" <<TOML
version = 0.1
[default.local_invoke.parameters]
template_file = "$PWD/$out/build/template-local.json"
env_vars = "$PWD/$out/env.json"
invoke_image = "$image"
skip_pull_image = true
[default.local_start_api.parameters]
template_file = "$PWD/$out/build/template-local.json"
env_vars = "$PWD/$out/env.json"
invoke_image = "$image"
skip_pull_image = true
TOML

if [ "${1:-}" != serve ]; then
echo "== sam local invoke: every sample event"
started=$SECONDS
"$venv/bin/python" - >"$work/events.txt" <<'PY'
import glob, os
from samtranslator.yaml_helper import yaml_parse
t = yaml_parse(open("template.yaml").read())
by_binary = {r["Metadata"]["BuildProperties"]["Binary"]: name for name, r in t["Resources"].items()
             if r.get("Type") == "AWS::Serverless::Function"}
for path in sorted(glob.glob("events/*/*.json")):
    fn = os.path.basename(os.path.dirname(path))
    print(by_binary[fn], fn, path)
PY
# Three at a time (each invoke is mostly SAM's and Docker's start-up); no sample event
# depends on another's effect.
invoke_one() {
  local n=$1 logical=$2 fn=$3 file=$4 got verdict
  # A streamed answer carries NUL bytes (after its prelude), which a shell variable cannot hold.
  got=$(sam local invoke "$logical" -e "$file" "${common[@]}" 2>"$work/invoke-$n.log" | tail -1 | tr -d '\000') || true
  verdict=$(printf '%s' "$got" | python3 scripts/lib/expect_event.py "$fn" "$file")
  printf '%-26s %-38s %s\n' "$logical" "$file" "$verdict" >"$work/verdict-$n"
  [[ $verdict == ok* ]] || { echo "$got"; tail -20 "$work/invoke-$n.log"; } >"$work/failure-$n"
}
n=0
batch=()
while read -r logical fn file; do
  n=$((n + 1))
  invoke_one "$n" "$logical" "$fn" "$file" &
  batch+=($!)
  if [ ${#batch[@]} = 3 ]; then wait "${batch[@]}"; batch=(); fi
done <"$work/events.txt"
[ ${#batch[@]} = 0 ] || wait "${batch[@]}"
status=0
for i in $(seq 1 "$n"); do
  cat "$work/verdict-$i"
  if [ -f "$work/failure-$i" ]; then cat "$work/failure-$i"; status=1; fi
done
echo "invoked every event in $((SECONDS - started)) s"
[ $status = 0 ] || exit 1
fi

echo "== sam local start-api$([ "${1:-}" = serve ] || echo ' + the hurl suites')"
# The suites sign in as the admin `make dev` prints; the operator command makes it here.
"${CARGO_TARGET_DIR:-target}/debug/bookshelf-dev" create-admin >/dev/null
api_port=$(free_port)
sam local start-api --port "$api_port" --host 127.0.0.1 "${common[@]}" \
  --warm-containers LAZY >"$out/start-api.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$api_port/openapi.json" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS -o /dev/null "http://127.0.0.1:$api_port/openapi.json" || { tail -40 "$out/start-api.log"; exit 1; }
if [ "${1:-}" = serve ]; then
  echo "sam local start-api on http://127.0.0.1:$api_port (admin ${BOOKSHELF_ADMIN_EMAIL:-admin@bookshelf.local}); Ctrl-C stops it"
  wait "${pids[-1]}"
  exit 0
fi
SAM_LOCAL_DIFFERENCES=tests/sam-local-differences.json HURL_BASE="http://127.0.0.1:$api_port" \
  scripts/hurl-suites.sh || { echo "(logs: $out/start-api.log, $out/worker.log)"; exit 1; }
