#!/usr/bin/env bash
# Benchmark of the camera simulator: serve N looping cameras (H.264, 640x360, 1 Mbit/s, 15 fps)
# and play them all with retina (vms-rtsp-load, a separate process) for a measured window.
# Prints the simulator's CPU per camera and the frames each camera delivered.
# Bar (issue 2): <= 0.5 % of one core per camera, with every frame delivered.
#
# Usage: tests/bench/camsim.sh [CAMERAS=100] [SECONDS=60]
set -euo pipefail
cd "$(dirname "$0")/../.."
cameras=${1:-100}
seconds=${2:-60}

bash deploy/setup.sh
cargo build --locked --release -q -p vms-tests --bins
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
. tests/bench/lib.sh

start_camsim "$cameras" "$work"
target/release/vms-rtsp-load --camsim "http://$SIM_CONTROL" --seconds "$seconds" --fps 15 --pid "$SIM_PID" \
  >"$work/report.json"

# One summary line per figure, from the JSON report.
grep -E '"(streams|window_secs|expected_frames_per_stream|frames_per_stream_min|frames_per_stream_median|missing_frames_total|lost_packets_total|failed_streams|measured_pid_cpu_secs|measured_pid_cpu_pct_of_core_per_stream|measured_pid_rss_kib)"' \
  "$work/report.json" | sed -E 's/^ +"([^"]+)": ([^,]+),?$/\1 = \2/'
pct=$(sed -nE 's/.*"measured_pid_cpu_pct_of_core_per_stream": ([0-9.]+).*/\1/p' "$work/report.json")
echo "bar: simulator CPU per camera <= 0.5 % of a core (measured ${pct} %); every frame delivered"
