#!/usr/bin/env bash
# BaddyBugs Ingest benchmark suite. Prints a markdown report on stdout, ending with one summary
# table (each figure beside the previous run's, from docs/bench/last.json); --append also appends
# the report to docs/BENCHMARKS.md. Every figure comes with the command that reproduces it.
#
#   scripts/bench.sh [--quick] [--append] [--soak-minutes N] [--only LIST] [--skip LIST]
#                    [--no-criterion] [--no-record]
#   scripts/bench.sh feed|console [--quick] [--rounds N]   (one section only; docs/BENCHMARKS.md)
#   scripts/bench.sh ceiling [--quick]   (acknowledged-rate ceiling with wrk as the client)
#
# Sections (LIST is comma-separated): decode, ceiling (wrk), peak (load generator + SQLite drain
# once it stops), lag (SQLite under 80 % of that drain for the soak's minutes: is the lag flat?),
# latency (25/50/90 % of the ceiling), soak, clickhouse (scripts/bench-clickhouse.sh),
# profile (scripts/profile.sh: flame graphs of the ingest path and the drain), criterion.
# --quick: 10 s runs, 1-minute soaks, 5 s of profile per phase, short criterion runs.
# Record: the summary's figures go to docs/bench/last.json (full runs) or last-quick.json
# (--quick), which the next run of the same mode shows as "previous"; --no-record skips that.
# Needs: cargo, jq, curl, a free TCP port 18181; wrk for the ceiling, perf for the profile (which
# installs inferno into target/tools when missing). Each section says "skipped" with the reason
# when its tool is missing. Progress: stderr.
set -euo pipefail

QUICK=0 APPEND=0 SOAK_MIN=10 SECTION="" ROUNDS="" RECORD=1
ALL_SECTIONS="decode,ceiling,peak,lag,latency,soak,clickhouse,profile,criterion"
ONLY="$ALL_SECTIONS" SKIP=""
while [ $# -gt 0 ]; do
  case "$1" in
    feed|console|ceiling) SECTION="$1" ;;
    --rounds) ROUNDS="$2"; shift ;;
    --quick) QUICK=1 ;;
    --append) APPEND=1 ;;
    --soak-minutes) SOAK_MIN="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    --skip) SKIP="$2"; shift ;;
    --no-criterion) SKIP="$SKIP,criterion" ;;
    --no-record) RECORD=0 ;;
    -h|--help) sed -n 2,18p "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$QUICK" = 1 ] && [ "$SOAK_MIN" = 10 ] && SOAK_MIN=1
for sec in ${ONLY//,/ } ${SKIP//,/ }; do
  case ",$ALL_SECTIONS," in *",$sec,"*) ;; *) echo "unknown section $sec (sections: $ALL_SECTIONS)" >&2; exit 2 ;; esac
done
want() { case ",$ONLY," in *",$1,"*) case ",$SKIP," in *",$1,"*) return 1 ;; esac; return 0 ;; esac; return 1; }

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SERVER="$TARGET/release/baddybugs-ingest"
LOADGEN="$TARGET/release/baddybugs-loadgen"
PORT="${BENCH_PORT:-18181}"   # another port when two runs share a machine
URL="http://127.0.0.1:$PORT/v1/ingest"
KEY="bench-key:bench-secret"
TOKEN="bench-token"
RUN_SECS=60; LAT_SECS=30
[ "$QUICK" = 1 ] && RUN_SECS=10 && LAT_SECS=8
WORK="$(mktemp -d)"
SERVER_PID="" SERVER_DATA=""
OUT="$WORK/report.md"

log() { echo "bench: $*" >&2; }
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

log "building release binaries"
cargo build --release -q -p baddybugs-ingest -p baddybugs-loadgen >&2

SPOOL_QUOTA=$((4 << 30))
start_server() { # fresh data dir, fsync always, embedded store; `:optional`: wrk replays unsigned bodies
  local dir="$WORK/data-$1"
  SERVER_DATA="$dir"
  cat > "$WORK/bench.toml" <<EOF
[spool]
fsync = "always"
quota_bytes = $SPOOL_QUOTA
EOF
  BADDYBUGS_LOG=warn "$SERVER" serve --config "$WORK/bench.toml" --listen "127.0.0.1:$PORT" \
    --data-dir "$dir" --api-key "$KEY:optional" --feed-token "$TOKEN" > "$WORK/server.out" 2> "$WORK/server.err" &
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    grep -q "listening on" "$WORK/server.out" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "the server did not start:" >&2; cat "$WORK/server.err" >&2; exit 1
}
# Stops the server and deletes its data directory: the long runs each write tens of GB, and the
# disk checks before each assume the earlier runs' stores are gone.
stop_server() {
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  [ -z "$SERVER_DATA" ] || rm -rf "$SERVER_DATA"; SERVER_DATA=""
}
stats() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/stats"; }
# Every 10 s while process PID runs, appends "seconds since the start,<output of CMD…>" to CSV.
sample_while() { # PID CSV CMD…
  local pid=$1 csv=$2 s0
  shift 2
  s0=$(date +%s)
  while kill -0 "$pid" 2>/dev/null; do
    echo "$(( $(date +%s) - s0 )),$("$@")" >> "$csv"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
}
lag_and_rss() { echo "$(stats | jq '.sink.lag_events'),$(rss_kib "$SERVER_PID")"; }
loadgen() { "$LOADGEN" --url "$URL" --api-key "$KEY" --feed-token "$TOKEN" --seed 7 --json -q "$@"; }
md() { echo "$*" >> "$OUT"; }

# ---------------------------------------------------------------------------------------------
# One section only: `scripts/bench.sh feed` (live feed cost) and `scripts/bench.sh console`
# (console cost). Each prints its markdown report, for docs/BENCHMARKS.md "## Live feed cost"
# and "## Console cost", and exits; the suite below does not run. Runs are interleaved
# (0, 1, 5, 0, 1, 5 … clients) so that other load on the machine spreads over every
# configuration, and each figure is the median over the rounds.
FEEDBENCH="$TARGET/release/baddybugs-feedbench"
CONSOLE="$TARGET/release/baddybugs-console"
CLK_TCK=$(getconf CLK_TCK)

# utime + stime of a process in clock ticks: fields 14 and 15 of /proc/PID/stat, counted from
# the state field (3) after the parenthesised command name. This is the server's own CPU time,
# whoever else uses the cores.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
median() { sort -g | awk '{a[NR]=$1} END{if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
load_avg() { cut -d' ' -f1-3 /proc/loadavg; }
# need_disk GB WHAT: before a long run, check that WORK's file system has GB free. If not, say so
# on stderr, keep the reason in DISK_SHORT and return 1: the caller skips its section (the
# sections already measured still reach the report) or stops when nothing has run yet.
DISK_SHORT=""
need_disk() {
  local free
  free=$(df -P -B1G "$WORK" | awk 'NR==2{print $4}')
  if [ "$free" -lt "$1" ]; then
    DISK_SHORT="needs about $1 GB free under $WORK, $free GB were free"
    echo "bench: $2 $DISK_SHORT. Free some space first." >&2
    return 1
  fi
}
wait_file() { for _ in $(seq 1 "$(( ${2:-10} * 20 ))"); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }
wait_drained() {
  for _ in $(seq 1 3000); do [ "$(stats | jq '.sink.lag_events')" = "0" ] && return 0; sleep 0.1; done
  log "the sink lag did not reach 0 within 300 s"
}
rss_settled() { # median of 5 samples, 0.2 s apart
  for _ in 1 2 3 4 5; do rss_kib "$1"; sleep 0.2; done | median
}
feedbench_start() { # N [extra flags…]: starts feedbench in the background, waits until subscribed
  local n=$1; shift
  rm -f "$WORK/fb.ready"
  "$FEEDBENCH" --addr "127.0.0.1:$PORT" --token "$TOKEN" --clients "$n" --ready-file "$WORK/fb.ready" \
    "$@" > "$WORK/fb.json" 2> "$WORK/fb.err" &
  FB_PID=$!
  wait_file "$WORK/fb.ready" 20 || { log "feedbench not ready:"; cat "$WORK/fb.err" >&2; exit 1; }
}
feedbench_stop() { kill -INT "$FB_PID" 2>/dev/null || true; wait "$FB_PID" || true; FB_PID=""; }
FB_PID=""

# One throughput run: a fresh server, N feedbench clients subscribed to every topic, the load
# generator at full speed for FEED_SECS, then the sink drained. One TSV line per run.
feed_run() {
  local round=$1 n=$2 tag="feed-r$1-c$2" c0 c1 c2 rss fbm=0 fbb=0 fbd=0 fbc=0
  start_server "$tag"
  [ "$n" -gt 0 ] && feedbench_start "$n" --duration 30m
  c0=$(cpu_ticks "$SERVER_PID")
  TIMEFORMAT='%U %S %R'
  { time loadgen --rate 0 --duration "${FEED_SECS}s" --concurrency 16 > "$WORK/lg.json"; } 2> "$WORK/lg.time"
  c1=$(cpu_ticks "$SERVER_PID")
  rss=$(rss_kib "$SERVER_PID")
  wait_drained
  c2=$(cpu_ticks "$SERVER_PID")
  if [ "$n" -gt 0 ]; then
    feedbench_stop
    fbm=$(jq -r --argjson n "$n" '.messages / $n | floor' "$WORK/fb.json")
    fbb=$(jq -r --argjson n "$n" '.bytes / $n / 1048576 | . * 10 | floor / 10' "$WORK/fb.json")
    fbd=$(jq -r '.dropped_reported' "$WORK/fb.json")
    fbc=$(jq -r '.cpu_secs' "$WORK/fb.json")
  fi
  stop_server
  rm -rf "$WORK/data-$tag"
  local acked rate lg_cpu
  acked=$(jq -r '.acked' "$WORK/lg.json"); rate=$(jq -r '.acked_rate|floor' "$WORK/lg.json")
  lg_cpu=$(awk '{printf "%.2f", ($1+$2)/$3}' "$WORK/lg.time")
  awk -v r="$round" -v n="$n" -v rate="$rate" -v a="$acked" -v c0="$c0" -v c1="$c1" -v c2="$c2" \
      -v hz="$CLK_TCK" -v rss="$rss" -v lg="$lg_cpu" -v m="$fbm" -v b="$fbb" -v d="$fbd" -v fc="$fbc" \
    'BEGIN{printf "%d\t%d\t%d\t%d\t%.2f\t%.2f\t%d\t%s\t%d\t%s\t%d\t%s\n", r, n, rate, a,
       (c1-c0)/hz/(a/1e6), (c2-c0)/hz/(a/1e6), rss/1024, lg, m, b, d, fc}' >> "$WORK/feed-runs.tsv"
  log "feed: round $round, $n clients: $(tail -1 "$WORK/feed-runs.tsv")"
}

