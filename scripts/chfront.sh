# Sourced by the benchmark and fleet scripts: the ClickHouse test front (the real engine, chDB
# behind tests/clickhouse/chfront.py) on $CH_PORT with a fresh data directory under $WORK, or
# nothing when CLICKHOUSE_URL names a server. Needs ROOT, TARGET, WORK and CH_PORT set; sets
# CH_URL and CH_PID.

CH_PID=""
if [ -n "${CLICKHOUSE_URL:-}" ]; then CH_URL="$CLICKHOUSE_URL"; else
  bash "$ROOT/tests/clickhouse/setup.sh" >&2
  CH_URL="http://127.0.0.1:$CH_PORT"
fi

start_front() { # a fresh chDB data dir (no-op with CLICKHOUSE_URL)
  [ -n "${CLICKHOUSE_URL:-}" ] && return 0
  rm -rf "$WORK/ch"
  "$TARGET/chdb-venv/bin/python" "$ROOT/tests/clickhouse/chfront.py" --port "$CH_PORT" --data-dir "$WORK/ch" \
    > "$WORK/ch.out" 2> "$WORK/ch.err" &
  CH_PID=$!
  for _ in $(seq 1 600); do grep -q LISTENING "$WORK/ch.out" 2>/dev/null && return 0; sleep 0.1; done
  echo "the ClickHouse front did not start" >&2; cat "$WORK/ch.err" >&2; exit 1
}
stop_front() { [ -n "$CH_PID" ] && { kill "$CH_PID"; wait "$CH_PID" 2>/dev/null || true; CH_PID=""; }; return 0; }
