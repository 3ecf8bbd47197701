#!/usr/bin/env bash
# Proves the single-function dev loop: starts `cargo lambda watch` (routes from Cargo.toml)
# with moto standing in for SQS, invokes every function with every sample event under
# events/ through `cargo lambda invoke --data-file` (each against its exact outcome in
# events/expected.json), and calls routes through watch's router.
# Needs DATABASE_URL: `make lambda-check` runs it against a throw-away cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${BOOKSHELF_TOOLS_VENV:-$HOME/.cache/bookshelf/venv}
[ -x "$venv/bin/cargo-lambda" ] || "$venv/bin/python" -m pip install -q --disable-pip-version-check cargo-lambda
export PATH="$venv/bin:$PATH"
target=${CARGO_TARGET_DIR:-target}

# The functions migrate nothing on a cold start: the schema comes first, as after a deploy.
"$target/debug/bookshelf-dev" migrate >/dev/null

. scripts/lib/gateway.sh   # free_port
port=$(free_port)
sqs_port=$(free_port)
work=$(mktemp -d)
log="$work/watch.log"
watch=""
# moto in server mode stands in for SQS (orders-create and outbox-relay send to it).
"$venv/bin/moto_server" -H 127.0.0.1 -p "$sqs_port" >"$work/moto.log" 2>&1 &
moto=$!
cleanup() {
  if [ -n "$watch" ]; then kill "$watch" 2>/dev/null || true; wait "$watch" 2>/dev/null || true; fi
  kill "$moto" 2>/dev/null || true; wait "$moto" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$sqs_port/moto-api/" >/dev/null 2>&1 && break
  sleep 0.1
done
read -r queue_url activity_queue_url < <("$venv/bin/python" -c '
import sys, boto3
sqs = boto3.client("sqs", endpoint_url="http://127.0.0.1:" + sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
print(sqs.create_queue(QueueName="bookshelf-orders")["QueueUrl"],
      sqs.create_queue(QueueName="bookshelf-activities")["QueueUrl"])' "$sqs_port")

# Every function gets the local database, throw-away keys and the queue; nothing reaches
# AWS (the SDK takes the SQS endpoint from AWS_ENDPOINT_URL_SQS).
cargo lambda watch --ignore-changes --invoke-address 127.0.0.1 --invoke-port "$port" \
  --env-var "DATABASE_URL=$DATABASE_URL" --env-var "BOOKSHELF_KEYS_FILE=$work/signing.json" \
  --env-var "QUEUE_URL=$queue_url" --env-var "ACTIVITY_QUEUE_URL=$activity_queue_url" \
  --env-var "AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$sqs_port" \
  --env-var "AWS_ACCESS_KEY_ID=test,AWS_SECRET_ACCESS_KEY=test,AWS_REGION=us-east-1" \
  --env-var "BOOKSHELF_WEBHOOK_KEY=lambda-watch-webhook-key" \
  --env-var "RUST_LOG=info" >"$log" 2>&1 &
watch=$!
for _ in $(seq 1 100); do
  (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
  kill -0 "$watch" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
echo "cargo lambda watch on 127.0.0.1:$port, moto (SQS) on 127.0.0.1:$sqs_port"

status=0
for file in events/*/*.json; do
  fn=$(basename "$(dirname "$file")")
  # Bounded: a function that dies at start leaves invoke waiting forever (the first call
  # of each also waits for watch's build of it).
  out=$(timeout 600 cargo lambda invoke "$fn" --data-file "$file" --invoke-address 127.0.0.1 --invoke-port "$port" 2>&1) || true
  # Each event's exact outcome is in events/expected.json (sam local invoke uses it too).
  verdict=$(printf '%s' "$out" | python3 scripts/lib/expect_event.py "$fn" "$file")
  printf '%-18s %-38s %s\n' "$fn" "$file" "$verdict"
  [[ $verdict == ok* ]] || { echo "$out"; status=1; }
done

# The router: public routes answer as behind API Gateway; authenticated ones have no
# authorizer under watch, so they refuse with 401.
check() {
  local method=$1 path=$2 want=$3 body=${4:-}
  got=$(curl -s -o "$work/body" -w '%{http_code}' -X "$method" "http://127.0.0.1:$port$path" \
    -H 'content-type: application/json' ${body:+-d "$body"})
  # watch's own error page (never one of ours: our problems carry our type URIs) came once
  # in a CI run on a loaded machine, with the function logging its 200; asked again, it
  # answered. Retry that case once, and say so.
  if [ "$got" = 500 ] && grep -q 'httpstatuses.com/500' "$work/body"; then
    echo "  (cargo lambda watch answered its own 500 for $method $path; asking once more)"
    got=$(curl -s -o "$work/body" -w '%{http_code}' -X "$method" "http://127.0.0.1:$port$path" \
      -H 'content-type: application/json' ${body:+-d "$body"})
  fi
  printf '%-6s %-22s %s (want %s)\n' "$method" "$path" "$got" "$want"
  [ "$got" = "$want" ] || { cat "$work/body"; echo; status=1; }
}
check GET /openapi.json 200
check GET /.well-known/jwks.json 200
check POST /auth/register 201 '{"email":"watch-'"$port"'@example.org","password":"watch password"}'
check POST /auth/login 200 '{"email":"watch-'"$port"'@example.org","password":"watch password"}'
check GET /users/me 401
check GET /books/not-a-uuid 401
[ $status = 0 ] || { echo "--- cargo lambda watch log"; tail -50 "$log"; }
exit $status
