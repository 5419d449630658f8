#!/usr/bin/env bash
# BaddyBugs Ingest benchmark suite. Prints a markdown report on stdout; --append also appends
# it to docs/BENCHMARKS.md. Every figure comes with the command that reproduces it.
#
#   scripts/bench.sh [--quick] [--append] [--soak-minutes N] [--no-criterion]
#
# --quick: 10 s runs, a 1-minute soak, short criterion runs (for trying the suite).
# Needs: cargo, jq, a free TCP port 18181. Progress goes to stderr.
set -euo pipefail

QUICK=0 APPEND=0 SOAK_MIN=10 CRITERION=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --append) APPEND=1 ;;
    --soak-minutes) SOAK_MIN="$2"; shift ;;
    --no-criterion) CRITERION=0 ;;
    -h|--help) sed -n 2,9p "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$QUICK" = 1 ] && [ "$SOAK_MIN" = 10 ] && SOAK_MIN=1

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SERVER="$TARGET/release/baddybugs-ingest"
LOADGEN="$TARGET/release/baddybugs-loadgen"
PORT=18181
URL="http://127.0.0.1:$PORT/v1/ingest"
KEY="bench-key:bench-secret"
TOKEN="bench-token"
RUN_SECS=60; LAT_SECS=30
[ "$QUICK" = 1 ] && RUN_SECS=10 && LAT_SECS=8
WORK="$(mktemp -d)"
SERVER_PID=""
OUT="$WORK/report.md"

log() { echo "bench: $*" >&2; }
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

log "building release binaries"
cargo build --release -q -p baddybugs-ingest -p baddybugs-fixtures >&2

start_server() { # fresh data dir, fsync always, embedded store
  local dir="$WORK/data-$1"
  cat > "$WORK/bench.toml" <<EOF
[spool]
fsync = "always"
EOF
  BADDYBUGS_LOG=warn "$SERVER" serve --config "$WORK/bench.toml" --listen "127.0.0.1:$PORT" \
    --data-dir "$dir" --api-key "$KEY" --feed-token "$TOKEN" > "$WORK/server.out" 2> "$WORK/server.err" &
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    grep -q "listening on" "$WORK/server.out" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "the server did not start:" >&2; cat "$WORK/server.err" >&2; exit 1
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }
stats() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/stats"; }
loadgen() { "$LOADGEN" --url "$URL" --api-key "$KEY" --feed-token "$TOKEN" --seed 7 --json -q "$@"; }
md() { echo "$*" >> "$OUT"; }

CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
MODE=$([ "$QUICK" = 1 ] && echo "quick" || echo "full")
md "## Benchmark run $(date -u +%Y-%m-%dT%H:%MZ) ($MODE mode)"
md ""
md "Machine: $(nproc) cores, $CPU, $(free -g | awk '/Mem:/{print $2}') GB RAM, $(uname -sr); \`git rev-parse --short HEAD\` = $(git rev-parse --short HEAD 2>/dev/null || echo '?')."
md "Server: release build, embedded SQLite store, \`[spool] fsync = \"always\"\`, on the same machine as the load generator."
md "Reproduce everything: \`scripts/bench.sh$([ "$QUICK" = 1 ] && echo ' --quick')\`."
md ""

# 1. Decode-only ceiling.
log "decode-only ceiling"
DEC="$("$LOADGEN" --decode-only --seed 7 --pool 1000 --json)"
CHECK_EPS=$(jq -r '.check_eps' <<<"$DEC")
md "### 1. Decode-only ceiling vs the full pipeline"
md ""
md "\`baddybugs-loadgen --decode-only --seed 7 --pool 1000\` (same batches as the runs below, one core, in process):"
md ""
md "| step | events/s |"
md "|---|---|"
md "| generate a body (instantiate + gzip 6 + HMAC) | $(jq -r '.generate_eps|floor' <<<"$DEC") |"
md "| gunzip | $(jq -r '.gunzip_eps|floor' <<<"$DEC") |"
md "| gunzip + split into raw events | $(jq -r '.split_eps|floor' <<<"$DEC") |"
md "| gunzip + split + \`check_event\` (**the ceiling**) | $(jq -r '.check_eps|floor' <<<"$DEC") |"
md ""
md "Batches: $(jq -r '.events' <<<"$DEC") events of $(jq -r '.bytes_per_event|floor' <<<"$DEC") bytes on average, gzip ratio $(jq -r '.gzip_ratio*100|floor/100' <<<"$DEC")."
md ""

