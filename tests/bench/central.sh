#!/usr/bin/env bash
# Central benchmark (issue 5). Starts a real central (release build) and, in one
# vms-fake-recorder process, RECORDERS light fake recorders with CAMERAS cameras each: every
# one enrols for real with a token made through the API and keeps a real channel
# (spec/central.md), serving the event stream and the recordings query, which answers after
# the recorder's delay (spread evenly over 20..=50 ms). Recorder i serves district
# AB1k00000 (AB: the (i mod 20)-th top-level region, k = i / 20 + 1) and spreads its cameras
# over ten rural districts below it. Then, through central's client API (vms-central-load):
# (a) directory: QUERIES searches, one at a time, taking in turn a mix of region subtrees
#     and text over all RECORDERS x CAMERAS cameras;
# (b) fan-out: FANOUT recordings queries, each naming 4 cameras of each of 50 recorders
#     whose delays span 20..=50 ms, against the slowest recorder's delay; taken in turn
#     with the same query for the slowest recorder's 4 cameras alone, which shows what the
#     machine adds to one recorder's answer;
# (c) catalog sync: 3 times, one more fake recorder with 25,000 cameras, from its channel's
#     TLS up to central's directory showing all 25,000 (polled every 5 ms).
# Bars: (a) p99 <= 100 ms; (b) p99 <= slowest delay + 10 ms; (c) median <= 10 s.
#
# Usage: tests/bench/central.sh [RECORDERS=100] [CAMERAS=1000] [QUERIES=1200] [FANOUT=200]
set -euo pipefail
cd "$(dirname "$0")/../.."
recorders=${1:-100}
cameras=${2:-1000}
queries=${3:-1200}
fanout=${4:-200}
sync_cameras=25000
sync_runs=3
(( recorders >= 50 && recorders <= 180 )) || { echo "bench: RECORDERS must be 50 to 180" >&2; exit 1; }

bash deploy/setup.sh
cargo build --locked --release -q -p vms-api -p vms-tests \
  --bin vms-api --bin vms-fake-recorder --bin vms-central-load
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
. tests/bench/lib.sh
now_ms() { date +%s%3N; }

# --- central ----------------------------------------------------------------------------
cat >"$work/central.toml" <<TOML
listen = "127.0.0.1:0"
channel_listen = "127.0.0.1:0"
data_dir = "$work/central"
TOML
password=$(VMS_LOG=warn target/release/vms-api create-admin --config "$work/central.toml" --username bench | jq -r .password)
VMS_LOG=${VMS_LOG:-warn} target/release/vms-api run --config "$work/central.toml" >"$work/central.ready" 2>"$work/central.log" &
central_pid=$!
wait_ready "$work/central.ready" "$central_pid"
api=http://$(jq -r .api "$work/central.ready")
channel=https://$(jq -r .channel "$work/central.ready")
token=$(curl -sf "$api/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"bench\",\"password\":\"$password\"}" | jq -r .token)
auth=(-H "Authorization: Bearer $token")
# Writes N enrolment tokens for the regions given, one a line, to FILE.
enrolment_tokens() {
  local file=$1 region; shift
  : >"$file"
  for region in "$@"; do
    curl -sf "${auth[@]}" "$api/api/v1/enrolment-tokens" -H 'content-type: application/json' \
      -d "{\"region\":\"$region\"}" | jq -r .token >>"$file"
  done
}
# How many cameras the directory holds in REGION.
directory_total() {
  curl -sf "${auth[@]}" "$api/api/v1/cameras?region=$1&limit=1" | jq .total
}
load() { target/release/vms-central-load --api "$api" --token="$token" "$@"; }

# --- the network ------------------------------------------------------------------------
tops=(10 11 15 19 23 27 31 33 35 39 43 47 55 59 61 62 63 71 75 79)
regions=()
for ((i = 0; i < recorders; i++)); do
  regions+=("${tops[i % 20]}1$((i / 20 + 1))00000")
done
enrolment_tokens "$work/tokens.txt" "${regions[@]}"
t0=$(now_ms)
VMS_LOG=${VMS_LOG:-warn} target/release/vms-fake-recorder --central "$channel" \
  --token-file "$work/tokens.txt" --cameras-per-recorder "$cameras" \
  --regions "$(IFS=,; echo "${regions[*]}")" --delay-ms 20..50 >"$work/fake.ready" 2>"$work/fake.log" &
wait_ready "$work/fake.ready" $!
t1=$(now_ms)
total=$((recorders * cameras))
until [ "$(directory_total 000000000)" -ge "$total" ]; do
  (( $(now_ms) - t1 < 300000 )) || { echo "bench: the directory did not reach $total cameras" >&2; exit 1; }
  sleep 0.05
done
t2=$(now_ms)
echo "network: $recorders recorders enrolled, channels up and catalogs sent in $((t1 - t0)) ms; directory at $total cameras $((t2 - t0)) ms after the start"

