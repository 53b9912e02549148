#!/usr/bin/env bash
# Seek benchmark (issue 4). Records a minute of one simulated camera (H.264 1280x720, 25 fps,
# 4 Mbit/s), writes one hour of archive from its frames with the recorder's own writer
# (vms-archive-fill), then extends it to DAYS days with generated index rows whose files are
# hard links of the written segment files (one row per segment, as the recorder keeps them).
# With the recorder serving that archive, measures over random start times:
# - a playback start: GET playback.m3u8 for [T, T+10 min], then the first media segment's
#   byte range; time to first media byte = the playlist's total time + the range's time to
#   first byte;
# - a listing: GET recordings for a random 24-hour window.
# Bars: playback start p95 <= 150 ms; listing p99 <= 5 ms.
#
# Usage: tests/bench/seek.sh [STARTS=200] [LISTINGS=1000] [DAYS=30]
set -euo pipefail
cd "$(dirname "$0")/../.."
starts=${1:-200}
listings=${2:-1000}
days=${3:-30}

bash deploy/setup.sh
cargo build --locked --release -q -p vms-recorder -p vms-tests --bins
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
. tests/bench/lib.sh

# --- the archive ------------------------------------------------------------------------
record_sample "$work" 65
start_s=$(( ($(date +%s) - (days + 1) * 86400) / 3600 * 3600 ))
end_s=$((start_s + days * 86400))
t0=$(date +%s%N)
target/release/vms-archive-fill --config "$REC_CONFIG" --camera "$CAMERA" \
  --start "$(rfc3339 $start_s)" --secs 3600 --link-copies $((days * 24 - 1)) >"$work/fill.json"
t1=$(date +%s%N)
echo "fill ($(( (t1 - t0) / 1000000 )) ms): $(cat "$work/fill.json")"

t0=$(date +%s%N)
start_recorder "$REC_CONFIG" "$work"
t1=$(date +%s%N)
echo "recorder start-up with the archive: $(( (t1 - t0) / 1000000 )) ms"
auth=(-H "Authorization: Bearer $BENCH_TOKEN")
base="http://$REC_API/api/v1/cameras/$CAMERA"
# Random start times, the same in every run: seconds into the archive.
random_offsets() {
  awk -v n="$1" -v span="$2" -v seed="$3" 'BEGIN {srand(seed); for (i = 0; i < n; i++) printf "%d\n", rand() * span}'
}

# --- playback starts --------------------------------------------------------------------
# Warm up the connection path and the process once.
curl -s -o /dev/null "${auth[@]}" "$base/playback.m3u8?stream=main&start=$(rfc3339 $start_s)&end=$(rfc3339 $((start_s + 600)))"
: >"$work/starts.txt"
while read -r off; do
  t=$((start_s + off))
  pl=$(curl -s "${auth[@]}" -o "$work/pl.m3u8" -w '%{http_code} %{time_total}' \
    "$base/playback.m3u8?stream=main&start=$(rfc3339 $t)&end=$(rfc3339 $((t + 600)))")
  [ "${pl%% *}" = 200 ] || { echo "bench: playlist failed: $pl" >&2; exit 1; }
  # The first media segment: a byte range line, then its URI.
  read -r len at uri < <(awk -F'[:@]' '/^#EXT-X-BYTERANGE:/ {l = $2; o = $3; getline; print l, o, $0; exit}' "$work/pl.m3u8")
  first=$(curl -s "${auth[@]}" -o /dev/null -r "$at-$((at + len - 1))" -w '%{http_code} %{time_starttransfer}' "$base/$uri")
  [ "${first%% *}" = 206 ] || { echo "bench: media segment failed: $first" >&2; exit 1; }
  echo "${pl#* } ${first#* } $len" >>"$work/starts.txt"
done < <(random_offsets "$starts" $((end_s - start_s - 600)) 1)

# --- 24-hour listings -------------------------------------------------------------------
: >"$work/listings.txt"
while read -r off; do
  t=$((start_s + off))
  r=$(curl -s "${auth[@]}" -o "$work/list.json" -w '%{http_code} %{time_total} %{size_download}' \
    "$base/recordings?stream=main&start=$(rfc3339 $t)&end=$(rfc3339 $((t + 86400)))")
  [ "${r%% *}" = 200 ] || { echo "bench: listing failed: $r" >&2; exit 1; }
  echo "${r#* }" >>"$work/listings.txt"
done < <(random_offsets "$listings" $((end_s - start_s - 86400)) 2)

# --- figures ----------------------------------------------------------------------------
ms() { awk -v c="$1" '{print $c * 1000}'; }
total() { awk '{print ($1 + $2) * 1000}'; }
echo
echo "archive: $days days of one camera ($(( days * 24 * 60 )) one-minute segments); page cache warm (hard-linked files share the written hour's pages)"
printf "%-44s %8s %8s %8s %8s\n" "" p50_ms p95_ms p99_ms max_ms
row() { local f=$1; shift; printf "%-44s %8.2f %8.2f %8.2f %8.2f\n" "$*" \
  "$($f <"$work/$file" | percentile 50)" "$($f <"$work/$file" | percentile 95)" \
  "$($f <"$work/$file" | percentile 99)" "$($f <"$work/$file" | percentile 100)"; }
file=starts.txt
row total "playback start ($starts): first media byte"
row "ms 1" "  of which the 10-minute playlist"
row "ms 2" "  of which the first range, to first byte"
file=listings.txt
row "ms 1" "24-hour listing ($listings)"
echo "first media segment: median $(awk '{print $3}' "$work/starts.txt" | median) bytes; listing: median $(awk '{print $2}' "$work/listings.txt" | median) bytes of JSON"
echo "bars: playback start p95 <= 150 ms ($(total <"$work/starts.txt" | percentile 95) ms); listing p99 <= 5 ms ($(ms 1 <"$work/listings.txt" | percentile 99) ms)"
