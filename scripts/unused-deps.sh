#!/usr/bin/env bash
# Fails when a crate of the workspace declares a dependency its sources never use.
# cargo-machete reads the sources (no build, no registry once installed); the version is pinned
# here, and installed when missing or different. Run by .ci/run and `just lint`.
# A dependency named only inside a string (e.g. `#[serde(with = "serde_bytes")]`) is listed under
# `[package.metadata.cargo-machete] ignored` in its crate's Cargo.toml, with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."

MACHETE_VERSION=0.9.2
if [ "$(cargo machete --version 2>/dev/null || true)" != "$MACHETE_VERSION" ]; then
  cargo install --locked cargo-machete --version "$MACHETE_VERSION"
fi
cargo machete