# 2. Sustained acknowledged rate (unlimited) + sink drain rate.
log "sustained peak for ${RUN_SECS}s"
start_server peak
W0=$(stats | jq '.sink.written_events'); T0=$(date +%s.%N)
TIMEFORMAT='%U %S %R'
{ time loadgen --rate 0 --duration "${RUN_SECS}s" --concurrency 16 --gen-threads 1 > "$WORK/peak.json"; } 2> "$WORK/peak.time"
PEAK="$(cat "$WORK/peak.json")"
LG_CPU=$(awk '{printf "%.2f", ($1+$2)/$3}' "$WORK/peak.time")
W1=$(stats | jq '.sink.written_events'); T1=$(date +%s.%N)
# Drain: time until everything acknowledged is written.
while [ "$(stats | jq '.sink.lag_events')" != "0" ]; do sleep 0.2; done
W2=$(stats | jq '.sink.written_events'); T2=$(date +%s.%N)
stop_server
PEAK_EPS=$(jq -r '.acked_rate|floor' <<<"$PEAK")
RATIO=$(awk -v a="$PEAK_EPS" -v b="$CHECK_EPS" 'BEGIN{printf "%.2f", a/b}')
DRAIN_RUN=$(awk -v a="$W0" -v b="$W1" -v s="$T0" -v e="$T1" 'BEGIN{printf "%d", (b-a)/(e-s)}')
DRAIN_ALL=$(awk -v a="$W0" -v b="$W2" -v s="$T0" -v e="$T2" 'BEGIN{printf "%d", (b-a)/(e-s)}')
md "Full pipeline, \`baddybugs-loadgen --rate 0 --duration ${RUN_SECS}s --concurrency 16 --seed 7\` against the server:"
md "**$PEAK_EPS events/s acknowledged** (202 after fsync), p50 $(jq -r '.latency.p50_ms' <<<"$PEAK") ms, p99 $(jq -r '.latency.p99_ms' <<<"$PEAK") ms;"
md "unexpected outcomes $(jq -r '.unexpected' <<<"$PEAK"), generator waits $(jq -r '.generator_waits' <<<"$PEAK"); the load generator itself used $LG_CPU of a core (user+sys / wall)."
md "**Ratio to the decode-only ceiling: $RATIO** (both share the machine's $(nproc) cores with the generator)."
md ""
md "### 2. Embedded sink drain rate"
md ""
md "From \`/v1/stats\` \`sink.written_events\` sampled before and after the run above: $DRAIN_RUN events/s written while loading;"
md "$DRAIN_ALL events/s until \`sink.lag_events\` reached 0 ($(awk -v s="$T1" -v e="$T2" 'BEGIN{printf "%.1f", e-s}') s after the run ended)."
md ""

# 3. Latency at 25/50/90 % of the peak.
md "### 3. Ack latency at fractions of the peak ($PEAK_EPS events/s)"
md ""
md "| load | command | acked/s | p50 ms | p90 ms | p99 ms | max ms |"
md "|---|---|---|---|---|---|---|"
for pct in 25 50 90; do
  RATE=$((PEAK_EPS * pct / 100))
  log "latency at ${pct}% ($RATE/s) for ${LAT_SECS}s"
  start_server "lat$pct"
  R="$(loadgen --rate "$RATE" --duration "${LAT_SECS}s" --concurrency 16)"
  stop_server
  md "| ${pct} % | \`--rate $RATE --duration ${LAT_SECS}s --concurrency 16\` | $(jq -r '.acked_rate|floor' <<<"$R") | $(jq -r '.latency.p50_ms' <<<"$R") | $(jq -r '.latency.p90_ms' <<<"$R") | $(jq -r '.latency.p99_ms' <<<"$R") | $(jq -r '.latency.max_ms' <<<"$R") |"
done
md ""

# 4. Memory over a soak.
SOAK_RATE=$((PEAK_EPS / 2))
log "soak: ${SOAK_MIN} min at $SOAK_RATE/s, RSS every 10 s"
start_server soak
echo "seconds,rss_kib" > "$WORK/rss.csv"
"$LOADGEN" --url "$URL" --api-key "$KEY" --seed 7 -q --json --rate "$SOAK_RATE" --duration "${SOAK_MIN}m" \
  --malformed-ratio 0.02 > "$WORK/soak.json" &
LG=$!
S0=$(date +%s)
while kill -0 "$LG" 2>/dev/null; do
  echo "$(( $(date +%s) - S0 )),$(awk '/VmRSS/{print $2}' "/proc/$SERVER_PID/status")" >> "$WORK/rss.csv"
  for _ in $(seq 1 100); do kill -0 "$LG" 2>/dev/null || break; sleep 0.1; done
done
wait "$LG" || true
stop_server
mkdir -p docs/bench
SLOPE=$("$LOADGEN" --plot-rss "$WORK/rss.csv" --out docs/bench/rss.png)
cp "$WORK/rss.csv" docs/bench/rss.csv
md "### 4. Memory over a ${SOAK_MIN}-minute soak"
md ""
md "\`baddybugs-loadgen --rate $SOAK_RATE --duration ${SOAK_MIN}m --malformed-ratio 0.02\` (half the peak), server RSS from \`/proc/PID/status\` every 10 s:"
md "first $(sed -n 2p docs/bench/rss.csv | cut -d, -f2) KiB, last $(tail -1 docs/bench/rss.csv | cut -d, -f2) KiB, max $(tail -n +2 docs/bench/rss.csv | cut -d, -f2 | sort -n | tail -1) KiB;"
md "**slope $SLOPE MiB/min** (least squares). Plot: [docs/bench/rss.png](bench/rss.png), data: docs/bench/rss.csv."
md ""

# 5. Criterion micro-benchmarks.
if [ "$CRITERION" = 1 ]; then
  log "criterion micro-benchmarks"
  CARGS=()
  [ "$QUICK" = 1 ] && CARGS=(-- --warm-up-time 1 --measurement-time 3)
  # Keep the benchmark names and their time/throughput lines; drop the change-since-last-run
  # lines (they hold %), outlier notes and warnings.
  cargo bench -q -p baddybugs-common --bench validate "${CARGS[@]}" 2>/dev/null \
    | grep -E 'time:|thrpt:|^[A-Za-z]' | grep -vE '%|^(Found|Warning|Benchmarking|Gnuplot|Running)' \
    > "$WORK/criterion.txt" || true
  md "### 5. Criterion micro-benchmarks"
  md ""
  md "\`cargo bench -p baddybugs-common --bench validate$([ "$QUICK" = 1 ] && echo ' -- --warm-up-time 1 --measurement-time 3')\`:"
  md ""
  md '```'
  cat "$WORK/criterion.txt" >> "$OUT"
  md '```'
  md ""
fi

cat "$OUT"
if [ "$APPEND" = 1 ]; then
  { echo; cat "$OUT"; } >> docs/BENCHMARKS.md
  log "appended to docs/BENCHMARKS.md"
fi
