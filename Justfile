# BaddyBugs Ingest — common tasks. `just --list` shows them.

default:
    @just --list

# Run the server on the embedded default store (./data).
run *ARGS:
    cargo run --release -p baddybugs-ingest -- {{ARGS}}

# Run the console against the local server (finds the development token in ./data).
console *ARGS:
    cargo run --release -p baddybugs-console -- {{ARGS}}

# Run every test.
test:
    cargo test --workspace

# Formatting, lints and unused dependencies, as CI runs them (installs cargo-machete if missing).
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    bash scripts/unused-deps.sh

# Print the event catalog.
catalog *ARGS:
    cargo run --release -p baddybugs-ingest -- catalog {{ARGS}}

# Regenerate docs/CATALOG.md from the catalog.
docs:
    cargo run -q -p baddybugs-ingest -- catalog --markdown > docs/CATALOG.md

# Start the ClickHouse test front (real ClickHouse engine via chDB) on a port.
clickhouse PORT="8123":
    bash tests/clickhouse/setup.sh
    target/chdb-venv/bin/python tests/clickhouse/chfront.py --port {{PORT}} --data-dir target/chfront-data

# Criterion micro-benchmarks only.
bench-micro:
    cargo bench -p baddybugs-common --bench validate

# Server + realistic load (500 events/s, 2 % malformed) for the console; Ctrl-C stops both.
demo RATE="500":
    bash scripts/demo.sh {{RATE}}

# Peak memory of one maximal request per encoding, bombs included (release server; markdown table).
request-memory:
    bash scripts/request-memory.sh

# Benchmark suite ending in one table beside the previous figures (--quick, --only/--skip SECTIONS, --append, --soak-minutes N).
bench *ARGS:
    bash scripts/bench.sh {{ARGS}}

# Flame graph + per-stage summary of the release server: `ingest` (under a wrk flood), `drain` (after it), or `both` (needs perf and wrk; installs inferno into target/tools when missing).
profile PHASE="both" *ARGS:
    bash scripts/profile.sh {{PHASE}} {{ARGS}}

# Fault drills: kill -9, store outage, spool quota, clock skew; connection abuse: half-open flood, idle keep-alive, stalled uploads, slow trickle (verified exactly-once).
drills *ARGS:
    bash scripts/drills.sh {{ARGS}}

# A fleet on one machine: chDB front + 3 nodes + load over them (--drill: kill -9 one, verify; --bench: stored rate with 1-3 nodes).
fleet *ARGS:
    bash scripts/fleet.sh {{ARGS}}

# The load generator.
loadgen *ARGS:
    cargo run --release -q -p baddybugs-loadgen --bin baddybugs-loadgen -- {{ARGS}}

# ClickHouse sink benchmark (drain rate, stored rate end to end, 202 -> stored latency, rates with ClickHouse); chDB front unless CLICKHOUSE_URL.
bench-clickhouse *ARGS:
    bash scripts/bench-clickhouse.sh {{ARGS}}

# Acknowledged-rate ceiling: wrk replays the load generator's bodies for 60 s (needs wrk).
bench-ceiling *ARGS:
    bash scripts/bench.sh ceiling {{ARGS}}

# Live feed cost: ingest rate and server CPU with 0, 1 and 5 feed clients, memory per client.
bench-feed *ARGS:
    bash scripts/bench.sh feed {{ARGS}}

# Console cost: redraw rate, CPU, memory and key latency of the real console at 50,000 events/s.
bench-console *ARGS:
    bash scripts/bench.sh console {{ARGS}}
