#!/usr/bin/env bash
# Demo: the server on the embedded store (release build, data in ./data unless DATA_DIR is
# set) under a moderate, realistic load: whole web requests with their waterfalls, jobs,
# scheduled tasks, 2 % malformed events, an occasional truncated body. Ctrl-C stops both.
#
#   scripts/demo.sh [RATE (default 500)] [extra baddybugs-loadgen flags…]
set -euo pipefail

RATE="${1:-500}"
[ $# -gt 0 ] && shift
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
DATA_DIR="${DATA_DIR:-./data}"
LISTEN="${LISTEN:-127.0.0.1:8080}"

cargo build --release -q -p baddybugs-ingest -p baddybugs-loadgen

SERVER_PID="" LOADGEN_PID=""
stop() {
  trap - INT TERM EXIT
  [ -n "$LOADGEN_PID" ] && kill "$LOADGEN_PID" 2>/dev/null || true
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  echo "demo stopped (data kept in $DATA_DIR)"
}
trap stop INT TERM EXIT

mkdir -p "$DATA_DIR"
BADDYBUGS_LOG="${BADDYBUGS_LOG:-warn}" "$TARGET/release/baddybugs-ingest" serve \
  --listen "$LISTEN" --data-dir "$DATA_DIR" > "$DATA_DIR/demo-server.out" &
SERVER_PID=$!
for _ in $(seq 1 200); do
  grep -q "listening on" "$DATA_DIR/demo-server.out" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server failed to start" >&2; exit 1; }
  sleep 0.05
done
cat "$DATA_DIR/demo-server.out"

"$TARGET/release/baddybugs-loadgen" --url "http://$LISTEN/v1/ingest" --data-dir "$DATA_DIR" \
  --rate "$RATE" --duration 24h --batch 50 --concurrency 4 \
  --malformed-ratio 0.02 --truncated-ratio 0.002 "$@" &
LOADGEN_PID=$!

echo
echo "Load running at $RATE events/s (2 % malformed)."
if [ "$LISTEN" = "127.0.0.1:8080" ] && [ "$DATA_DIR" = "./data" ]; then
  echo "Run \`just console\` in another terminal. Ctrl-C here stops the server and the load."
else
  echo "Run \`just console --url ws://$LISTEN/v1/feed --data-dir $DATA_DIR\` in another terminal."
  echo "Ctrl-C here stops the server and the load."
fi
echo
wait "$LOADGEN_PID"
