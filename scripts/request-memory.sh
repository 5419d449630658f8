#!/usr/bin/env bash
# Peak memory of one maximal request per encoding, on the release server (docs/OPERATIONS.md,
# "Memory per request").
#
# Each case runs on a fresh server (default limits: 10 MiB as sent, 64 MiB inflated, 10,000
# events): one small warm-up request, then the request under test. It reports the growth of the
# server's peak RSS (VmHWM in /proc/PID/status) over the peak after the warm-up, twice:
#   - at the answer: the request path (read, inflate, check, validate, spool). The batcher is
#     held back (flush after 3 s, no size trigger) so that the store's work is not counted here;
#   - stored: after the batcher has written the request's events to the store (SQLite).
# Bodies: `identity`, the largest body accepted as sent (10,000 events of ~1 KiB, under 10 MiB);
# `gzip`, `zstd` and `zstd --long=27` of the largest inflated body accepted (10,000 events,
# just under 64 MiB); bombs: 1 GiB of zeros compressed with gzip, zlib (deflate), zstd and
# zstd --long=27 (the decoder's window is then 128 MiB), each answered 413.
#
#   scripts/request-memory.sh        (needs python3, curl, jq, zstd, gzip; port 18383)
#
# Prints a markdown table. Exit status 1 when a request was not answered as expected.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SERVER="$TARGET/release/baddybugs-ingest"
PORT=18383
BASE="http://127.0.0.1:$PORT"
KEY="memory-key"
TOKEN="memory-token"
WORK="$(mktemp -d)"
SERVER_PID=""
FAILED=0

log() { echo "request-memory: $*" >&2; }
cleanup() {
  [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The same packages as drills.sh and bench.sh: one set of features, no rebuild between them.
cargo build --release -q -p baddybugs-ingest -p baddybugs-loadgen >&2

log "building the bodies"
python3 - "$WORK" <<'EOF'
import json, random, sys, zlib
out = sys.argv[1]
rng = random.Random(14)
words = [w for w in """the of and to in is was for on are with as be at by this had not but
what all were when we there can an your which their said if do will each about how up out them
then she many some so these would other into has more her two like him see time could no make
than been who its now people my made over did down only way find use may water long little very
after words called just where most know get through back much before go good new write our used
me man too any day same right look think also around another came come work three word must
because does part even place well such here take why things help put years different away again
off went old number great tell men say small every found still between name should home big give
air line set own under read last never us left end along while might next sound below saw
something thought both few those always looked show large often together asked house world going
want school important until form food keep children feet land side without boy once animals life
enough took sometimes four head above kind began almost live page got earth need far hand high
year mother light parts country father let night following picture being study second eyes soon
times story boys since white days paper hard near sentence better best across during today others
however sure means knew its try told young miles sun ways thing whole hear example heard several
change answer room sea against top turned learn point city play toward five using himself usually""".split()]

# Log lines repeat themselves: 64 sentences, picked at random (gzip -6 makes ~1/10 of it).
sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(6, 16))) + "." for _ in range(64)]

def event(i, size, trace):
    message = []
    n = 0
    while True:
        w = rng.choice(sentences)
        if n + len(w) + 1 > size:
            break
        message.append(w)
        n += len(w) + 1
    e = {"id": f"{trace}-{i}", "trace_id": trace, "env": "production", "type": "log",
         "name": "app", "payload": {"level": "info", "message": " ".join(message)},
         "timestamp": 1749567234.5 + i / 1000}
    return json.dumps(e, separators=(",", ":"))

def body(count, size, trace, limit):
    events = [event(i, size, trace) for i in range(count)]
    text = '{"events":[' + ",".join(events) + "]}"
    assert len(text) <= limit, (len(text), limit)
    return text.encode()

open(f"{out}/identity.json", "wb").write(body(10000, 880, "mem-identity", 10 * 2**20))
open(f"{out}/inflated.json", "wb").write(body(10000, 6500, "mem-inflated", 64 * 2**20))
# A deflate (zlib) bomb: 1 GiB of zeros.
c = zlib.compressobj(9)
zeros = bytes(2**20)
with open(f"{out}/bomb.deflate", "wb") as f:
    for _ in range(1024):
        f.write(c.compress(zeros))
    f.write(c.flush())
