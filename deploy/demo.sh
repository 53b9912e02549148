#!/usr/bin/env bash
# Sets up, builds and starts the demo network on this machine, in the foreground until
# Ctrl-C. Today that is the camera simulator; it grows with every capability.
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/setup.sh
cargo build --locked --release --bins
export VMS_LOG="${VMS_LOG:-info}"
echo "demo: starting simulated cameras (deploy/demo/camsim.toml); their URLs follow. Ctrl-C stops." >&2
echo "demo: watch one with: ffplay -rtsp_transport tcp rtsp://127.0.0.1:8554/city-live/main" >&2
exec target/release/vms-camsim --config deploy/demo/camsim.toml