bench_feed() {
  local rounds=${ROUNDS:-5} noread_secs=50 l0 l1
  FEED_SECS=20
  [ "$QUICK" = 1 ] && rounds=${ROUNDS:-2} && FEED_SECS=8
  : > "$WORK/feed-runs.tsv"
  l0=$(load_avg)
  for r in $(seq 1 "$rounds"); do
    for n in 0 1 5; do feed_run "$r" "$n"; done
  done
  l1=$(load_avg)

  # Memory per connected client: an idle server, then 5, then 50 subscribed (reading) clients.
  log "feed: memory per client"
  start_server feed-mem
  sleep 2
  local m0 m5 m50 m0b
  m0=$(rss_settled "$SERVER_PID")
  feedbench_start 5 --duration 60m; sleep 3; m5=$(rss_settled "$SERVER_PID"); feedbench_stop; sleep 2
  feedbench_start 50 --duration 60m; sleep 3; m50=$(rss_settled "$SERVER_PID")
  local fb50_cpu; feedbench_stop; fb50_cpu=$(jq -r '.cpu_secs' "$WORK/fb.json"); sleep 2
  m0b=$(rss_settled "$SERVER_PID")
  stop_server

  # Clients that never read: the server must drop, stay bounded, and disconnect them after
  # feed.slow_client_timeout_ms (30 s). Same load with 0 clients first, for comparison.
  local mode
  for mode in none noread; do
    log "feed: $noread_secs s of load with $([ $mode = none ] && echo 'no client' || echo '5 clients that never read')"
    start_server "feed-$mode"
    [ "$mode" = noread ] && feedbench_start 5 --no-read --duration 60m
    echo "seconds,rss_kib,feed_clients,dropped" > "$WORK/noread-$mode.csv"
    loadgen --rate 0 --duration "${noread_secs}s" --concurrency 16 > "$WORK/lg-$mode.json" &
    local lg=$! s0; s0=$(date +%s)
    while kill -0 "$lg" 2>/dev/null; do
      echo "$(( $(date +%s) - s0 )),$(rss_kib "$SERVER_PID"),$(stats | jq -r '[.feed_clients | length, (map(.dropped) | add // 0)] | join(",")')" \
        >> "$WORK/noread-$mode.csv"
      sleep 1
    done
    wait "$lg" || true
    [ "$mode" = noread ] && { feedbench_stop; cp "$WORK/fb.json" "$WORK/fb-noread.json"; }
    stop_server
    rm -rf "$WORK/data-feed-$mode"
  done

  # Report.
  col() { awk -F'\t' -v n="$1" -v c="$2" '$2==n {print $c}' "$WORK/feed-runs.tsv" | median; }
  local r0 r1 r5
  r0=$(col 0 3); r1=$(col 1 3); r5=$(col 5 3)
  ratio() { # median over the rounds of (rate with N clients / rate with 0 in the same round)
    awk -F'\t' -v n="$1" '$2==0 {z[$1]=$3} $2==n {x[$1]=$3} END{for (r in x) if (z[r]>0) print x[r]/z[r]}' \
      "$WORK/feed-runs.tsv" | median
  }
  md "### $(date -u +%Y-%m-%d) — \`scripts/bench.sh feed$([ "$QUICK" = 1 ] && echo ' --quick')$([ -n "$ROUNDS" ] && echo " --rounds $ROUNDS")\`"
  md ""
  md "Machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(uname -sr); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- server common 2>/dev/null || echo ' + uncommitted changes in server/ or common/')."
  md "Load average (1/5/15 min) before: $l0; after the throughput runs: $l1."
  md "Server: release build, embedded SQLite, \`[spool] fsync = \"always\"\`, default \`[feed]\`; a fresh data directory per run."
  md "Each run: \`baddybugs-feedbench --clients N\` subscribed to every topic (one thread, counts frames), then"
  md "\`baddybugs-loadgen --rate 0 --duration ${FEED_SECS}s --concurrency 16 --seed 7\`, then the sink drained to lag 0."
  md "Configurations interleaved 0, 1, 5 clients × $rounds rounds; medians."
  md ""
  md "| clients | acked events/s (median) | vs 0 clients (median of per-round ratios) | server CPU s per M events, load window | … until stored | server RSS at the end of the load, MiB | messages per client | MiB per client | dropped by the server | feedbench CPU s |"
  md "|---|---|---|---|---|---|---|---|---|---|"
  for n in 0 1 5; do
    local rel="—"
    [ "$n" -gt 0 ] && rel=$(ratio "$n" | awk '{printf "%+.1f %%", ($1-1)*100}')
    md "| $n | $(col "$n" 3) | $rel | $(col "$n" 5) | $(col "$n" 6) | $(col "$n" 7) | $(col "$n" 9) | $(col "$n" 10) | $(col "$n" 11) | $(col "$n" 12) |"
  done
  md ""
  # A negative drop (faster with clients) is noise between runs, and said as such.
  drop() { awk -v a="$1" -v z="$r0" 'BEGIN{d = (1 - a / z) * 100; if (d > 0) printf "a drop of %.1f %%", d; else printf "no drop (%+.1f %%, within the run-to-run noise)", -d}'; }
  md "Median acknowledged rate against 0 clients: 1 client: $(drop "$r1"); 5 clients: **$(drop "$r5")** (target: a drop under 5 %)."
  md "Server CPU per million acknowledged events (load window, medians): $(col 0 5) s with 0 clients, $(col 1 5) s with 1, $(col 5 5) s with 5 ($(awk -v a="$(col 5 5)" -v z="$(col 0 5)" 'BEGIN{printf "%+.1f", (a/z-1)*100}') %)."
  md ""
  md "<details><summary>every run (round, clients, acked/s, acked, CPU s/M load, CPU s/M until stored, RSS MiB, loadgen cores, messages/client, MiB/client, dropped, feedbench CPU s)</summary>"
  md ""
  md '```'
  cat "$WORK/feed-runs.tsv" >> "$OUT"
  md '```'
  md "</details>"
  md ""
  md "**Memory per connected client** (idle server, clients subscribed to every topic and reading; RSS median of 5 samples):"
  md "0 clients $((m0/1024)) MiB, 5 clients $((m5/1024)) MiB, 50 clients $((m50/1024)) MiB, 0 again $((m0b/1024)) MiB →"
  md "**$(awk -v a="$m50" -v z="$m0" 'BEGIN{printf "%.0f", (a-z)/50}') KiB per client** (50), $(awk -v a="$m5" -v z="$m0" 'BEGIN{printf "%.0f", (a-z)/5}') KiB (5) (target < 2 MB). 50 clients cost feedbench $fb50_cpu s of CPU."
  md ""
  local peak0 peakn fbj="$WORK/fb-noread.json"
  peak0=$(tail -n +2 "$WORK/noread-none.csv" | cut -d, -f2 | sort -n | tail -1)
  peakn=$(tail -n +2 "$WORK/noread-noread.csv" | cut -d, -f2 | sort -n | tail -1)
  md "**Clients that never read** (\`baddybugs-feedbench --clients 5 --no-read\`, ${noread_secs} s of full-speed load; the same load with no client for comparison):"
  md "acked $(jq -r '.acked_rate|floor' "$WORK/lg-noread.json") events/s (no client: $(jq -r '.acked_rate|floor' "$WORK/lg-none.json")); peak RSS $((peakn/1024)) MiB (no client: $((peak0/1024)) MiB);"
  md "messages the server counted as dropped for them: $(tail -n +2 "$WORK/noread-noread.csv" | cut -d, -f4 | sort -n | tail -1);"
  md "the server disconnected $(jq -r '.closed_by_server' "$fbj") of 5 (first second with fewer than 5 clients: $(awk -F, 'NR>1 && $3<5 {print $1 " s"; exit}' "$WORK/noread-noread.csv"))."
  md ""
  md "RSS (MiB) over time, no client → 5 never-reading clients:"
  md ""
  pick() { awk -F, -v t="$2" 'NR>1 && $1>=t {print int($2/1024); exit}' "$1"; }
  local t head="| s |" sep="|---|" row0="| no client |" row5="| 5 never read |"
  for t in $(seq 0 5 "$noread_secs"); do
    head="$head $t |"; sep="$sep---|"
    row0="$row0 $(pick "$WORK/noread-none.csv" "$t") |"; row5="$row5 $(pick "$WORK/noread-noread.csv" "$t") |"
  done
  md "$head"; md "$sep"; md "$row0"; md "$row5"
  md ""
}