EOF
gzip -6 -c "$WORK/inflated.json" > "$WORK/inflated.gz"
zstd -q -3 -c "$WORK/inflated.json" > "$WORK/inflated.zst"
zstd -q -3 --long=27 -c "$WORK/inflated.json" > "$WORK/inflated.long.zst"
head -c 1G /dev/zero | gzip -9 -c > "$WORK/bomb.gz"
head -c 1G /dev/zero | zstd -q -19 -c > "$WORK/bomb.zst"
head -c 1G /dev/zero | zstd -q -3 --long=27 -c > "$WORK/bomb.long.zst"

cat > "$WORK/config.toml" <<EOF
[batch]
flush_interval_ms = 3000
max_bytes = 1073741824
max_events = 1000000
EOF

start_server() {
  local data="$WORK/data-$1"
  : > "$WORK/server.out"
  BADDYBUGS_LOG=warn "$SERVER" serve --listen "127.0.0.1:$PORT" --data-dir "$data" \
    --api-key "$KEY" --feed-token "$TOKEN" --config "$WORK/config.toml" \
    >> "$WORK/server.out" 2>> "$WORK/server.err" &
  SERVER_PID=$!
  for _ in $(seq 1 400); do
    grep -q "listening on" "$WORK/server.out" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "the server did not start" >&2; tail "$WORK/server.err" >&2; exit 1
}
stop_server() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
post() { # file, encoding → status
  local enc=()
  [ "$2" != identity ] && enc=(-H "Content-Encoding: $2")
  curl -s -o "$WORK/answer.json" -w '%{http_code}' -X POST "$BASE/v1/ingest" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' "${enc[@]}" \
    --data-binary "@$1"
}
stored() { # trace id → true once the request's events are in the store (one transaction)
  curl -s -H "Authorization: Bearer $TOKEN" "$BASE/v1/events?trace_id=$1&limit=1" \
    | jq -e '.events | length == 1' > /dev/null
}

printf '{"events":[{"type":"log","name":"warm","trace_id":"mem-warm","payload":{"level":"info","message":"warm-up"}}]}' > "$WORK/warm.json"

echo "| body | Content-Encoding | bytes sent | bytes inflated | answer | peak RSS growth at the answer, MiB | peak RSS growth until stored, MiB |"
echo "|---|---|---|---|---|---|---|"
run_case() { # name, file, encoding, inflated size, expected status, trace id of its events
  local name="$1" file="$2" enc="$3" inflated="$4" want="$5" trace="${6:-}"
  log "$name ($enc)"
  start_server "$name-$enc"
  [ "$(post "$WORK/warm.json" identity)" = 202 ] || { echo "warm-up refused" >&2; exit 1; }
  for _ in $(seq 1 200); do stored mem-warm && break; sleep 0.1; done
  local before status at_answer after
  before=$(hwm_kib)
  status=$(post "$file" "$enc")
  at_answer=$(hwm_kib)
  if [ "$status" = 202 ]; then
    for _ in $(seq 1 600); do stored "$trace" && break; sleep 0.1; done
    stored "$trace" || { echo "not stored in time" >&2; FAILED=1; }
  fi
  after=$(hwm_kib)
  local accepted
  accepted=$(jq -r '.accepted // .error // "?"' "$WORK/answer.json" 2>/dev/null || echo "?")
  echo "| $name | $enc | $(stat -c %s "$file") | $inflated | $status ($accepted) | $(mib $((at_answer - before))) | $(mib $((after - before))) |"
  [ "$status" = "$want" ] || FAILED=1
  stop_server
}

IN=$(stat -c %s "$WORK/inflated.json")
run_case "largest accepted as sent" "$WORK/identity.json" identity "$(stat -c %s "$WORK/identity.json")" 202 mem-identity
run_case "largest accepted inflated" "$WORK/inflated.gz" gzip "$IN" 202 mem-inflated
run_case "largest accepted inflated" "$WORK/inflated.zst" zstd "$IN" 202 mem-inflated
run_case "largest accepted inflated, zstd --long=27" "$WORK/inflated.long.zst" zstd "$IN" 202 mem-inflated
run_case "bomb: 1 GiB of zeros" "$WORK/bomb.gz" gzip 1073741824 413
run_case "bomb: 1 GiB of zeros" "$WORK/bomb.deflate" deflate 1073741824 413
run_case "bomb: 1 GiB of zeros" "$WORK/bomb.zst" zstd 1073741824 413
run_case "bomb: 1 GiB of zeros, zstd --long=27" "$WORK/bomb.long.zst" zstd 1073741824 413

echo
echo "Machine: $(nproc) cores, $(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2- | sed "s/^ //")."
[ "$FAILED" = 0 ] || { echo "A REQUEST WAS NOT ANSWERED AS EXPECTED"; exit 1; }
