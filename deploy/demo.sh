#!/usr/bin/env bash
# Sets up, builds and starts the demo network on this machine, in the foreground until
# Ctrl-C: simulated cameras and two regional recorders (Almaty and Astana) recording them.
# The central API and the web UI join as they land. State lives in $VMS_DEMO_DIR
# (default /tmp/vms-demo), so footage survives a restart of the demo.
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/setup.sh
cargo build --locked --release --bins
export VMS_LOG="${VMS_LOG:-info}"
demo=${VMS_DEMO_DIR:-/tmp/vms-demo}
mkdir -p "$demo"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# Starts a server in the background and waits for its ready line (its first stdout line).
start() {
  local name=$1; shift
  rm -f "$demo/$name.ready" # a stale ready line from the last demo would pass at once
  "$@" >"$demo/$name.ready" 2>"$demo/$name.log" &
  pids+=($!)
  while [ ! -s "$demo/$name.ready" ]; do
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "demo: $name failed; see $demo/$name.log" >&2; exit 1; }
    sleep 0.2
  done
}

start camsim target/release/vms-camsim --config deploy/demo/camsim.toml
for region in almaty astana; do
  mkdir -p "$demo/$region/storage"
  sed "s|@DEMO@|$demo|g" "deploy/demo/recorder-$region.toml" >"$demo/$region/recorder.toml"
  start "recorder-$region" target/release/vms-recorder run --config "$demo/$region/recorder.toml"
done

cat <<TXT

The demo network is up (logs in $demo/*.log):
  cameras    rtsp://127.0.0.1:8554/city-live/main   (live, wall clock burned in)
             rtsp://127.0.0.1:8554/yard-000N/{main,sub}   (Digest: operator / demo-password)
             control API: http://127.0.0.1:8555/api/v1/cameras
  recorders  Almaty (region 751110000)  http://127.0.0.1:8081/api/v1/cameras
             Astana (region 711110000)  http://127.0.0.1:8082/api/v1/cameras
             local administrator token: demo-admin-token-0001 (header: Authorization: Bearer …)

Try:
  curl -s -H 'Authorization: Bearer demo-admin-token-0001' http://127.0.0.1:8081/api/v1/cameras
  ffplay -rtsp_transport tcp rtsp://127.0.0.1:8554/city-live/main
Ctrl-C stops everything.
TXT
wait -n "${pids[@]}"
echo "demo: a process exited; stopping the demo" >&2
