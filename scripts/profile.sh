#!/usr/bin/env bash
# Where the release server spends its CPU: `perf record` on it (a) during a wrk flood (the ingest
# path: HTTP, inflate, validation, spool write and fsync) and (b) during the drain once the flood
# stops (the batcher building rows and the embedded store writing them). Writes a flame graph per
# phase, docs/bench/flame-<phase>.svg, and prints a markdown summary on stdout: the share of
# samples under each pipeline stage (inclusive: a sample counts for every stage on its stack) and
# the heaviest frames of each.
#
#   scripts/profile.sh [ingest|drain|both] [--secs N] [--freq HZ] [--out DIR]
#
# One flood feeds both phases: `drain` floods first too (that is what fills the spool).
# Stacks: the release build has no frame pointers, so perf unwinds with DWARF
# (`--call-graph dwarf`); the profile carries line tables (`debug = "line-tables-only"`).
# Needs: perf (and perf_event_paranoid <= 1 or root), wrk, a free TCP port 18183; inferno is
# installed into target/tools when missing. Exits 3 with a one-line reason when perf or wrk is
# missing (or inferno cannot be installed).
set -Eeuo pipefail

PHASE=both SECS=10 FREQ=99 OUTDIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    ingest|drain|both) PHASE="$1" ;;
    --secs) SECS="$2"; shift ;;
    --freq) FREQ="$2"; shift ;;
    --out) OUTDIR="$2"; shift ;;
    -h|--help) sed -n 2,15p "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUTDIR="${OUTDIR:-$ROOT/docs/bench}"
SERVER="$TARGET/release/baddybugs-ingest"
LOADGEN="$TARGET/release/baddybugs-loadgen"
PORT=18183
URL="http://127.0.0.1:$PORT/v1/ingest"
KEY="bench-key:bench-secret" TOKEN="bench-token"
log() { echo "profile: $*" >&2; }
missing() { echo "profile: skipped: $*"; exit 3; }

command -v perf >/dev/null || missing "perf not installed (apt-get install linux-perf or linux-tools)"
command -v wrk >/dev/null || missing "wrk not installed (apt-get install wrk)"
# inferno's tools (perf script -> folded stacks -> SVG): on PATH, in cargo's bin directory, or in
# target/tools, where this script installs the pinned version when none is found (crates.io only).
INFERNO_VERSION=0.12.3
find_inferno() {
  for d in "" "$HOME/.cargo/bin/" "$TARGET/tools/bin/"; do
    if command -v "${d}inferno-collapse-perf" >/dev/null 2>&1; then INFERNO="$d"; return 0; fi
  done
  return 1
}
if ! find_inferno; then
  log "installing inferno $INFERNO_VERSION into $TARGET/tools (once)"
  cargo install --locked --quiet --root "$TARGET/tools" inferno --version "$INFERNO_VERSION" >&2 \
    || missing "inferno not installed and \`cargo install inferno\` failed"
  find_inferno || missing "inferno not found after installing it into $TARGET/tools"
fi
if [ "$(id -u)" != 0 ] && [ "$(cat /proc/sys/kernel/perf_event_paranoid)" -gt 1 ]; then
  missing "perf may not profile here (kernel.perf_event_paranoid > 1; run as root or lower it)"
fi