# Console cost: the real console in tmux (120×40) against the server at CONSOLE_RATE events/s.
# The console writes its own frames/messages/key latency once a second (--stats-file); CPU
# and RSS come from /proc; key latency is also timed from outside (send-keys → capture-pane).
tmux_() { tmux -L "$TMUX_SOCKET" "$@"; }
# Sends KEY to tmux TARGET and polls its screen until it contains TEXT; prints the milliseconds.
key_until() {
  local target=$1 key=$2 text=$3 t0 t1
  t0=$EPOCHREALTIME
  tmux_ send-keys -t "$target" "$key"
  for _ in $(seq 1 2000); do
    if tmux_ capture-pane -p -t "$target" | grep -qF "$text"; then
      t1=$EPOCHREALTIME
      awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f\n", (b-a)*1000}'
      return 0
    fi
  done
  echo "nan"
}

console_round() { # ROUND: one console session under load; appends to console-rounds.tsv
  local round=$1 tag="console-r$1" cpid c0 c1 t0 t1 s0 s1 lg
  start_server "$tag"
  TMUX_SOCKET="bbbench-$$"
  rm -f "$WORK/stats.jsonl"
  tmux -L "$TMUX_SOCKET" -f /dev/null new-session -d -x 120 -y 40 -s console \
    "exec $CONSOLE --url ws://127.0.0.1:$PORT/v1/feed --token $TOKEN --log-file $WORK/console.log --stats-file $WORK/stats.jsonl"
  cpid=$(tmux_ display -p -t console '#{pane_pid}')
  for _ in $(seq 1 100); do tmux_ capture-pane -p -t console | grep -q CONNECTED && break; sleep 0.1; done
  "$LOADGEN" --url "$URL" --api-key "$KEY" --seed 7 --json -q --rate "$CONSOLE_RATE" \
    --duration "$((CONSOLE_SECS + 15))s" --concurrency 16 > "$WORK/lg-$tag.json" &
  LG_PID=$!
  sleep 5 # warm-up: tails fill, rates settle
  : > "$WORK/rss.txt"
  c0=$(cpu_ticks "$cpid"); t0=$EPOCHREALTIME; s0=$(( $(date +%s%3N) ))
  for _ in $(seq 1 "$CONSOLE_SECS"); do rss_kib "$cpid" >> "$WORK/rss.txt"; sleep 1; done
  c1=$(cpu_ticks "$cpid"); t1=$EPOCHREALTIME; s1=$(( $(date +%s%3N) ))
  # Key latency from outside, still under load: 2 (Types) then 1 (Overview), KEY_ROUNDS times.
  # The same through a shell loop that redraws on each key: what tmux and the polling cost.
  tmux_ new-window -d -t console -n echo \
    "exec bash -c 'while IFS= read -rsn1 k; do printf \"\\033[2J\\033[HKEY %s\\n\" \"\$k\"; done'"
  : > "$WORK/keys.txt"; : > "$WORK/keys-echo.txt"
  for _ in $(seq 1 "$KEY_ROUNDS"); do
    key_until console:0 2 "Types ·" >> "$WORK/keys.txt"; sleep 0.3
    key_until console:0 1 "Ingest · rates" >> "$WORK/keys.txt"; sleep 0.3
    key_until console:echo 2 "KEY 2" >> "$WORK/keys-echo.txt"; sleep 0.3
    key_until console:echo 1 "KEY 1" >> "$WORK/keys-echo.txt"; sleep 0.3
  done
  sleep 1.5 # the stats line of the last key
  local lag_dropped; lag_dropped=$(tail -1 "$WORK/stats.jsonl" | jq -r '.lag_dropped + .server_dropped')
  tmux_ send-keys -t console:0 q; sleep 0.5; tmux_ kill-server 2>/dev/null || true; TMUX_SOCKET=""
  wait "$LG_PID" || true; LG_PID=""
  stop_server
  rm -rf "$WORK/data-$tag"
  # Stats-file lines inside the sampling window.
  jq -c --argjson a "$s0" --argjson b "$s1" 'select(.at_ms > $a + 500 and .at_ms <= $b + 500)' \
    "$WORK/stats.jsonl" > "$WORK/window.jsonl"
  local fps_med fps_min msgs draw inside outside out_max in_max cpu rss_max acked
  fps_med=$(jq '.frames / .secs' "$WORK/window.jsonl" | median)
  fps_min=$(jq '.frames / .secs' "$WORK/window.jsonl" | sort -g | head -1)
  msgs=$(jq '.messages / .secs' "$WORK/window.jsonl" | median)
  draw=$(jq 'if .frames > 0 then .draw_ms / .frames else empty end' "$WORK/window.jsonl" | median)
  # Keys pressed after the window: the last lines of the file.
  jq -r '.key_to_frame_ms[]' "$WORK/stats.jsonl" > "$WORK/keys-inside.txt"
  inside=$(median < "$WORK/keys-inside.txt"); in_max=$(sort -g "$WORK/keys-inside.txt" | tail -1)
  outside=$(grep -v nan "$WORK/keys.txt" | median); out_max=$(sort -g "$WORK/keys.txt" | tail -1)
  local echo_med; echo_med=$(grep -v nan "$WORK/keys-echo.txt" | median)
  cpu=$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v hz="$CLK_TCK" 'BEGIN{printf "%.1f", (b-a)/hz/(e-s)*100}')
  rss_max=$(sort -n "$WORK/rss.txt" | tail -1)
  acked=$(jq -r '.acked_rate|floor' "$WORK/lg-$tag.json")
  printf "%d\t%d\t%.1f\t%.1f\t%.0f\t%.2f\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n" "$round" "$acked" "$fps_med" "$fps_min" "$msgs" "$draw" \
    "$cpu" "$((rss_max / 1024))" "$inside" "$in_max" "$outside" "$out_max" "$lag_dropped" "$echo_med" >> "$WORK/console-rounds.tsv"
  log "console: round $round: $(tail -1 "$WORK/console-rounds.tsv")"
}

