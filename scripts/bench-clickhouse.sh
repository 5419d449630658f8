#!/usr/bin/env bash
# ClickHouse sink benchmark: drain rate from the spool into ClickHouse, the stored rate end to
# end under a flood, end-to-end latency (202 -> stored, i.e. queryable: inserts are synchronous)
# at a steady offered load, and the acknowledged rate and ack latency at fractions of the peak
# with ClickHouse as the store. ClickHouse is the real engine (chDB) behind
# tests/clickhouse/chfront.py on the same machine, or the server named by CLICKHOUSE_URL.
# Prints a markdown report on stdout.
#
#   scripts/bench-clickhouse.sh [--quick] [--append] [--events N] [--steady-rate R|half]
#                               [--no-fractions] [--json FILE]
#
# --quick: shorter runs. --steady-rate half: the steady load at half the stored rate measured
# just before. --no-fractions: skip the ack latency at 25/50/90 % of the peak. --json FILE: the
# headline figures as JSON too (read by scripts/bench.sh for its summary table).
# Needs: cargo, jq, curl, free TCP ports 18182 and 18124; wrk for the flood (else the load
# generator is the client). BADDYBUGS_BATCH__[CATCHUP_]MAX_EVENTS / _BYTES in the environment reach
# the server (an A/B of batch sizes); the report names them.
set -euo pipefail

QUICK=0 APPEND=0 BACKLOG=300000 STEADY=20000 FRACTIONS=1 JSON=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --append) APPEND=1 ;;
    --events) BACKLOG="$2"; shift ;;
    --steady-rate) STEADY="$2"; shift ;;
    --no-fractions) FRACTIONS=0 ;;
    --json) JSON="$2"; shift ;;
    -h|--help) sed -n 2,15p "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SERVER="$TARGET/release/baddybugs-ingest"