# --- (a) directory ----------------------------------------------------------------------
load directory --queries "$queries" \
  --query 'region=000000000' \
  --query 'region=000000000&q=cam%200004' \
  --query 'region=000000000&q=zheltoksan' \
  --query 'region=750000000&q=abay' \
  --query 'region=190000000&q=satpaev&limit=1000' \
  --query 'region=711110000' >"$work/directory.json"

# --- (b) fan-out ------------------------------------------------------------------------
load fanout --recorders-file "$work/fake.ready" --recorders 50 --cameras-per-recorder 4 \
  --queries "$fanout" >"$work/fanout.json"

# --- (c) catalog sync -------------------------------------------------------------------
: >"$work/sync.txt"
for ((run = 1; run <= sync_runs; run++)); do
  region=799${run}00000
  enrolment_tokens "$work/sync-token.txt" "$region"
  rm -f "$work/sync.ready"
  VMS_LOG=${VMS_LOG:-warn} target/release/vms-fake-recorder --central "$channel" \
    --token-file "$work/sync-token.txt" --cameras-per-recorder "$sync_cameras" \
    --regions "$region" >"$work/sync.ready" 2>>"$work/fake.log" &
  sync_pid=$!
  load sync --region "$region" --cameras "$sync_cameras" --ready-file "$work/sync.ready" \
    | jq .sync_ms >>"$work/sync.txt"
  kill -TERM "$sync_pid"
  wait "$sync_pid" || true
done

# --- figures ----------------------------------------------------------------------------
d=$work/directory.json
f=$work/fanout.json
echo
echo "(a) directory: $(jq .directory_cameras "$d") cameras, $(jq .latency.n "$d") searches one at a time"
printf "%-42s %8s %8s %8s %8s %8s\n" query matches p50_ms p95_ms p99_ms max_ms
jq -r '.queries[] | [.query, .matches, .latency.p50_ms, .latency.p95_ms, .latency.p99_ms, .latency.max_ms] | @tsv' "$d" |
  while IFS=$'\t' read -r q m a b c x; do printf "%-42s %8d %8.2f %8.2f %8.2f %8.2f\n" "$q" "$m" "$a" "$b" "$c" "$x"; done
printf "%-42s %8s %8.2f %8.2f %8.2f %8.2f\n" "all" "" "$(jq .latency.p50_ms "$d")" "$(jq .latency.p95_ms "$d")" \
  "$(jq .latency.p99_ms "$d")" "$(jq .latency.max_ms "$d")"
echo
echo "(b) fan-out: $(jq .latency.n "$f") queries of $(jq .cameras "$f") cameras on $(jq .recorders "$f") recorders, delays $(jq .delay_ms.fastest "$f")..$(jq .delay_ms.slowest "$f") ms; incomplete answers: $(jq .incomplete "$f")"
printf "%-42s %8s %8s %8s %8s %12s\n" "" p50_ms p95_ms p99_ms max_ms p99-slowest
fan_row() { printf "%-42s %8.2f %8.2f %8.2f %8.2f %12.2f\n" "$1" "$(jq "$2.latency.p50_ms" "$f")" \
  "$(jq "$2.latency.p95_ms" "$f")" "$(jq "$2.latency.p99_ms" "$f")" "$(jq "$2.latency.max_ms" "$f")" \
  "$(jq "$2.p99_over_slowest_ms" "$f")"; }
fan_row "all 50 recorders" ""
fan_row "  in turn: the slowest recorder alone" .slowest_alone
echo
echo "(c) catalog sync of $sync_cameras cameras, $sync_runs runs (ms): $(tr '\n' ' ' <"$work/sync.txt")"
echo

dir_p99=$(jq .latency.p99_ms "$d")
over=$(jq .p99_over_slowest_ms "$f")
sync_median=$(median <"$work/sync.txt")
verdict() { awk -v v="$1" -v bar="$2" 'BEGIN {print (v <= bar) ? "PASS" : "FAIL"}'; }
ratio() { awk -v v="$1" -v bar="$2" 'BEGIN {printf "%.3f", v / bar}'; }
printf "%-46s %12s %12s %8s %6s\n" bar figure limit ratio result
printf "%-46s %9.2f ms %9d ms %8s %6s\n" "(a) directory search p99" "$dir_p99" 100 "$(ratio "$dir_p99" 100)" "$(verdict "$dir_p99" 100)"
printf "%-46s %9.2f ms %9d ms %8s %6s\n" "(b) fan-out p99 minus slowest recorder's delay" "$over" 10 "$(ratio "$over" 10)" "$(verdict "$over" 10)"
printf "%-46s %9.0f ms %9d ms %8s %6s\n" "(c) catalog sync of 25,000 cameras, median" "$sync_median" 10000 "$(ratio "$sync_median" 10000)" "$(verdict "$sync_median" 10000)"
if [ "$(jq .incomplete "$f")" != 0 ]; then
  echo "bench: some fan-out answers were incomplete" >&2
  exit 1
fi