bench_console() {
  local rounds=${ROUNDS:-3} l0 l1
  CONSOLE_RATE=${CONSOLE_RATE:-50000} CONSOLE_SECS=30 KEY_ROUNDS=10
  [ "$QUICK" = 1 ] && rounds=${ROUNDS:-1} && CONSOLE_SECS=10 && KEY_ROUNDS=5
  log "building the console"
  cargo build --release -q -p baddybugs-console >&2
  : > "$WORK/console-rounds.tsv"
  l0=$(load_avg)
  for r in $(seq 1 "$rounds"); do console_round "$r"; done
  l1=$(load_avg)
  ccol() { cut -f"$1" "$WORK/console-rounds.tsv" | median; }
  md "### $(date -u +%Y-%m-%d) — \`scripts/bench.sh console$([ "$QUICK" = 1 ] && echo ' --quick')$([ -n "$ROUNDS" ] && echo " --rounds $ROUNDS")\`"
  md ""
  md "Machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(uname -sr); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- server common console 2>/dev/null || echo ' + uncommitted changes'). tmux $(tmux -V | cut -d' ' -f2)."
  md "Load average (1/5/15 min) before: $l0; after: $l1."
  md "Each round: a fresh server (release, embedded SQLite, \`fsync = \"always\"\`); \`baddybugs-console --stats-file …\` in \`tmux new-session -d -x 120 -y 40\`"
  md "(every topic subscribed, Overview view); \`baddybugs-loadgen --rate $CONSOLE_RATE --concurrency 16 --seed 7\`; after 5 s of warm-up,"
  md "${CONSOLE_SECS} s of samples (console CPU from /proc/PID/stat, RSS every second, its stats file), then $((KEY_ROUNDS * 2)) view switches"
  md "(\`2\` until the screen shows \`Types ·\`, \`1\` until \`Ingest · rates\`), still under load. $rounds round(s); medians."
  md ""
  md "| figure | median over rounds (a \"max\" or \"worst\" is each round's, then the median) | target |"
  md "|---|---|---|"
  md "| events/s acknowledged during the run (asked: $CONSOLE_RATE) | $(ccol 2) | 50,000 |"
  md "| redraws per second (console's stats file; median second / worst second) | $(ccol 3) / $(ccol 4) | ≥ 10 |"
  md "| feed messages applied per second | $(ccol 5) | — |"
  md "| time per redraw, ms | $(ccol 6) | — |"
  md "| console CPU, % of one core | $(ccol 7) | < 10 % |"
  md "| console RSS, MiB (max) | $(ccol 8) | < 100 MB |"
  md "| key → frame that shows it, inside the console, ms (median / max) | $(ccol 9) / $(ccol 10) | < 50 ms |"
  md "| key → screen, from outside (tmux send-keys → capture-pane shows it), ms (median / max) | $(ccol 11) / $(ccol 12) | < 50 ms |"
  md "| the same, through a shell loop that redraws on each key instead of the console (tmux + polling alone), ms (median) | $(ccol 14) | — |"
  md "| tail messages dropped (console lag + server) | $(ccol 13) | — |"
  md ""
  md "<details><summary>every round (round, acked/s, fps median, fps min, messages/s, draw ms, CPU %, RSS MiB, key inside median, max, key outside median, max, dropped, shell-loop key median)</summary>"
  md ""
  md '```'
  cat "$WORK/console-rounds.tsv" >> "$OUT"
  md '```'
  md "</details>"
  md ""
}

# ---------------------------------------------------------------------------------------------
# The ceiling run's disk: the bodies file (~60 bytes per event); the spool, if every body were
# acknowledged and none stored yet (under 700 bytes per event: 300k events took 127 MB on
# 2026-12-03); the store, writing ~20k events/s during the flood at ~1.1 KiB each; 2 GB to spare.
# 14 GB for 60 s.
ceiling_events() { echo $((RUN_SECS * 250000)); } # enough bodies that none is sent twice at up to 250k events/s
ceiling_disk_ok() {
  local events
  events=$(ceiling_events)
  need_disk $(( (events * 760 + RUN_SECS * 20000 * 1100) / 1000000000 + 2 )) "the ceiling run"
}
# `scripts/bench.sh ceiling`: the acknowledged-rate ceiling over RUN_SECS with a light client.
# On two cores the load generator takes one core for itself (instantiate, gzip, sign), so here
# it writes its traffic once, as gzip bodies with fresh ids, and `wrk` (one C thread) replays
# them, each body once (scripts/wrk-bodies.lua). Counts come from the server's /v1/stats.
bench_ceiling() {
  command -v wrk >/dev/null || { echo "bench ceiling needs wrk (apt-get install wrk)" >&2; exit 2; }
  local secs=$RUN_SECS events s0 s1 c0 c1 t0 t1 rss
  events=$(ceiling_events)
  ceiling_disk_ok || exit 1
  log "ceiling: writing $events events as gzip bodies"
  "$LOADGEN" --write-bodies "$WORK/bodies" --events "$events" --seed 7 --gen-threads 2 --json > "$WORK/bodies.json"
  if [ -z "${DEC:-}" ]; then
    log "ceiling: decode-only ceiling"
    DEC="$("$LOADGEN" --decode-only --seed 7 --pool 1000 --json)"
  fi
  # The spool holds the whole run (the embedded store drains slower than this): room for it.
  local quota=$SPOOL_QUOTA
  SPOOL_QUOTA=$((16 << 30))
  start_server ceiling
  SPOOL_QUOTA=$quota
  s0="$(stats)"; c0=$(cpu_ticks "$SERVER_PID"); t0=$(date +%s.%N)
  log "ceiling: wrk for ${secs}s"
  BODIES="$WORK/bodies" API_KEY="${KEY%%:*}" wrk -t1 -c16 -d"${secs}s" -s scripts/wrk-bodies.lua "$URL" > "$WORK/wrk.out" 2>&1
  t1=$(date +%s.%N); s1="$(stats)"; c1=$(cpu_ticks "$SERVER_PID"); rss=$(rss_kib "$SERVER_PID")
  local hwm; hwm=$(awk '/VmHWM/{print $2}' "/proc/$SERVER_PID/status")
  stop_server
  rm -rf "$WORK/data-ceiling" "$WORK/bodies"
  local acked dups rejected written non202 wall rate check ratio
  acked=$(( $(jq '.totals.accepted' <<<"$s1") - $(jq '.totals.accepted' <<<"$s0") ))
  dups=$(( $(jq '.totals.duplicates' <<<"$s1") - $(jq '.totals.duplicates' <<<"$s0") ))
  rejected=$(( $(jq '.totals.rejected' <<<"$s1") - $(jq '.totals.rejected' <<<"$s0") ))
  written=$(( $(jq '.sink.written_events' <<<"$s1") - $(jq '.sink.written_events' <<<"$s0") ))
  non202=$(jq '[.responses[] | select(.[0] != 202) | .[1]] | add // 0' <<<"$s1")
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
  rate=$(awk -v n="$acked" -v w="$wall" 'BEGIN{printf "%d", n/w}')
  check=$(jq -r '.check_eps|floor' <<<"$DEC")
  ratio=$(awk -v a="$rate" -v b="$check" 'BEGIN{printf "%.2f", a/b}')
  CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
  md "### ${CEIL_NUM:-}Acknowledged-rate ceiling, ${secs} s, wrk replaying the load generator's bodies ($(date -u +%Y-%m-%dT%H:%MZ))"
  md ""
  md "Machine: $(nproc) cores, $CPU; load average before the run $(load_avg | cut -d' ' -f1). Server: release, embedded SQLite, \`fsync = \"always\"\`, spool quota 16 GiB."
  md "Command: \`scripts/bench.sh ceiling$([ "$QUICK" = 1 ] && echo ' --quick')\` = \`baddybugs-loadgen --write-bodies F --events $events --seed 7\` ($(jq -r '.bodies' "$WORK/bodies.json") bodies of 100 events, $(jq -r '.raw_bytes / .events | floor' "$WORK/bodies.json") bytes per event before gzip, every id fresh), then \`BODIES=F API_KEY=bench-key wrk -t1 -c16 -d${secs}s -s scripts/wrk-bodies.lua\`."
  md ""
  md "| figure | value |"
  md "|---|---|"
  md "| events acknowledged (202 after fsync) | **$acked in $wall s = $rate events/s** |"
  md "| duplicates / rejected / non-202 answers | $dups / $rejected / $non202 |"
  md "| ack latency under this flood (wrk, 16 in flight) | $(grep -E '^latency p50' "$WORK/wrk.out" | awk '{print $3" "$4}') p50, $(grep -E '^latency p99 ' "$WORK/wrk.out" | awk '{print $3" "$4}') p99, $(grep -E '^latency max' "$WORK/wrk.out" | awk '{print $3" "$4}') max |"
  md "| decode-only ceiling, one core (gunzip + split + \`check_event\`) | $check events/s |"
  md "| **ratio acknowledged / decode-only** | **$ratio** |"
  md "| embedded store writes during the run | $(awk -v n="$written" -v w="$wall" 'BEGIN{printf "%d", n/w}') events/s (the rest waits in the spool) |"
  md "| server CPU | $(awk -v c="$((c1 - c0))" -v hz="$CLK_TCK" -v w="$wall" 'BEGIN{printf "%.2f", c/hz/w}') cores |"
  md "| server RSS at the end (peak during the run, VmHWM) | $((rss / 1024)) MiB ($((hwm / 1024)) MiB) |"
  md "| heap by consumer at the end (\`/v1/stats\` \`buffers.memory\`, MiB) | $(jq -r '[.buffers.memory.consumers[] | select(.bytes != null) | "\(.name) \(.bytes / 1048576 * 10 | floor / 10)"] | join(", ")' <<<"$s1"); jemalloc allocated $(jq -r '.buffers.memory.allocator.allocated / 1048576 | floor' <<<"$s1") |"
  md ""
  md "wrk's own summary:"
  md ""
  md '```'
  grep -vE '^latency (p|max)' "$WORK/wrk.out" >> "$OUT"
  md '```'
  md ""
  CEIL_EPS=$rate CEIL_RSS=$((rss / 1024))
}

