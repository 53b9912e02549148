# Shared helpers of the benchmark scripts (sourced, not run).

# Waits until FILE (a server's ready line) is non-empty; fails if PID dies first. Remove FILE
# before starting the server: a stale one would pass at once.
wait_ready() {
  while [ ! -s "$1" ]; do
    kill -0 "$2" 2>/dev/null || { echo "bench: process $2 died before it was ready ($1)" >&2; exit 1; }
    sleep 0.2
  done
}

# Starts vms-camsim with N looping cameras `{prefix}-0001…` in directory DIR; sets SIM_PID,
# SIM_RTSP and SIM_CONTROL. The stream is H.264 640x360, 15 fps, 1 Mbit/s, GOP 30 unless
# STREAM (the lines of a `[[camera.streams]]` table) says otherwise.
start_camsim() {
  local n=$1 dir=$2 prefix=${3:-bench}
  local stream=${4:-$'codec = "h264"\nwidth = 640\nheight = 360\nfps = 15\ngop_frames = 30\nbitrate_kbps = 1000'}
  cat >"$dir/camsim.toml" <<TOML
[[camera]]
name = "$prefix"
count = $n
[[camera.streams]]
$stream
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

# The admin token of the recorders the benchmarks start.
BENCH_TOKEN=bench-admin-token-000

# Starts `vms-recorder run --config CONFIG`, its files in DIR; sets REC_PID and REC_API.
start_recorder() {
  local config=$1 dir=$2
  rm -f "$dir/rec.ready"
  VMS_LOG=${VMS_LOG:-warn} target/release/vms-recorder run --config "$config" >"$dir/rec.ready" 2>>"$dir/rec.log" &
  REC_PID=$!
  wait_ready "$dir/rec.ready" "$REC_PID"
  REC_API=$(sed -E 's/.*"api":"([^"]+)".*/\1/' "$dir/rec.ready")
}

# Stops the recorder started last (its segments close cleanly).
stop_recorder() {
  kill -TERM "$REC_PID"
  wait "$REC_PID" || true
}

# Records SECONDS of one simulated camera (H.264 1280x720, 25 fps, 4 Mbit/s, GOP 50) with a
# recorder whose files live in DIR/rec, then stops both: the pre-encoded frames that
# vms-archive-fill loops. Sets REC_CONFIG and CAMERA (the camera's id).
record_sample() {
  local dir=$1 secs=$2
  start_camsim 1 "$dir" src $'codec = "h264"\nwidth = 1280\nheight = 720\nfps = 25\ngop_frames = 50\nbitrate_kbps = 4000'
  mkdir -p "$dir/rec/storage"
  REC_CONFIG=$dir/rec/recorder.toml
  cat >"$REC_CONFIG" <<TOML
listen = "127.0.0.1:0"
data_dir = "$dir/rec/data"
admin_token = "$BENCH_TOKEN"
conformance_probe_secs = 0
[[storage]]
path = "$dir/rec/storage"
[[camera]]
name = "src-0001"
region = "751110000"
class = "city"
[[camera.streams]]
name = "main"
url = "rtsp://$SIM_RTSP/src-0001/main"
TOML
  start_recorder "$REC_CONFIG" "$dir"
  CAMERA=$(curl -s -H "Authorization: Bearer $BENCH_TOKEN" "http://$REC_API/api/v1/cameras" | sed -E 's/.*"id":"([0-9A-Z]{26})".*/\1/')
  # Record from the first durable frame on.
  for _ in $(seq 300); do
    curl -s -H "Authorization: Bearer $BENCH_TOKEN" "http://$REC_API/metrics" \
      | grep -q '^vms_stream_frames_total{.*} [1-9]' && break
    sleep 0.2
  done
  sleep "$secs"
  stop_recorder
  kill -TERM "$SIM_PID"
  wait "$SIM_PID" || true
}

# The median of the numbers on standard input.
median() {
  sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# The P-th percentile (nearest rank) of the numbers on standard input.
percentile() {
  sort -g | awk -v p="$1" '{v[NR] = $1} END {if (NR == 0) {print "nan"; exit} r = int(p / 100 * NR + 0.999999); if (r < 1) r = 1; print v[r]}'
}

# RFC 3339 (UTC, whole seconds) of a Unix time.
rfc3339() {
  date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ
}