WORK="$(mktemp -d)"
SERVER_PID="" WRK_PID=""
cleanup() {
  if [ -n "$WRK_PID" ]; then kill "$WRK_PID" 2>/dev/null || true; fi
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
# A step that fails says which, with the server's last words (its log is deleted with $WORK).
failed() {
  echo "profile: failed at line $1 (exit $2): $3" >&2
  if [ -s "$WORK/server.err" ]; then echo "profile: server stderr (last 20 lines):" >&2; tail -20 "$WORK/server.err" >&2; fi
}
trap 'failed "$LINENO" "$?" "$BASH_COMMAND"' ERR

log "building release binaries"
cargo build --release -q -p baddybugs-ingest -p baddybugs-loadgen >&2

stats() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/stats"; }
# Bodies for a flood of SECS (plus the drain phase's wait) at up to 150k events/s, each sent once.
EVENTS=$(( (SECS + 5) * 150000 ))
log "writing $EVENTS events as gzip bodies"
"$LOADGEN" --write-bodies "$WORK/bodies" --events "$EVENTS" --seed 7 --gen-threads 2 --json > /dev/null

cat > "$WORK/profile.toml" <<EOF
[spool]
fsync = "always"
quota_bytes = $((16 << 30))
EOF
BADDYBUGS_LOG=warn "$SERVER" serve --config "$WORK/profile.toml" --listen "127.0.0.1:$PORT" \
  --data-dir "$WORK/data" --api-key "$KEY:optional" --feed-token "$TOKEN" > "$WORK/server.out" 2> "$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 1 200); do grep -q "listening on" "$WORK/server.out" 2>/dev/null && break; sleep 0.05; done
grep -q "listening on" "$WORK/server.out" || { cat "$WORK/server.err" >&2; exit 1; }

record() { # PHASE: perf on the server for SECS seconds
  log "$1: perf record -F $FREQ --call-graph dwarf for ${SECS}s"
  perf record -q -F "$FREQ" --call-graph dwarf,16384 -p "$SERVER_PID" -o "$WORK/$1.data" -- sleep "$SECS" \
    > /dev/null 2> "$WORK/perf-$1.err" || { cat "$WORK/perf-$1.err" >&2; exit 1; }
}

# The flood: wrk replays the bodies (scripts/wrk-bodies.lua) for longer than any phase needs.
BODIES="$WORK/bodies" API_KEY="${KEY%%:*}" wrk -t1 -c16 -d"$((SECS + 5))s" -s scripts/wrk-bodies.lua "$URL" \
  > "$WORK/wrk.out" 2>&1 &
WRK_PID=$!
sleep 2 # connections up, the spool's first segment open
PHASES=()
if [ "$PHASE" != drain ]; then record ingest; PHASES+=(ingest); fi
wait "$WRK_PID" || true; WRK_PID=""
if [ "$PHASE" != ingest ]; then
  lag=$(stats | jq '.sink.lag_events')
  log "drain: $lag events waiting in the spool"
  if [ "$lag" -lt 1000 ]; then echo "profile: drain skipped: the store kept up with the flood (lag $lag)"; else
    record drain; PHASES+=(drain)
  fi
fi
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""

# Pipeline stages, matched against a frame's symbol (a sample counts once per stage it is under).
# Kernel frames are suffixed _[k] by `inferno-collapse-perf --all`. Frames that only carry work
# for others (unwind guards, closures' call_once, a future's poll, syscall entry) are skipped:
# their generic arguments name the stage of whatever runs inside them.
SKIP_FRAMES='^(catch_unwind|do_call|halt_unwinding|__rust_begin_short_backtrace|call_once|call_once_force|try|with|with_mut|poll|execute|and_then|map|map_err|enter|set|run|block_on|in_scope|scoped|spawn_unchecked|do_syscall_64|entry_SYSCALL_64_after_hwframe|x64_sys_call|\{closure)'
STAGES='HTTP (hyper, axum, accept)|hyper::|axum::|tower::|::accept::|::http::|h1::
decode / inflate|::decode::|flate2|miniz_oxide|zlib|inflate|libdeflate
JSON parse|serde_json|simd_json|sonic_rs
validate|::validate::|check_event|::enrich::
spool|::spool::
batch build|::batch::|build_batch
store write (SQLite, ClickHouse)|::sink::|rusqlite|sqlite3|clickhouse|lz4
disk write + fsync (any caller)|pwrite|fsync|fdatasync|ksys_write|ext4_|jbd2
allocator|jemalloc|_rjem_|je_malloc|je_free|malloc|free|realloc|calloc|mmap|munmap|madvise
kernel (any)|_\[k\]$
async runtime (tokio)|tokio::runtime|tokio::task|parking_lot|futex'

mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
for p in "${PHASES[@]}"; do
  log "$p: perf script | inferno-collapse-perf"
  perf script -i "$WORK/$p.data" 2> /dev/null | "${INFERNO}inferno-collapse-perf" --all > "$WORK/$p.folded"
  "${INFERNO}inferno-flamegraph" --title "baddybugs-ingest: $p ($(date -u +%Y-%m-%d), $(git rev-parse --short HEAD 2>/dev/null))" \
    < "$WORK/$p.folded" > "$OUTDIR/flame-$p.svg"
  total=$(awk '{s += $NF} END{printf "%.0f", s}' "$WORK/$p.folded")
  rel="${OUTDIR#"$ROOT"/}/flame-$p.svg" # the link, relative to docs/ as BENCHMARKS.md needs it
  event=$(perf evlist -i "$WORK/$p.data" 2> /dev/null | head -1)
  echo "#### Flame graph summary: $p ($([ "$p" = ingest ] && echo 'during a wrk flood' || echo 'the drain after the flood stops'))"
  echo
  case "$event" in
    cpu-clock*|task-clock*) weight="$(awk -v t="$total" -v s="$SECS" 'BEGIN{printf "%.1f CPU-seconds sampled (%.2f cores busy)", t / 1e9, t / 1e9 / s}')" ;;
    *) weight="total period $total ($event)" ;;
  esac
  echo "\`perf record -F $FREQ --call-graph dwarf\` on the server for ${SECS} s: $weight; flame graph: [$rel](${rel#docs/})."
  echo "Inclusive: a sample counts for every stage on its stack, so the shares add up to more than 100 %."
  echo
  echo "| stage | samples, inclusive | heaviest frames (inclusive share) |"
  echo "|---|---|---|"
  awk -v total="$total" -v stages="$STAGES" -v skip="$SKIP_FRAMES" '
    BEGIN { n = split(stages, lines, "\n")
      for (i = 1; i <= n; i++) { k = split(lines[i], f, "|"); name[i] = f[1]; pat[i] = f[2]
        for (j = 3; j <= k; j++) pat[i] = pat[i] "|" f[j] } }
    { c = $NF; line = $0; sub(/ [0-9]+$/, "", line); m = split(line, fr, ";")
      delete seen; delete seenf
      for (j = 1; j <= m; j++) {
        g = fr[j]; sub(/_\[[kj]\]$/, "", g)
        # The function itself: `<T as Trait>::f` -> f, `f<Args>` -> f.
        base = g; if (base ~ /^</) sub(/^.*>::/, "", base); sub(/<.*/, "", base)
        if (base ~ skip || base ~ /^ /) continue
        for (i = 1; i <= n; i++) if (fr[j] ~ pat[i]) {
          if (!(i in seen)) { seen[i] = 1; st[i] += c }
          if (!((i, g) in seenf)) { seenf[i, g] = 1; fc[i, g] += c } } } }
    END { for (i = 1; i <= n; i++) {
        top = ""
        for (r = 1; r <= 3; r++) { best = ""; bv = 0
          for (key in fc) { split(key, kk, SUBSEP); if (kk[1] == i && fc[key] > bv && !(key in used)) { best = key; bv = fc[key] } }
          if (best == "") break
          used[best] = 1; split(best, kk, SUBSEP); fn = kk[2]
          if (length(fn) > 70) fn = substr(fn, 1, 67) "..."
          gsub(/\|/, "\\|", fn)
          top = top (top == "" ? "" : "; ") "`" fn "` " sprintf("%.1f %%", 100 * bv / total) }
        printf "| %s | %.1f %% | %s |\n", name[i], (total ? 100 * st[i] / total : 0), (top == "" ? "—" : top) } }
  ' "$WORK/$p.folded"
  echo
done