section_cleanup() {
  if [ -n "$FB_PID" ]; then kill "$FB_PID" 2>/dev/null || true; fi
  if [ -n "${LG_PID:-}" ]; then kill "$LG_PID" 2>/dev/null || true; fi
  if [ -n "${TMUX_SOCKET:-}" ]; then tmux -L "$TMUX_SOCKET" kill-server 2>/dev/null || true; fi
}
if [ -n "$SECTION" ]; then
  trap 'section_cleanup; cleanup' EXIT
  "bench_$SECTION"
  cat "$OUT"
  exit 0
fi

CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
MODE=$([ "$QUICK" = 1 ] && echo "quick" || echo "full")
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
DIRTY="$(git diff --quiet HEAD -- server common fixtures 2>/dev/null || echo ' + uncommitted changes')"
RUN_AT="$(date -u +%Y-%m-%dT%H:%MZ)"
ARGS_TXT=""
[ "$QUICK" = 1 ] && ARGS_TXT=" --quick"
[ "$ONLY" != "$ALL_SECTIONS" ] && ARGS_TXT="$ARGS_TXT --only $ONLY"
[ -n "$SKIP" ] && ARGS_TXT="$ARGS_TXT --skip ${SKIP#,}"
# The record: full runs compare with (and write) last.json, quick runs last-quick.json, falling
# back to last.json until a quick run has written one.
RECORD_FILE="docs/bench/last.json"
[ "$QUICK" = 1 ] && RECORD_FILE="docs/bench/last-quick.json"
PREV_FILE="$RECORD_FILE"
[ -f "$PREV_FILE" ] || PREV_FILE="docs/bench/last.json"
PREV='{"figures":{}}'
[ -f "$PREV_FILE" ] && PREV="$(cat "$PREV_FILE")"
# This run's figures, keyed as in the record; a row not measured holds its reason in SKIPPED.
declare -A NOW=() SKIPPED=() HOW=()
declare -A UNIT=([ack_ceiling_eps]=events/s [p99_at_half_ms]=ms [rss_ceiling_mib]=MiB [soak_rss_mean_mib]=MiB
  [soak_rss_max_mib]=MiB [soak_rss_slope_mib_min]=MiB/min [sqlite_drain_eps]=events/s [ch_drain_eps]=events/s
  [ch_stored_eps]=events/s [ch_e2e_p99_ms]=ms [sqlite_lag_rate_eps]=events/s [sqlite_lag_slope_per_min]=events/min
  [sqlite_lag_max_events]=events)
prev_value() { jq -r --arg k "$1" '.figures[$k].value // empty' <<<"$PREV"; }

md "## Benchmark run $RUN_AT ($MODE mode)"
md ""
md "Machine: $(nproc) cores, $CPU, $(free -g | awk '/Mem:/{print $2}') GB RAM, $(uname -sr); load average before: $(load_avg); \`git rev-parse --short HEAD\` = $COMMIT$DIRTY."
md "Server: release build, embedded SQLite store, \`[spool] fsync = \"always\"\`, on the same machine as the load generator."
md "Reproduce: \`scripts/bench.sh$ARGS_TXT\`."
md ""

# The soak's disk check, before anything long runs: the rate is not known yet, so this takes half
# the previous ceiling; the check before the soak itself uses the measured rate.
if want soak; then
  EST_RATE=$(prev_value ack_ceiling_eps | cut -d. -f1)
  EST_RATE=$(( ${EST_RATE:-100000} / 2 ))
  need_disk "$(awk -v r="$EST_RATE" -v m="$SOAK_MIN" -v q="$SPOOL_QUOTA" 'BEGIN{printf "%d", (r * m * 60 * 1100 + q) / 1e9 + 1}')" \
    "the soak (store + spool at about $EST_RATE events/s for $SOAK_MIN min; or use --soak-minutes N or --skip soak)" || exit 1
fi

# 1. Decode-only ceiling.
DEC=""
CHECK_EPS=""
if want decode; then
  log "decode-only ceiling"
  DEC="$("$LOADGEN" --decode-only --seed 7 --pool 1000 --json)"
  CHECK_EPS=$(jq -r '.check_eps' <<<"$DEC")
  md "### 1. Decode-only ceiling"
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
fi

# 2. The acknowledged ceiling: wrk replaying the generator's bodies (bench_ceiling above).
CEIL_EPS="" CEIL_RSS=""
if want ceiling; then
  if command -v wrk >/dev/null; then
    # The disk check runs here, not inside bench_ceiling: a function called as an `if` condition
    # runs without `set -e`, and a failing wrk must still stop the run.
    if ceiling_disk_ok; then
      CEIL_NUM="2. " bench_ceiling
      NOW[ack_ceiling_eps]=$CEIL_EPS; HOW[ack_ceiling_eps]="wrk -t1 -c16 -d${RUN_SECS}s replaying the generator's bodies"
      NOW[rss_ceiling_mib]=$CEIL_RSS; HOW[rss_ceiling_mib]="server RSS at the end of the ${RUN_SECS} s wrk flood"
    else
      SKIPPED[ack_ceiling_eps]="skipped: the ceiling run $DISK_SHORT"; SKIPPED[rss_ceiling_mib]="skipped: the ceiling run $DISK_SHORT"
      md "### 2. Acknowledged-rate ceiling: skipped, the run $DISK_SHORT."
      md ""
    fi
  else
    SKIPPED[ack_ceiling_eps]="skipped: wrk not installed"; SKIPPED[rss_ceiling_mib]="skipped: wrk not installed"
    md "### 2. Acknowledged-rate ceiling: skipped, wrk is not installed (apt-get install wrk)."
    md ""
  fi
else
  SKIPPED[ack_ceiling_eps]="not run"; SKIPPED[rss_ceiling_mib]="not run"
fi

