#!/usr/bin/env bash
# Sets up, builds and starts the demo network on this machine, in the foreground until
# Ctrl-C: simulated cameras, central (the control plane), and two regional recorders (Almaty
# and Astana) that record the cameras, enrol with central and dial out to it. The web UI joins
# as it lands. State lives in $VMS_DEMO_DIR (default /tmp/vms-demo), so footage, enrolments
# and the administrator survive a restart of the demo.
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

# Central, with its first administrator made once and kept.
mkdir -p "$demo/central"
sed "s|@DEMO@|$demo|g" deploy/demo/central.toml >"$demo/central/central.toml"
if [ ! -s "$demo/central/admin.json" ]; then
  (umask 077; target/release/vms-api create-admin --config "$demo/central/central.toml" \
    --username admin >"$demo/central/admin.json")
fi
admin_password=$(jq -r .password "$demo/central/admin.json")
start central target/release/vms-api run --config "$demo/central/central.toml"
api=http://$(jq -r .api "$demo/central.ready")
session=$(curl -sf "$api/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d "$(jq -n --arg p "$admin_password" '{username: "admin", password: $p}')" | jq -r .token)

# The recorders: each enrols once with a one-time token for its region, then keeps its
# channel to central.
declare -A region_code=([almaty]=750000000 [astana]=710000000)
declare -A recorder_name=([almaty]="Almaty-1" [astana]="Astana-1")
for region in almaty astana; do
  mkdir -p "$demo/$region/storage"
  config="$demo/$region/recorder.toml"
  sed "s|@DEMO@|$demo|g" "deploy/demo/recorder-$region.toml" >"$config"
  token=""
  if [ ! -s "$demo/$region/data/central/enrolment.json" ]; then
    token=$(curl -sf "$api/api/v1/enrolment-tokens" -H "Authorization: Bearer $session" \
      -H 'Content-Type: application/json' \
      -d "{\"region\": \"${region_code[$region]}\"}" | jq -r .token)
  fi
  token_line=""
  [ -n "$token" ] && token_line="enrolment_token = \"$token\""
  cat >>"$config" <<TOML

[central]
url = "https://127.0.0.1:8443"
name = "${recorder_name[$region]}"
region = "${region_code[$region]}"
$token_line
TOML
  start "recorder-$region" target/release/vms-recorder run --config "$config"
done

# Wait until central's directory lists every camera of both recorders.
expected=$(grep -c '^\[\[camera\]\]' deploy/demo/recorder-almaty.toml deploy/demo/recorder-astana.toml |
  awk -F: '{n += $2} END {print n}')
for _ in $(seq 1 150); do
  listed=$(curl -sf "$api/api/v1/cameras?limit=1" -H "Authorization: Bearer $session" | jq -r .total)
  [ "$listed" = "$expected" ] && break
  sleep 0.2
done

cat <<TXT

The demo network is up (logs in $demo/*.log):
  central    $api/api/v1/cameras   (directory: $listed of $expected cameras listed)
             first administrator: admin / $admin_password   (kept in $demo/central/admin.json)
             recorders' TLS port: https://127.0.0.1:8443   (root of trust: $demo/central/data/root-cert.pem)
  cameras    rtsp://127.0.0.1:8554/city-live/main   (live, wall clock burned in)
             rtsp://127.0.0.1:8554/yard-000N/{main,sub}   (Digest: operator / demo-password)
             control API: http://127.0.0.1:8555/api/v1/cameras
  recorders  Almaty-1 (region 750000000)  http://127.0.0.1:8081/api/v1/cameras
             Astana-1 (region 710000000)  http://127.0.0.1:8082/api/v1/cameras
             local administrator token: demo-admin-token-0001 (for work while central is down)

Try:
  S=\$(curl -s $api/api/v1/auth/login -H 'Content-Type: application/json' \\
      -d '{"username":"admin","password":"$admin_password"}' | jq -r .token)
  curl -s -H "Authorization: Bearer \$S" '$api/api/v1/cameras?region=750000000' | jq
  curl -s -H "Authorization: Bearer \$S" $api/api/v1/recorders | jq
  ffplay -rtsp_transport tcp rtsp://127.0.0.1:8554/city-live/main
Ctrl-C stops everything.
TXT
wait -n "${pids[@]}"
echo "demo: a process exited; stopping the demo" >&2