LOADGEN="$TARGET/release/baddybugs-loadgen"
PY="$TARGET/chdb-venv/bin/python"
PORT=18182 CH_PORT=18124
URL="http://127.0.0.1:$PORT/v1/ingest"
KEY="bench-key:bench-secret" TOKEN="bench-token"
STEADY_SECS=30 FRAC_SECS=20 FLOOD_SECS=15
[ "$QUICK" = 1 ] && STEADY_SECS=10 FRAC_SECS=8 FLOOD_SECS=8 && BACKLOG=100000
WORK="$(mktemp -d)"
SERVER_PID="" CH_PID=""
OUT="$WORK/report.md"
log() { echo "bench-clickhouse: $*" >&2; }
md() { echo "$*" >> "$OUT"; }
cleanup() {
  for p in $SERVER_PID $CH_PID; do
    if kill "$p" 2>/dev/null; then wait "$p" 2>/dev/null || true; fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

log "building release binaries and the ClickHouse front"
cargo build --release -q -p baddybugs-ingest -p baddybugs-loadgen >&2
# shellcheck source=scripts/chfront.sh
source "$ROOT/scripts/chfront.sh"
start_server() { # fresh data dir and database, fsync always, ClickHouse store
  local name="$1" db="bench_$1_$$"
  [ -n "${CLICKHOUSE_URL:-}" ] || true
  cat > "$WORK/bench.toml" <<EOF
[spool]
fsync = "always"
[clickhouse]
database = "$db"
EOF
  # The database is created by the server's migrations (CREATE DATABASE IF NOT EXISTS).
  BADDYBUGS_LOG=warn "$SERVER" serve --config "$WORK/bench.toml" --listen "127.0.0.1:$PORT" \
    --data-dir "$WORK/data-$name" --api-key "$KEY${OPTIONAL_KEY:+:optional}" --feed-token "$TOKEN" --clickhouse-url "$CH_URL" \
    > "$WORK/server.out" 2> "$WORK/server.err" &
  SERVER_PID=$!
  for _ in $(seq 1 200); do grep -q "listening on" "$WORK/server.out" 2>/dev/null && return 0; sleep 0.05; done
  echo "the server did not start:" >&2; cat "$WORK/server.err" >&2; exit 1
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }
stats() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/stats"; }
loadgen() { "$LOADGEN" --url "$URL" --api-key "$KEY" --feed-token "$TOKEN" --seed 7 --json -q "$@"; }
histo() { stats | jq -r --arg n "$1" '.latencies[] | select(.name==$n) | "\(.p50)|\(.p90)|\(.p99)|\(.max)|\(.count)"'; }

CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
md "## ClickHouse sink benchmark $(date -u +%Y-%m-%dT%H:%MZ)$([ "$QUICK" = 1 ] && echo ' (quick)')"
md ""
md "Machine: $(nproc) cores, $CPU; \`git rev-parse --short HEAD\` = $(git rev-parse --short HEAD 2>/dev/null || echo '?')."
md "ClickHouse: $([ -n "${CLICKHOUSE_URL:-}" ] && echo "$CLICKHOUSE_URL" || echo "chDB $("$PY" -c 'import chdb; print(chdb.__version__)' 2>/dev/null) behind tests/clickhouse/chfront.py on the same cores (every query serialized by the front)")."
BATCHING="ClickHouse's default batching (10k events, 8 MiB of records or 1 s per insert; 25k events and 24 MiB while behind)"
[ -n "${BADDYBUGS_BATCH__MAX_EVENTS:-}${BADDYBUGS_BATCH__MAX_BYTES:-}${BADDYBUGS_BATCH__CATCHUP_MAX_EVENTS:-}${BADDYBUGS_BATCH__CATCHUP_MAX_BYTES:-}" ] &&
  BATCHING="batches of up to ${BADDYBUGS_BATCH__MAX_EVENTS:-10000} events and ${BADDYBUGS_BATCH__MAX_BYTES:-8388608} bytes of records, ${BADDYBUGS_BATCH__CATCHUP_MAX_EVENTS:-25000} and ${BADDYBUGS_BATCH__CATCHUP_MAX_BYTES:-25165824} while behind (BADDYBUGS_BATCH__*), or 1 s"
md "Server: release build, \`fsync = \"always\"\`, $BATCHING. Reproduce: \`scripts/bench-clickhouse.sh$([ "$QUICK" = 1 ] && echo ' --quick')\`."
md ""

# 1. Drain rate: fill the spool while ClickHouse is down, then start it and time the drain.
log "drain: $BACKLOG events spooled while ClickHouse is down"
stop_front
if [ -n "${CLICKHOUSE_URL:-}" ]; then log "CLICKHOUSE_URL set: the drain is measured with the server up"; fi
start_server drain
loadgen --rate 0 --events "$BACKLOG" --concurrency 16 > "$WORK/fill.json"
ACKED=$(jq -r '.acked' "$WORK/fill.json")
start_front
TF=$(date +%s.%N)
# The clock starts at the first batch stored: before it, the batcher may still be waiting out
# the retry backoff it reached while ClickHouse was down (up to batch.retry_max_ms), and the
# migrations run. That wait is reported on its own.
until [ "$(stats | jq '.sink.written_events')" != "0" ]; do sleep 0.05; done
T0=$(date +%s.%N); W0=$(stats | jq '.sink.written_events')
until [ "$(stats | jq '.sink.lag_events')" = "0" ]; do sleep 0.1; done
T1=$(date +%s.%N)
WRITTEN=$(stats | jq '.sink.written_events')
INS=$(histo insert)
stop_server
DRAIN=$(awk -v n="$((WRITTEN - W0))" -v s="$T0" -v e="$T1" 'BEGIN{printf "%d", n/(e-s)}')
md "### Drain rate"
md ""
md "\`baddybugs-loadgen --rate 0 --events $BACKLOG\` acknowledged $ACKED events into the spool while ClickHouse was down; then the front was started and the clock ran until \`sink.lag_events\` = 0"
md "(from the first batch stored, $(awk -v s="$TF" -v e="$T0" 'BEGIN{printf "%.1f", e-s}') s after the front answered: migrations and the end of the retry backoff): **$DRAIN events/s** ($((WRITTEN - W0)) events in $(awk -v s="$T0" -v e="$T1" 'BEGIN{printf "%.1f", e-s}') s)."
md "Insert latency per batch (all tables of one batch): p50 $(cut -d'|' -f1 <<<"$INS") ms, p99 $(cut -d'|' -f3 <<<"$INS") ms, max $(cut -d'|' -f4 <<<"$INS") ms over $(cut -d'|' -f5 <<<"$INS") batches."
md ""

# 2. The stored rate end to end, and the acknowledged peak, with ClickHouse as the store: a flood
# from a fresh server, then until everything acknowledged is stored. stored/s = acknowledged ÷
# time from the first request to lag 0 (the definition of `scripts/fleet.sh --bench`). The client
# is issue 18's: `wrk` (one C thread) replaying the load generator's gzip bodies, each once, so
# the two cores go to the server and ClickHouse rather than to generating traffic; without wrk,
# the load generator itself (which takes about a core: its figure is lower). CPU seconds of the
# server and of the front per stored event are given too: on a shared machine they move less
# than the rates do.
cpu_s() { sed 's/^.*) //' "/proc/$1/stat" | awk '{printf "%.2f", ($12 + $13) / 100}'; }
stop_front; start_front
if command -v wrk >/dev/null; then
  CLIENT=wrk
  log "flood: writing $((FLOOD_SECS * 150000)) events as gzip bodies"
  "$LOADGEN" --write-bodies "$WORK/bodies" --events $((FLOOD_SECS * 150000)) --seed 7 --gen-threads 2 --json > "$WORK/bodies.json"
  OPTIONAL_KEY=1 start_server peak
  # Ready once the migrations ran; a store that never gets there stops the bench with its reason.
  for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" = 200 ] && break
    sleep 0.1
  done
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" = 200 ] ||
    { echo "the server was not ready after 60 s: $(curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/readyz")" >&2; exit 1; }
  log "flood with ClickHouse: wrk for ${FLOOD_SECS}s, then until stored"
  F0=$(cpu_s "$CH_PID"); T0=$(date +%s.%N)
  BODIES="$WORK/bodies" API_KEY="${KEY%%:*}" wrk -t1 -c16 -d"${FLOOD_SECS}s" -s scripts/wrk-bodies.lua "$URL" > "$WORK/wrk.out" 2>&1
  T1=$(date +%s.%N)
  PEAK_ACKED=$(stats | jq '.totals.accepted')
  PEAK_P99="$(grep -E '^latency p99 ' "$WORK/wrk.out" | awk '{print $3}')"
  CLIENT_MD="\`baddybugs-loadgen --write-bodies F --events $((FLOOD_SECS * 150000)) --seed 7\`, then \`BODIES=F API_KEY=bench-key wrk -t1 -c16 -d${FLOOD_SECS}s -s scripts/wrk-bodies.lua\` (each body once)"
else
  CLIENT=loadgen
  start_server peak
  log "flood with ClickHouse: the load generator for ${FLOOD_SECS}s (wrk is not installed), then until stored"
  F0=$(cpu_s "$CH_PID"); T0=$(date +%s.%N)
  P="$(loadgen --rate 0 --duration "${FLOOD_SECS}s" --concurrency 16)"
  T1=$(date +%s.%N)
  PEAK_ACKED=$(jq -r '.acked' <<<"$P")
  PEAK_P99=$(jq -r '.latency.p99_ms' <<<"$P")
  CLIENT_MD="\`baddybugs-loadgen --rate 0 --duration ${FLOOD_SECS}s --concurrency 16\` (wrk is not installed: the generator takes about a core of the two, so this is lower than wrk's figure)"
fi
until [ "$(stats | jq '.sink.lag_events')" = "0" ]; do sleep 0.1; done
T2=$(date +%s.%N)
SRV_CPU=$(cpu_s "$SERVER_PID"); FRONT_CPU=$(awk -v a="$F0" -v b="$(cpu_s "$CH_PID")" 'BEGIN{printf "%.2f", b-a}')
HWM=$(awk '/VmHWM/{printf "%d", $2/1024}' "/proc/$SERVER_PID/status")
stop_server
rm -f "$WORK/bodies"
PEAK=$(awk -v n="$PEAK_ACKED" -v s="$T0" -v e="$T1" 'BEGIN{printf "%d", n/(e-s)}')
STORED=$(awk -v n="$PEAK_ACKED" -v s="$T0" -v e="$T2" 'BEGIN{printf "%d", n/(e-s)}')
SRV_US=$(awk -v c="$SRV_CPU" -v n="$PEAK_ACKED" 'BEGIN{printf "%.1f", c*1e6/n}')
FRONT_US=$(awk -v c="$FRONT_CPU" -v n="$PEAK_ACKED" 'BEGIN{printf "%.1f", c*1e6/n}')
md "### Stored rate end to end, and the acknowledged peak"
md ""
md "$CLIENT_MD against a fresh server: **$PEAK events/s acknowledged**, p99 $PEAK_P99 ms;"
md "$PEAK_ACKED acknowledged in $(awk -v s="$T0" -v e="$T1" 'BEGIN{printf "%.1f", e-s}') s, all stored $(awk -v s="$T0" -v e="$T2" 'BEGIN{printf "%.1f", e-s}') s after the first request: **$STORED events/s stored end to end**."
md "CPU per stored event: server $SRV_US µs ($SRV_CPU s, ingest and store), ClickHouse front $FRONT_US µs ($FRONT_CPU s); server peak RSS (VmHWM) $HWM MiB."
md ""

# 3. Steady load: 202 -> stored latency.
[ "$STEADY" = half ] && STEADY=$((STORED / 2))
log "steady ${STEADY}/s for ${STEADY_SECS}s"
stop_front; start_front
start_server steady
R="$(loadgen --rate "$STEADY" --duration "${STEADY_SECS}s" --concurrency 16 --verify)"
until [ "$(stats | jq '.sink.lag_events')" = "0" ]; do sleep 0.1; done
E2E=$(histo end_to_end); INS=$(histo insert)
stop_server
md "### End-to-end latency at a steady $STEADY events/s"
md ""
md "\`baddybugs-loadgen --rate $STEADY --duration ${STEADY_SECS}s --concurrency 16 --verify\`: acknowledged $(jq -r '.acked_rate|floor' <<<"$R")/s, ack p99 $(jq -r '.latency.p99_ms' <<<"$R") ms;"
md "verify: $(jq -r '"\(.verify.found) of \(.verify.expected) acknowledged events stored, \(.verify.missing_count) missing, \(.verify.doubled_count) doubled"' <<<"$R")."
md "202 -> stored (queryable; the \`end_to_end\` histogram of /v1/stats): **p50 $(cut -d'|' -f1 <<<"$E2E") ms, p90 $(cut -d'|' -f2 <<<"$E2E") ms, p99 $(cut -d'|' -f3 <<<"$E2E") ms**, max $(cut -d'|' -f4 <<<"$E2E") ms;"
md "insert p50 $(cut -d'|' -f1 <<<"$INS") ms, p99 $(cut -d'|' -f3 <<<"$INS") ms."
md ""

# 4. Ack latency at fractions of the peak, with ClickHouse as the store.
if [ "$FRACTIONS" = 1 ]; then
  md "### Ack latency at fractions of the peak with ClickHouse as the store"
  md ""
  md "| load | acked/s | p50 ms | p90 ms | p99 ms | max ms |"
  md "|---|---|---|---|---|---|"
  for pct in 25 50 90; do
    RATE=$((PEAK * pct / 100))
    log "latency at ${pct}% ($RATE/s)"
    start_server "f$pct"
    F="$(loadgen --rate "$RATE" --duration "${FRAC_SECS}s" --concurrency 16)"
    stop_server
    md "| ${pct} % (\`--rate $RATE\`) | $(jq -r '.acked_rate|floor' <<<"$F") | $(jq -r '.latency.p50_ms' <<<"$F") | $(jq -r '.latency.p90_ms' <<<"$F") | $(jq -r '.latency.p99_ms' <<<"$F") | $(jq -r '.latency.max_ms' <<<"$F") |"
  done
  md ""
fi
stop_front

if [ -n "$JSON" ]; then
  jq -n --argjson drain "$DRAIN" --argjson drained "$((WRITTEN - W0))" --argjson stored "$STORED" \
    --argjson peak "$PEAK" --arg client "$CLIENT" --argjson srv_us "$SRV_US" --argjson front_us "$FRONT_US" --argjson hwm "$HWM" --argjson steady "$STEADY" --argjson r "$R" \
    --arg e2e "$E2E" --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
    '{commit: $commit, drain_eps: $drain, drained_events: $drained, stored_eps: $stored, stored_client: $client, peak_ack_eps: $peak,
      stored_server_cpu_us: $srv_us, stored_front_cpu_us: $front_us, stored_rss_hwm_mib: $hwm,
      steady_rate: $steady, steady_acked_eps: ($r.acked_rate | floor),
      e2e_p50_ms: ($e2e | split("|")[0] | tonumber), e2e_p99_ms: ($e2e | split("|")[2] | tonumber),
      verify_missing: $r.verify.missing_count, verify_doubled: $r.verify.doubled_count}' > "$JSON"
fi

cat "$OUT"
if [ "$APPEND" = 1 ]; then { echo; cat "$OUT"; } >> docs/BENCHMARKS.md; log "appended to docs/BENCHMARKS.md"; fi