# 3. Sustained acknowledged rate with the load generator as the client, then the embedded store's
# drain once the load stops.
PEAK_EPS=""
if want peak; then
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
  DRAIN_RUN=$(awk -v a="$W0" -v b="$W1" -v s="$T0" -v e="$T1" 'BEGIN{printf "%d", (b-a)/(e-s)}')
  DRAIN_ALL=$(awk -v a="$W0" -v b="$W2" -v s="$T0" -v e="$T2" 'BEGIN{printf "%d", (b-a)/(e-s)}')
  DRAIN_AFTER=$(awk -v a="$W1" -v b="$W2" -v s="$T1" -v e="$T2" 'BEGIN{if (e - s > 1) printf "%d", (b-a)/(e-s); else print "n/a"}')
  md "### 3. Sustained rate with the load generator, and the embedded store's drain"
  md ""
  md "Full pipeline, \`baddybugs-loadgen --rate 0 --duration ${RUN_SECS}s --concurrency 16 --seed 7\` against the server:"
  md "**$PEAK_EPS events/s acknowledged** (202 after fsync), p50 $(jq -r '.latency.p50_ms' <<<"$PEAK") ms, p99 $(jq -r '.latency.p99_ms' <<<"$PEAK") ms;"
  md "unexpected outcomes $(jq -r '.unexpected' <<<"$PEAK"), generator waits $(jq -r '.generator_waits' <<<"$PEAK"); the load generator itself used $LG_CPU of a core (user+sys / wall)."
  [ -z "$CHECK_EPS" ] || md "Ratio to the decode-only ceiling: $(awk -v a="$PEAK_EPS" -v b="$CHECK_EPS" 'BEGIN{printf "%.2f", a/b}') (both share the machine's $(nproc) cores with the generator)."
  md ""
  md "Embedded store, from \`/v1/stats\` \`sink.written_events\`: $DRAIN_RUN events/s written while loading;"
  md "$DRAIN_ALL events/s until \`sink.lag_events\` reached 0 ($(awk -v s="$T1" -v e="$T2" 'BEGIN{printf "%.1f", e-s}') s after the run ended);"
  md "**$DRAIN_AFTER events/s alone**, from the end of the run until the lag reached 0 (the store's writer runs at \`batch.background_nice\`, so while the generator loads both cores acknowledgement comes first)."
  md ""
  if [ "$DRAIN_AFTER" = n/a ]; then SKIPPED[sqlite_drain_eps]="n/a: the lag was gone within 1 s"; else
    NOW[sqlite_drain_eps]=$DRAIN_AFTER; HOW[sqlite_drain_eps]="written from the end of a ${RUN_SECS} s load generator flood until lag 0"
  fi
else
  SKIPPED[sqlite_drain_eps]="not run"
fi

