#!/usr/bin/env bash
# A fleet on one machine: several ingest nodes (own ports, data directories and spools) in front
# of one ClickHouse (the real engine, chDB behind tests/clickhouse/chfront.py, or CLICKHOUSE_URL).
#
#   scripts/fleet.sh [--nodes N] [--rate R]   run N nodes (3) and a load of R events/s (500)
#                                            spread over them; prints the console command
#                                            that watches the fleet; Ctrl-C stops everything
#   scripts/fleet.sh --drill                 kill -9 one node of three under load, restart it,
#                                            verify every acknowledged event is stored once
#                                            (markdown row; exit 1 when lost or doubled)
#   scripts/fleet.sh --bench [--secs S]      stored rate end to end with 1, 2 and 3 nodes: a
#                                            flood of S s (15), then until every node's lag
#                                            is 0 (markdown table)
#
# Needs: cargo, jq, curl; free TCP ports 18301-18303 and 18325.
set -euo pipefail

MODE=run NODES=3 RATE=500 SECS=15
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) NODES="$2"; shift ;;
    --rate) RATE="$2"; shift ;;
    --secs) SECS="$2"; shift ;;
    --drill) MODE=drill ;;
    --bench) MODE=bench ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SERVER="$TARGET/release/baddybugs-ingest"
LOADGEN="$TARGET/release/baddybugs-loadgen"
BASE_PORT=18300 CH_PORT=18325
KEY="fleet-key:fleet-secret" TOKEN="fleet-token"
WORK="$(mktemp -d)"
declare -A PIDS=()
CH_PID=""
log() { echo "fleet: $*" >&2; }
cleanup() {
  for p in "${PIDS[@]}" $CH_PID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

log "building release binaries and the ClickHouse front"
cargo build --release -q -p baddybugs-ingest -p baddybugs-loadgen -p baddybugs-console >&2
# shellcheck source=scripts/chfront.sh
source "$ROOT/scripts/chfront.sh"
port() { echo $((BASE_PORT + $1)); }
start_node() { # node number (1..), database
  local n="$1" db="$2"
  cat > "$WORK/node$n.toml" <<EOF
[clickhouse]
database = "$db"
EOF
  : > "$WORK/node$n.out"
  BADDYBUGS_LOG=warn "$SERVER" serve --config "$WORK/node$n.toml" --listen "127.0.0.1:$(port "$n")" \
    --data-dir "$WORK/$db-data$n" --api-key "$KEY" --feed-token "$TOKEN" --clickhouse-url "$CH_URL" \
    >> "$WORK/node$n.out" 2>> "$WORK/node$n.err" &
  PIDS[$n]=$!
  for _ in $(seq 1 400); do grep -q "listening on" "$WORK/node$n.out" 2>/dev/null && return 0; sleep 0.05; done
  echo "node $n did not start:" >&2; cat "$WORK/node$n.err" >&2; exit 1
}
stop_node() { kill "${PIDS[$1]}" 2>/dev/null || true; wait "${PIDS[$1]}" 2>/dev/null || true; unset "PIDS[$1]"; }
kill9_node() { kill -9 "${PIDS[$1]}" 2>/dev/null || true; wait "${PIDS[$1]}" 2>/dev/null || true; unset "PIDS[$1]"; }
stats() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$(port "$1")/v1/stats"; }
urls() { for n in $(seq 1 "$1"); do echo "--url http://127.0.0.1:$(port "$n")/v1/ingest"; done; }
loadgen() { # node count, loadgen args…
  local count="$1"; shift
  # shellcheck disable=SC2046
  "$LOADGEN" $(urls "$count") --api-key "$KEY" --feed-token "$TOKEN" --json -q "$@"
}
lag_all_zero() { # node count
  for n in $(seq 1 "$1"); do [ "$(stats "$n" | jq '.sink.lag_events')" = "0" ] || return 1; done
}

case "$MODE" in
run)
  start_front
  for n in $(seq 1 "$NODES"); do start_node "$n" fleet; done
  echo "fleet: $NODES nodes on ClickHouse $CH_URL (database fleet):"
  CONSOLE_URLS=""
  for n in $(seq 1 "$NODES"); do
    echo "  node $n: http://127.0.0.1:$(port "$n")  data $WORK/fleet-data$n"
    CONSOLE_URLS="$CONSOLE_URLS --url ws://127.0.0.1:$(port "$n")/v1/feed"
  done
  echo "  watch the fleet: cargo run --release -p baddybugs-console --$CONSOLE_URLS --token $TOKEN"
  echo "  (one node: give one --url)"
  echo "load: $RATE events/s round-robin over the nodes; Ctrl-C stops everything."
  # shellcheck disable=SC2046
  "$LOADGEN" $(urls "$NODES") --api-key "$KEY" --rate "$RATE" --duration 24h --malformed-ratio 0.02 -q &
  PIDS[loadgen]=$!
  wait "${PIDS[loadgen]}"
  ;;
