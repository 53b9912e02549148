#!/usr/bin/env bash
# The whole test suite: system packages, formatting, lints, then every unit and end-to-end
# test of the workspace. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/setup.sh
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
# End-to-end tests start the workspace's binaries as real processes: build them first.
cargo build --locked --workspace --bins
cargo test --locked --workspace
