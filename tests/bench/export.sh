#!/usr/bin/env bash
# Export benchmark (issue 4). Records a minute of one simulated camera (H.264 1280x720, 25 fps,
# 4 Mbit/s), loops its frames into one hour of archive a day ago with the recorder's own writer
# (vms-archive-fill), checks `reindex --verify`, then measures in one run, RUNS times each:
# - vms-recorder serving GET export.mp4 of the whole hour over loopback: time to first byte
#   and throughput (bytes / total time);
# - nginx (sendfile, keep-alive, its own temporary config) serving the same segment files,
#   all in one curl run: throughput;
# - cat of the same files to /dev/null, as a reference.
# The page cache is warm (the files are read once first), or with COLD=1 each file is dropped
# from it before every run (posix_fadvise DONTNEED through dd; drop_caches needs privileges
# that a container may not have).
# Bars: TTFB <= 50 ms; throughput >= 0.9 x nginx.
#
# Usage: [COLD=1] tests/bench/export.sh [RUNS=5]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}

bash deploy/setup.sh
cargo build --locked --release -q -p vms-recorder -p vms-tests --bins
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
. tests/bench/lib.sh

# --- the archive ------------------------------------------------------------------------
record_sample "$work" 65
start_s=$(( ($(date +%s) - 86400) / 3600 * 3600 ))
end_s=$((start_s + 3600))
target/release/vms-archive-fill --config "$REC_CONFIG" --camera "$CAMERA" \
  --start "$(rfc3339 $start_s)" --secs 3600 >"$work/fill.json"
echo "fill: $(cat "$work/fill.json")"
verdict=$(VMS_LOG=info target/release/vms-recorder reindex --config "$REC_CONFIG" --verify 2>&1 | sed 's/\x1b\[[0-9;]*m//g') \
  || { echo "bench: reindex --verify failed on the filled archive: $verdict" >&2; exit 1; }
echo "reindex --verify: $(grep -o 'index matches the files.*' <<<"$verdict")"

# The hour's segment files, oldest first (their names are their starts in 90 kHz units).
storage=$work/rec/storage
mapfile -t files < <(cd "$storage" && find "$CAMERA/main" -name '*.mp4' | awk -F/ -v a=$((start_s * 90000)) -v b=$((end_s * 90000)) \
  '{n = $NF; sub(/\.mp4$/, "", n); if (n + 0 >= a && n + 0 < b) print n, $0}' | sort -n | cut -d' ' -f2)
file_bytes=$(cd "$storage" && cat "${files[@]}" | wc -c)
echo "segment files: ${#files[@]}, $file_bytes bytes"

# --- the servers ------------------------------------------------------------------------
start_recorder "$REC_CONFIG" "$work"
export_url="http://$REC_API/api/v1/cameras/$CAMERA/export.mp4?stream=main&start=$(rfc3339 $start_s)&end=$(rfc3339 $end_s)"

mkdir -p "$work/nginx"
user_line=""
[ "$(id -u)" -ne 0 ] || user_line="user $(id -un) $(id -gn);"
for _ in $(seq 20); do
  port=$((20000 + RANDOM % 40000))
  cat >"$work/nginx/nginx.conf" <<CONF
$user_line
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  types { video/mp4 mp4; }
  server {
    listen 127.0.0.1:$port;
    root $storage;
  }
}
CONF
  nginx -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" &
  nginx_pid=$!
  for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    kill -0 $nginx_pid 2>/dev/null || break
    sleep 0.1
  done
  kill -0 $nginx_pid 2>/dev/null && break # else the port was taken: try another
done
# One curl run, one connection: each URL with its own output.
nginx_args=()
for f in "${files[@]}"; do nginx_args+=("http://127.0.0.1:$port/$f" -o /dev/null); done

drop_from_cache() {
  (cd "$storage" && for f in "${files[@]}"; do dd if="$f" iflag=nocache count=0 status=none; done)
}
if [ "${COLD:-0}" = 1 ]; then
  cache="cold (every file dropped from the page cache with posix_fadvise before each run)"
else
  cache="warm (every file read once before the runs)"
  (cd "$storage" && cat "${files[@]}" >/dev/null)
fi

# --- the runs, interleaved --------------------------------------------------------------
: >"$work/vms.txt"; : >"$work/nginx.txt"; : >"$work/cat.txt"
for _ in $(seq "$runs"); do
  [ "${COLD:-0}" != 1 ] || drop_from_cache
  curl -s -o /dev/null -H "Authorization: Bearer $BENCH_TOKEN" \
    -w '%{http_code} %{time_starttransfer} %{time_total} %{size_download}\n' "$export_url" >>"$work/vms.txt"
  [ "${COLD:-0}" != 1 ] || drop_from_cache
  curl -s -w '%{http_code} %{time_total} %{size_download} %{num_connects}\n' "${nginx_args[@]}" \
    | awk '$1 != 200 {bad = 1} {t += $2; b += $3; c += $4} END {if (bad || c != 1) print "failed"; else print t, b}' >>"$work/nginx.txt"
  [ "${COLD:-0}" != 1 ] || drop_from_cache
  t0=$(date +%s%N)
  (cd "$storage" && cat "${files[@]}" >/dev/null)
  t1=$(date +%s%N)
  echo "$(( (t1 - t0) / 1000 ))e-6 $file_bytes" >>"$work/cat.txt"
done
if grep -qv '^200 ' "$work/vms.txt" || grep -q failed "$work/nginx.txt"; then
  echo "bench: a request failed:" >&2; cat "$work/vms.txt" "$work/nginx.txt" >&2; exit 1
fi

# --- figures ----------------------------------------------------------------------------
mbps() { awk '{printf "%.1f\n", $2 / $1 / 1e6}'; }
vms_ttfb=$(awk '{print $2 * 1000}' "$work/vms.txt" | median)
vms_mbps=$(awk '{print $3, $4}' "$work/vms.txt" | mbps | median)
vms_bytes=$(awk '{print $4}' "$work/vms.txt" | median)
ngx_mbps=$(mbps <"$work/nginx.txt" | median)
ngx_bytes=$(awk '{print $2}' "$work/nginx.txt" | median)
cat_mbps=$(mbps <"$work/cat.txt" | median)
ratio=$(awk -v a="$vms_mbps" -v b="$ngx_mbps" 'BEGIN {printf "%.3f", a / b}')
echo
echo "export of one hour (${#files[@]} segment files), $runs runs each, page cache $cache; medians:"
printf "%-34s %10s %12s %12s %16s\n" source ttfb_ms MB/s bytes "runs (MB/s)"
printf "%-34s %10.1f %12s %12s %16s\n" "vms-recorder GET export.mp4" "$vms_ttfb" "$vms_mbps" "$vms_bytes" \
  "$(awk '{print $3, $4}' "$work/vms.txt" | mbps | paste -sd' ')"
printf "%-34s %10s %12s %12s %16s\n" "nginx sendfile, keep-alive" - "$ngx_mbps" "$ngx_bytes" "$(mbps <"$work/nginx.txt" | paste -sd' ')"
printf "%-34s %10s %12s %12s %16s\n" "cat > /dev/null" - "$cat_mbps" "$file_bytes" "$(mbps <"$work/cat.txt" | paste -sd' ')"
echo "vms / nginx throughput: $ratio"
echo "TTFB per run (ms): $(awk '{printf "%.1f ", $2 * 1000}' "$work/vms.txt")"
echo "bars: TTFB <= 50 ms (median ${vms_ttfb} ms); throughput >= 0.9 x nginx (${ratio})"