# 3b. The embedded store under a steady load it should keep up with: 80 % of the drain measured
# above (else of the previous record's), for the soak's minutes. `sink.lag_events` every 10 s; the
# least-squares slope from the first minute on says whether the store keeps up (flat: about 0).
if want lag; then
  LAG_BASE=${NOW[sqlite_drain_eps]:-$(prev_value sqlite_drain_eps | cut -d. -f1)}
  LAG_RATE=$(( ${LAG_BASE:-0} * 80 / 100 ))
  if [ -z "$LAG_BASE" ]; then
    for k in sqlite_lag_rate_eps sqlite_lag_slope_per_min sqlite_lag_max_events; do SKIPPED[$k]="skipped: no SQLite drain figure (run the peak section)"; done
  elif ! need_disk "$(awk -v r="$LAG_RATE" -v m="$SOAK_MIN" 'BEGIN{printf "%d", r * m * 60 * 1100 / 1e9 + 5}')" \
      "the lag soak (store at $LAG_RATE events/s for $SOAK_MIN min; or use --soak-minutes N or --skip lag)"; then
    for k in sqlite_lag_rate_eps sqlite_lag_slope_per_min sqlite_lag_max_events; do SKIPPED[$k]="skipped: the lag soak $DISK_SHORT"; done
    md "### 3b. The embedded store at 80 % of its drain: skipped, the run $DISK_SHORT."
    md ""
  else
    log "lag: ${SOAK_MIN} min at $LAG_RATE/s (80 % of $LAG_BASE), sink lag every 10 s"
    start_server lag
    echo "seconds,lag_events,rss_kib" > "$WORK/lag.csv"
    "$LOADGEN" --url "$URL" --api-key "$KEY" --seed 7 -q --json --rate "$LAG_RATE" --duration "${SOAK_MIN}m" \
      > "$WORK/lag.json" &
    LG=$!
    sample_while "$LG" "$WORK/lag.csv" lag_and_rss
    wait "$LG" || true
    stop_server
    mkdir -p docs/bench
    LAG_NAME=lag
    [ "$QUICK" = 1 ] && LAG_NAME="lag-quick"
    cp "$WORK/lag.csv" "docs/bench/$LAG_NAME.csv"
    LAG_ACKED=$(jq -r '.acked_rate|floor' "$WORK/lag.json")
    # From the first minute on; a 1-minute run (--quick) has nothing after it: the whole run then.
    LAG_FROM=60
    [ "$SOAK_MIN" -lt 2 ] && LAG_FROM=0
    read -r LAG_SLOPE LAG_MAX LAG_LAST < <(awk -F, -v from="$LAG_FROM" 'NR > 1 { if ($2 > max) max = $2; last = $2 }
      NR > 1 && $1 >= from { n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2 }
      END { d = n * sxx - sx * sx; printf "%d %d %d\n", (d > 0) ? (n * sxy - sx * sy) / d * 60 : 0, max, last }' "$WORK/lag.csv")
    md "### 3b. The embedded store at 80 % of its drain for ${SOAK_MIN} min"
    md ""
    md "\`baddybugs-loadgen --rate $LAG_RATE --duration ${SOAK_MIN}m\` (80 % of $LAG_BASE events/s; acked $LAG_ACKED/s), \`sink.lag_events\` every 10 s:"
    md "max $LAG_MAX events, last $LAG_LAST; **slope from $LAG_FROM s on: $LAG_SLOPE events/min** (a store that keeps up stays near 0; one that falls behind grows by the missing rate × 60). Data: docs/bench/$LAG_NAME.csv."
    md ""
    NOW[sqlite_lag_rate_eps]=$LAG_ACKED; HOW[sqlite_lag_rate_eps]="baddybugs-loadgen --rate $LAG_RATE (80 % of $LAG_BASE) for $SOAK_MIN min, acknowledged"
    NOW[sqlite_lag_slope_per_min]=$LAG_SLOPE; HOW[sqlite_lag_slope_per_min]="least-squares slope of sink.lag_events from $LAG_FROM s on, same run"
    NOW[sqlite_lag_max_events]=$LAG_MAX; HOW[sqlite_lag_max_events]="max sink.lag_events, same run"
  fi
else
  for k in sqlite_lag_rate_eps sqlite_lag_slope_per_min sqlite_lag_max_events; do SKIPPED[$k]="not run"; done
fi

# 4. Ack latency at fractions of the ceiling, with the load generator as the client (it signs and
# times each request as the agent would). The reference is the wrk ceiling of this run, else the
# load generator's peak, else the previous ceiling.
if [ -n "$CEIL_EPS" ]; then REF=$CEIL_EPS REF_WHAT="the wrk ceiling above"
elif [ -n "$PEAK_EPS" ]; then REF=$PEAK_EPS REF_WHAT="the load generator's peak above"
else REF=$(prev_value ack_ceiling_eps | cut -d. -f1) REF_WHAT="the previous run's ceiling"; fi
if want latency && [ -n "$REF" ]; then
  md "### 4. Ack latency at fractions of $REF events/s ($REF_WHAT)"
  md ""
  md "| load | command | acked/s | p50 ms | p90 ms | p99 ms | max ms |"
  md "|---|---|---|---|---|---|---|"
  for pct in 25 50 90; do
    RATE=$((REF * pct / 100))
    log "latency at ${pct}% ($RATE/s) for ${LAT_SECS}s"
    start_server "lat$pct"
    R="$(loadgen --rate "$RATE" --duration "${LAT_SECS}s" --concurrency 16)"
    stop_server
    md "| ${pct} % | \`--rate $RATE --duration ${LAT_SECS}s --concurrency 16\` | $(jq -r '.acked_rate|floor' <<<"$R") | $(jq -r '.latency.p50_ms' <<<"$R") | $(jq -r '.latency.p90_ms' <<<"$R") | $(jq -r '.latency.p99_ms' <<<"$R") | $(jq -r '.latency.max_ms' <<<"$R") |"
    if [ "$pct" = 50 ]; then
      NOW[p99_at_half_ms]=$(jq -r '.latency.p99_ms' <<<"$R")
      HOW[p99_at_half_ms]="baddybugs-loadgen --rate $RATE (half of $REF_WHAT, $REF/s), ${LAT_SECS} s; acked $(jq -r '.acked_rate|floor' <<<"$R")/s"
    fi
  done
  md ""
else
  SKIPPED[p99_at_half_ms]="not run"
fi

# 5. Memory over a soak at half the load generator's peak (as in the earlier records), or half
# the reference above when the peak was not run.
if want soak; then
  SOAK_RATE=$(( ${PEAK_EPS:-$REF} / 2 ))
  # The embedded store keeps every event (about 1 KiB each with its indexes) and the spool up to
  # its quota: a 10-minute soak at 40k events/s needs ~25 GB. Say so before, not after 10 minutes.
  NEED_GB=$(awk -v r="$SOAK_RATE" -v m="$SOAK_MIN" -v q="$SPOOL_QUOTA" 'BEGIN{printf "%d", (r * m * 60 * 1100 + q) / 1e9 + 1}')
fi
if want soak && ! need_disk "$NEED_GB" "the soak (store + spool at $SOAK_RATE events/s for $SOAK_MIN min; or use --soak-minutes)"; then
  for k in soak_rss_mean_mib soak_rss_max_mib soak_rss_slope_mib_min; do SKIPPED[$k]="skipped: the soak $DISK_SHORT"; done
  md "### 5. Memory over a soak: skipped, the run $DISK_SHORT."
  md ""
elif want soak; then
  log "soak: ${SOAK_MIN} min at $SOAK_RATE/s, RSS every 10 s ($NEED_GB GB of disk at most)"
  start_server soak
  echo "seconds,rss_kib" > "$WORK/rss.csv"
  "$LOADGEN" --url "$URL" --api-key "$KEY" --seed 7 -q --json --rate "$SOAK_RATE" --duration "${SOAK_MIN}m" \
    --malformed-ratio 0.02 > "$WORK/soak.json" &
  LG=$!
  sample_while "$LG" "$WORK/rss.csv" rss_kib "$SERVER_PID"
  wait "$LG" || true
  stop_server
  mkdir -p docs/bench
  # A quick run keeps its own files: docs/bench/rss.csv is the last full soak, which the record cites.
  RSS_NAME=rss
  [ "$QUICK" = 1 ] && RSS_NAME="rss-quick"
  SLOPE=$("$LOADGEN" --plot-rss "$WORK/rss.csv" --out docs/bench/$RSS_NAME.png)
  cp "$WORK/rss.csv" docs/bench/$RSS_NAME.csv
  md "### 5. Memory over a ${SOAK_MIN}-minute soak"
  md ""
  md "\`baddybugs-loadgen --rate $SOAK_RATE --duration ${SOAK_MIN}m --malformed-ratio 0.02\` ($([ -n "$PEAK_EPS" ] && echo "half the load generator's peak" || echo "half of $REF_WHAT"); acked $(jq -r '.acked_rate|floor' "$WORK/soak.json")/s), server RSS from \`/proc/PID/status\` every 10 s:"
  # The first minute is the warm-up (dedup window, page cache, allocator pools filling): the
  # question is whether RSS after it stays where it is, so the slope and the mean are also given
  # from 60 s on, with the mean of the second minute against the mean of the last one.
  read -r SLOPE_AFTER MEAN_2ND MEAN_LAST MEAN_AFTER < <(awk -F, -v end="$((SOAK_MIN * 60))" 'NR > 1 && $1 >= 60 {
      n++; sx += $1; sy += $2 / 1024; sxx += $1 * $1; sxy += $1 * $2 / 1024
      if ($1 < 120) { a += $2; na++ }
      if ($1 >= end - 60) { b += $2; nb++ } }
    END { d = n * sxx - sx * sx; slope = (d > 0) ? (n * sxy - sx * sy) / d * 60 : 0
      printf "%.3f %d %d %.1f\n", slope, (na ? a / na / 1024 : 0), (nb ? b / nb / 1024 : 0), (n ? sy / n : 0) }' docs/bench/$RSS_NAME.csv)
  MAX_KIB=$(tail -n +2 docs/bench/$RSS_NAME.csv | cut -d, -f2 | sort -n | tail -1)
  md "first $(sed -n 2p docs/bench/$RSS_NAME.csv | cut -d, -f2) KiB, last $(tail -1 docs/bench/$RSS_NAME.csv | cut -d, -f2) KiB, max $MAX_KIB KiB;"
  if [ "$SOAK_MIN" -lt 2 ]; then
    md "slope $SLOPE MiB/min over the whole run (least squares, the first-minute ramp included); nothing after the first minute to average (a ${SOAK_MIN}-minute soak)."
  else
    md "slope $SLOPE MiB/min over the whole run (least squares, the first-minute ramp included); **from 60 s on: slope $SLOPE_AFTER MiB/min, mean $MEAN_AFTER MiB; mean $MEAN_2ND MiB in the second minute and $MEAN_LAST MiB in the last**."
  fi
  md "Plot: [docs/bench/$RSS_NAME.png](bench/$RSS_NAME.png), data: docs/bench/$RSS_NAME.csv."
  md ""
  NOW[soak_rss_mean_mib]=$MEAN_AFTER; HOW[soak_rss_mean_mib]="mean RSS from 60 s on, ${SOAK_MIN}-minute soak at $SOAK_RATE events/s"
  NOW[soak_rss_max_mib]=$(awk -v k="$MAX_KIB" 'BEGIN{printf "%.1f", k/1024}'); HOW[soak_rss_max_mib]="max RSS over the same soak"
  NOW[soak_rss_slope_mib_min]=$SLOPE_AFTER; HOW[soak_rss_slope_mib_min]="least-squares slope from 60 s on, same soak"
  if [ "$SOAK_MIN" -lt 2 ]; then
    # With one minute there is nothing after the first minute to average.
    SKIPPED[soak_rss_mean_mib]="n/a: a ${SOAK_MIN}-minute soak has no samples after the first minute (max: ${NOW[soak_rss_max_mib]} MiB)"
    SKIPPED[soak_rss_slope_mib_min]="n/a: ${SOAK_MIN}-minute soak"
    unset 'NOW[soak_rss_mean_mib]' 'NOW[soak_rss_slope_mib_min]'
  fi
else
  for k in soak_rss_mean_mib soak_rss_max_mib soak_rss_slope_mib_min; do SKIPPED[$k]="not run"; done
fi

# 6. ClickHouse as the store: scripts/bench-clickhouse.sh, its headline figures read back as JSON.
CH_KEYS="ch_drain_eps ch_stored_eps ch_e2e_p99_ms"
if want clickhouse; then
  if [ -z "${CLICKHOUSE_URL:-}" ] && [ ! -f "$TARGET/chdb-venv/.chfront-installed" ]; then
    for k in $CH_KEYS; do SKIPPED[$k]="skipped: chDB not set up (bash tests/clickhouse/setup.sh) and no CLICKHOUSE_URL"; done
    md "### 6. ClickHouse as the store: skipped, chDB is not set up (\`bash tests/clickhouse/setup.sh\`) and CLICKHOUSE_URL is not set."
    md ""
  else
    log "ClickHouse: scripts/bench-clickhouse.sh"
    CH_ARGS=(--steady-rate half --no-fractions --json "$WORK/ch.json")
    [ "$QUICK" = 1 ] && CH_ARGS=(--quick "${CH_ARGS[@]}")
    if bash scripts/bench-clickhouse.sh "${CH_ARGS[@]}" > "$WORK/ch.md"; then
      md "### 6. ClickHouse as the store (\`scripts/bench-clickhouse.sh ${CH_ARGS[*]:0:${#CH_ARGS[@]}-2}\`)"
      md ""
      # Its headings, one level down, under this one.
      sed -e 's/^### /#### /' -e '/^## /d' "$WORK/ch.md" >> "$OUT"
      CHJ="$(cat "$WORK/ch.json")"
      NOW[ch_drain_eps]=$(jq -r .drain_eps <<<"$CHJ"); HOW[ch_drain_eps]="$(jq -r .drained_events <<<"$CHJ") spooled events, clocked from the first stored batch"
      NOW[ch_stored_eps]=$(jq -r .stored_eps <<<"$CHJ"); HOW[ch_stored_eps]="acknowledged / (first request to lag 0), $(jq -r .stored_client <<<"$CHJ") flood from a fresh server; CPU per event: server $(jq -r .stored_server_cpu_us <<<"$CHJ") µs, front $(jq -r .stored_front_cpu_us <<<"$CHJ") µs"
      NOW[ch_e2e_p99_ms]=$(jq -r .e2e_p99_ms <<<"$CHJ"); HOW[ch_e2e_p99_ms]="steady $(jq -r .steady_rate <<<"$CHJ") events/s = half the stored rate; missing $(jq -r .verify_missing <<<"$CHJ"), doubled $(jq -r .verify_doubled <<<"$CHJ")"
    else
      for k in $CH_KEYS; do SKIPPED[$k]="failed: scripts/bench-clickhouse.sh exited non-zero (its stderr above)"; done
      md "### 6. ClickHouse as the store: scripts/bench-clickhouse.sh failed (see its stderr)."
      md ""
    fi
  fi
else
  for k in $CH_KEYS; do SKIPPED[$k]="not run"; done
fi

# 7. Where the CPU goes: flame graphs of the ingest path and of the drain (scripts/profile.sh).
PROF_INGEST="not run" PROF_DRAIN="not run"
if want profile; then
  log "profile: scripts/profile.sh both"
  PROF_RC=0
  bash scripts/profile.sh both --secs "$([ "$QUICK" = 1 ] && echo 5 || echo 15)" > "$WORK/profile.md" || PROF_RC=$?
  md "### 7. Where the CPU goes (\`scripts/profile.sh both\`)"
  md ""
  cat "$WORK/profile.md" >> "$OUT"
  md ""
  # One line per phase for the summary: the four heaviest stages.
  top_stages() {
    awk -v want="$1" '/^#### Flame graph summary: / { on = ($5 == want) } on && /^\| / && !/^\| (stage|---)/ {
        split($0, f, "|"); gsub(/^ +| +$/, "", f[2]); gsub(/^ +| +$|%/, "", f[3]); print f[3] "\t" f[2] }' "$WORK/profile.md" \
      | sort -t$'\t' -k1,1 -g -r | head -4 | awk -F'\t' '{printf "%s%s %.0f %%", (NR > 1 ? ", " : ""), $2, $1}'
  }
  if [ "$PROF_RC" = 0 ]; then
    PROF_INGEST="$(top_stages ingest)"; PROF_DRAIN="$(top_stages drain)"
    [ -n "$PROF_INGEST" ] || PROF_INGEST="no samples"; [ -n "$PROF_DRAIN" ] || PROF_DRAIN="$(grep -m1 'drain skipped' "$WORK/profile.md" || echo 'no samples')"
  else
    PROF_INGEST="$(head -1 "$WORK/profile.md" | sed 's/^profile: //')"; PROF_DRAIN="$PROF_INGEST"
    [ -n "$PROF_INGEST" ] || { PROF_INGEST="failed (exit $PROF_RC)"; PROF_DRAIN="$PROF_INGEST"; }
  fi
