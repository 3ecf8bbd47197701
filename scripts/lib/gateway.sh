# Sourced by the scripts that test the API from outside (contract fuzzing, hurl suites):
# starts the already-built dev server on a free port of 127.0.0.1 with throw-away keys and
# a debug log, waits until it is ready, and stops it when the calling script exits.
# Needs DATABASE_URL (make test provides it). Sets: url, log.

# A port of 127.0.0.1 that is free right now.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_gateway() {
  local port keys
  port=$(free_port)
  url="http://127.0.0.1:$port"
  keys=$(mktemp -d)
  log="$keys/server.log"
  PORT=$port BOOKSHELF_KEYS_FILE="$keys/signing.json" BOOKSHELF_OBJECTS_DIR="$keys/objects" RUST_LOG=${RUST_LOG:-debug} \
    "${CARGO_TARGET_DIR:-target}/debug/bookshelf-dev" serve >"$log" 2>&1 &
  gateway_pid=$!
  gateway_dir=$keys
  trap stop_gateway EXIT
  for _ in $(seq 1 300); do
    curl -fsS "$url/openapi.json" >/dev/null 2>&1 && return 0
    kill -0 "$gateway_pid" 2>/dev/null || { cat "$log"; return 1; }
    sleep 0.1
  done
  echo "the dev server did not become ready in 30 s"; cat "$log"; return 1
}

stop_gateway() {
  kill "$gateway_pid" 2>/dev/null || true
  wait "$gateway_pid" 2>/dev/null || true
  rm -rf "$gateway_dir"
}