drill)
  start_front
  for n in 1 2 3; do start_node "$n" drill; done
  log "load over three nodes; node 2 killed at 6 s, restarted 2 s later"
  loadgen 3 --seed 119 --rate 3000 --duration 20s --malformed-ratio 0.02 --verify \
    --drain-timeout-secs 60 --verify-timeout-secs 180 > "$WORK/drill.json" &
  LG=$!
  sleep 6; kill9_node 2
  sleep 2; start_node 2 drill
  wait "$LG" || true
  S="$(cat "$WORK/drill.json")"
  lost=$(jq -r '.verify.missing_count // "n/a"' <<<"$S")
  doubled=$(jq -r '.verify.doubled_count // "n/a"' <<<"$S")
  echo "| drill | sent | acknowledged | stored | lost | doubled | notes |"
  echo "|---|---|---|---|---|---|---|"
  echo "| fleet of 3: kill -9 of node 2 at 6 s, restart 2 s later | $(jq -r .sent <<<"$S") | $(jq -r .acked <<<"$S") | $(jq -r '.verify.found // "n/a"' <<<"$S") | $lost | $doubled | network errors $(jq .net_errors <<<"$S"), retries $(jq .retries <<<"$S") (each on the next node) |"
  [ "$lost" = 0 ] && [ "$doubled" = 0 ] && [ "$(jq -r .unexpected <<<"$S")" = 0 ] || exit 1
  ;;
bench)
  CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
  echo "## Fleet stored rate $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores, $CPU; \`git rev-parse --short HEAD\` = $(git rev-parse --short HEAD 2>/dev/null || echo '?')."
  echo "Every node and the ClickHouse front share these cores. Reproduce: \`scripts/fleet.sh --bench --secs $SECS\`."
  echo
  echo "| nodes | acknowledged | flood | until stored | stored/s end to end | ack p99 |"
  echo "|---|---|---|---|---|---|"
  for count in 1 2 3; do
    stop_front; start_front
    for n in $(seq 1 "$count"); do start_node "$n" "bench$count"; done
    T0=$(date +%s.%N)
    R="$(loadgen "$count" --seed 7 --rate 0 --duration "${SECS}s" --concurrency 16)"
    T1=$(date +%s.%N)
    until lag_all_zero "$count"; do sleep 0.1; done
    T2=$(date +%s.%N)
    ACKED=$(jq -r .acked <<<"$R")
    echo "| $count | $ACKED | $(awk -v s="$T0" -v e="$T1" 'BEGIN{printf "%.1f s", e-s}') | $(awk -v s="$T0" -v e="$T2" 'BEGIN{printf "%.1f s", e-s}') | **$(awk -v n="$ACKED" -v s="$T0" -v e="$T2" 'BEGIN{printf "%d", n/(e-s)}')** | $(jq -r '.latency.p99_ms' <<<"$R") ms |"
    for n in $(seq 1 "$count"); do stop_node "$n"; done
  done
  ;;
esac