fi

# 8. Criterion micro-benchmarks.
if want criterion; then
  log "criterion micro-benchmarks"
  CARGS=()
  [ "$QUICK" = 1 ] && CARGS=(-- --warm-up-time 1 --measurement-time 3)
  # Keep the benchmark names and their time/throughput lines; drop the change-since-last-run
  # lines (they hold %), outlier notes and warnings.
  cargo bench -q -p baddybugs-common --bench validate "${CARGS[@]}" 2>/dev/null \
    | grep -E 'time:|thrpt:|^[A-Za-z]' | grep -vE '%|^(Found|Warning|Benchmarking|Gnuplot|Running)' \
    > "$WORK/criterion.txt" || true
  md "### 8. Criterion micro-benchmarks"
  md ""
  md "\`cargo bench -p baddybugs-common --bench validate$([ "$QUICK" = 1 ] && echo ' -- --warm-up-time 1 --measurement-time 3')\`:"
  md ""
  md '```'
  cat "$WORK/criterion.txt" >> "$OUT"
  md '```'
  md ""
fi

# The summary: every headline figure beside the previous record's. Change is relative, except for
# the RSS and lag slopes (near 0, so a ratio means nothing): there it is the difference.
fmt() { awk -v v="$1" 'BEGIN{ if (v == int(v) && v >= 1000) { s = sprintf("%d", v); o = ""; while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) } print s o } else if (v == int(v)) print v; else if (v < 100 && v > -100) printf "%.2f\n", v; else printf "%.1f\n", v }'; }
row() { # KEY LABEL
  local k=$1 label=$2 now="${NOW[$1]:-}" prev prevd change="—" shown
  prev=$(prev_value "$k")
  prevd=$(jq -r --arg k "$k" '.figures[$k] | select(. != null) | "\(.date[0:10]), \(.commit), \(.mode)"' <<<"$PREV")
  if [ -n "$now" ]; then shown="**$(fmt "$now")**"; else shown="${SKIPPED[$k]:-not run}"; fi
  if [ -n "$now" ] && [ -n "$prev" ]; then
    if [ "$k" = soak_rss_slope_mib_min ]; then change=$(awk -v a="$now" -v b="$prev" 'BEGIN{printf "%+.2f MiB/min", a-b}')
    elif [ "$k" = sqlite_lag_slope_per_min ]; then change=$(awk -v a="$now" -v b="$prev" 'BEGIN{printf "%+d events/min", a-b}')
    else change=$(awk -v a="$now" -v b="$prev" 'BEGIN{if (b != 0) printf "%+.1f %%", (a/b-1)*100; else print "—"}'); fi
  fi
  md "| $label | $shown | $([ -n "$prev" ] && echo "$(fmt "$prev") ($prevd)" || echo "—") | $change |"
}
md "### Summary ($MODE mode, $RUN_AT, $COMMIT$DIRTY)"
md ""
md "Previous: \`$PREV_FILE\` (each row's date, commit and mode beside it; where each figure came from is in the file). $([ "$QUICK" = 1 ] && echo "Quick runs are short (10 s, 1-minute soak): compare them with quick runs.")"
md "Load average now: $(load_avg). No figure here is asserted by a test; on a shared machine differences of ±10 % are noise."
md ""
md "| figure | this run | previous | change |"
md "|---|---|---|---|"
row ack_ceiling_eps "acknowledged ceiling, events/s (wrk, 202 after fsync)"
row p99_at_half_ms "p99 ack latency at half the ceiling, ms (load generator)"
row rss_ceiling_mib "RSS at the ceiling, MiB (end of the wrk flood)"
row soak_rss_mean_mib "RSS over the soak: mean from 60 s on, MiB"
row soak_rss_max_mib "RSS over the soak: max, MiB"
row soak_rss_slope_mib_min "RSS over the soak: slope from 60 s on, MiB/min"
row sqlite_drain_eps "SQLite drain in the server once the load stops, events/s"
row sqlite_lag_rate_eps "SQLite steady load at 80 % of that drain, events/s acknowledged"
row sqlite_lag_slope_per_min "SQLite lag at that load: slope from 60 s on (quick: whole run), events/min"
row sqlite_lag_max_events "SQLite lag at that load: max, events"
row ch_drain_eps "ClickHouse drain of a spooled backlog, events/s (from the first stored batch)"
row ch_stored_eps "ClickHouse stored rate end to end, events/s (flood → lag 0)"
row ch_e2e_p99_ms "202 → queryable p99 at half that rate, ms"
md "| where the ingest path's CPU goes (perf, inclusive) | $PROF_INGEST | — | — |"
md "| where the drain's CPU goes (perf, inclusive) | $PROF_DRAIN | — | — |"
md ""
[ "${#NOW[@]}" -gt 0 ] && md "How each figure of this run was taken:" && md ""
for k in ack_ceiling_eps p99_at_half_ms rss_ceiling_mib soak_rss_mean_mib soak_rss_max_mib soak_rss_slope_mib_min sqlite_drain_eps sqlite_lag_rate_eps sqlite_lag_slope_per_min sqlite_lag_max_events ch_drain_eps ch_stored_eps ch_e2e_p99_ms; do
  if [ -n "${NOW[$k]:-}" ]; then md "- \`$k\`: ${HOW[$k]}"; fi
done
md ""

# The record: the previous record with this run's figures replacing those it measured.
if [ "$RECORD" = 1 ]; then
  REC="$PREV"
  [ "$PREV_FILE" = "$RECORD_FILE" ] || REC="$(jq '.figures = {}' <<<"$PREV")"
  for k in "${!NOW[@]}"; do
    REC="$(jq --arg k "$k" --argjson v "${NOW[$k]}" --arg how "${HOW[$k]:-}" --arg unit "${UNIT[$k]}" --arg date "$RUN_AT" \
      --arg commit "$COMMIT$DIRTY" --arg mode "$MODE" --arg cmd "scripts/bench.sh$ARGS_TXT" \
      '.figures[$k] = {value: $v, unit: $unit, date: $date, commit: $commit, mode: $mode,
        source: "\($cmd): \($how)"}' <<<"$REC")"
  done
  mkdir -p docs/bench
  jq '.about = "Figures of the last `scripts/bench.sh` run of this mode (last.json: full, last-quick.json: --quick), one entry per row of its summary table: value, unit, date, commit, mode and how it was taken. The next run of the same mode shows them as previous. A run replaces only the rows it measured; an entry whose source names docs/BENCHMARKS.md was seeded from that file."' <<<"$REC" > "$RECORD_FILE"
  log "figures recorded in $RECORD_FILE"
fi

cat "$OUT"
if [ "$APPEND" = 1 ]; then
  { echo; cat "$OUT"; } >> docs/BENCHMARKS.md
  log "appended to docs/BENCHMARKS.md"
fi
