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

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

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

# Criterion micro-benchmarks.
bench:
    cargo bench -p baddybugs-common
