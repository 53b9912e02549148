# Shared helpers of the benchmark scripts (sourced, not run).

# Waits until FILE (a server's ready line) is non-empty; fails if PID dies first. Remove FILE
# before starting the server: a stale one would pass at once.
wait_ready() {
  while [ ! -s "$1" ]; do
    kill -0 "$2" 2>/dev/null || { echo "bench: process $2 died before it was ready ($1)" >&2; exit 1; }
    sleep 0.2
  done
}

# Starts vms-camsim with N looping cameras `{prefix}-0001…` (H.264 640x360, 15 fps, 1 Mbit/s,
# GOP 30) in directory DIR; sets SIM_PID, SIM_RTSP and SIM_CONTROL.
start_camsim() {
  local n=$1 dir=$2 prefix=${3:-bench}
  cat >"$dir/camsim.toml" <<TOML
[[camera]]
name = "$prefix"
count = $n
[[camera.streams]]
codec = "h264"
width = 640
height = 360
fps = 15
gop_frames = 30
bitrate_kbps = 1000
TOML
  rm -f "$dir/camsim.ready" # a stale ready line would pass wait_ready before the new one
  VMS_LOG=warn target/release/vms-camsim --config "$dir/camsim.toml" >"$dir/camsim.ready" &
  SIM_PID=$!
  wait_ready "$dir/camsim.ready" "$SIM_PID"
  SIM_RTSP=$(sed -E 's/.*"rtsp":"([^"]+)".*/\1/' "$dir/camsim.ready")
  SIM_CONTROL=$(sed -E 's/.*"control":"([^"]+)".*/\1/' "$dir/camsim.ready")
}

# Total CPU ticks (user + system) of the given pids; a pid that has exited counts 0.
cpu_ticks() {
  local t=0 p
  for p in "$@"; do
    if [ -r "/proc/$p/stat" ]; then
      t=$((t + $(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    fi
  done
  echo "$t"
}

# Total resident memory (KiB) of the given pids.
rss_kib() {
  local t=0 p
  for p in "$@"; do
    t=$((t + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
