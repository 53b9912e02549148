#!/usr/bin/env bash
# Recording benchmark (issue 3). For each N, records N simulated cameras (H.264, 640x360,
# 1 Mbit/s, 15 fps, RTP over TCP) for a measured window, first with vms-recorder and then,
# one after the other in the same run, with one `ffmpeg -c copy -f segment` process per
# stream (the way most open-source NVRs record). Prints CPU-seconds per stream-hour, RSS,
# frames lost and write lag; RSS per stream is the slope between the N values.
# Bars: our CPU <= 0.4x ffmpeg's; RSS <= 0.5 MiB per stream; zero frames lost at N = 200.
#
# Usage: tests/bench/recorder.sh [SECONDS=60] [N...=50 100 200]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}; shift || true
counts=("${@:-50 100 200}"); counts=(${counts[*]})
[ ${#counts[@]} -gt 0 ] || counts=(50 100 200)

bash deploy/setup.sh
cargo build --locked --release -q --bins
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "ffmpeg -nostdin -rtsp_transport tcp -i rtsp://127.0.0.1" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
hz=$(getconf CLK_TCK)

. tests/bench/lib.sh
metric_sum() { curl -s -H "Authorization: Bearer bench-admin-token-000" "http://$1/metrics" | awk -v m="$2" '$1 ~ "^"m"\\{" {s += $2} END {printf "%.0f", s}'; }
metric_max() { curl -s -H "Authorization: Bearer bench-admin-token-000" "http://$1/metrics" | awk -v m="$2" '$1 ~ "^"m"\\{" && $2 > x {x = $2} END {printf "%.4f", x}'; }

declare -A our_rss ffm_rss
printf "%-5s %-10s %12s %12s %12s %10s %10s\n" N recorder "cpu_s/str_h" "rss_MiB" "lost_frames" "lag_max_s" "cpu_ratio"
for n in "${counts[@]}"; do
  start_camsim "$n" "$work" b
  sim=$SIM_PID; rtsp=$SIM_RTSP

  # --- vms-recorder -------------------------------------------------------------------
  rm -rf "$work/rec"; mkdir -p "$work/rec/storage"
  { echo "listen = \"127.0.0.1:0\""; echo "data_dir = \"$work/rec/data\""; echo 'admin_token = "bench-admin-token-000"'
    echo 'conformance_probe_secs = 0  # measure recording alone, not onboarding checks'
    echo "[[storage]]"; echo "path = \"$work/rec/storage\""
    for i in $(seq -f "%04g" 1 "$n"); do
      printf '[[camera]]\nname = "b-%s"\nregion = "751110000"\nclass = "city"\n[[camera.streams]]\nname = "main"\nurl = "rtsp://%s/b-%s/main"\n' "$i" "$rtsp" "$i"
    done; } >"$work/rec/recorder.toml"
  rm -f "$work/rec.ready"
  VMS_LOG=warn,vms_recorder::supervisor=info target/release/vms-recorder run --config "$work/rec/recorder.toml" \
    >"$work/rec.ready" 2>"$work/rec.log" &
  rec=$!; wait_ready "$work/rec.ready" $rec
  api=$(sed -E 's/.*"api":"([^"]+)".*/\1/' "$work/rec.ready")
  # Measure once every stream is up (at most 120 s), plus a GOP.
  for _ in $(seq 600); do [ "$(metric_sum "$api" vms_stream_up)" = "$n" ] && break; sleep 0.2; done
  sleep 2
  c0=$(cpu_ticks $rec)
  sleep "$secs"
  c1=$(cpu_ticks $rec)
  lag=$(metric_max "$api" vms_stream_write_lag_seconds); rss=$(rss_kib $rec)
  stop_us=$(date +%s%6N)
  kill -TERM $rec; wait $rec || true
  # Frames lost, exactly: what the simulator sent to the recorder (its only client) against
  # what the recorder made durable or skipped before its first keyframe, over the session
  # (frames sent after the stop signal do not count).
  sent=0
  for i in $(seq -f "%04g" 1 "$n"); do
    record=$(curl -sf --retry 3 "http://$SIM_CONTROL/api/v1/cameras/b-$i/streams/main/frames") \
      || { echo "bench: the simulator's frame record of b-$i is unavailable" >&2; exit 1; }
    sent=$((sent + $(grep -o '"sent_unix_us":[0-9]*' <<<"$record" \
      | awk -F: -v t="$stop_us" '$2 < t {c++} END {print c + 0}')))
  done
  stored=$(awk '/stream stopped/ {for (i = 1; i <= NF; i++) if ($i ~ /^frames_(total|skipped)=/) {split($i, kv, "="); s += kv[2]}} END {print s + 0}' \
    <(sed 's/\x1b\[[0-9;]*m//g' "$work/rec.log"))
  lost=$((sent > stored ? sent - stored : 0))
  our_cpu=$(awk -v t=$((c1 - c0)) -v hz=$hz -v n=$n -v s=$secs 'BEGIN {printf "%.2f", t / hz / n / s * 3600}')
  our_rss[$n]=$rss

  # --- ffmpeg -c copy -f segment, one process per stream ------------------------------
  mkdir -p "$work/ffmpeg"; pids=()
  for i in $(seq -f "%04g" 1 "$n"); do
    ffmpeg -nostdin -rtsp_transport tcp -i "rtsp://$rtsp/b-$i/main" -c copy -f segment -segment_time 60 \
      -reset_timestamps 1 -loglevel error "$work/ffmpeg/b-$i-%03d.mp4" 2>>"$work/ffmpeg.log" &
    pids+=($!)
  done
  sleep 7
  fc0=$(cpu_ticks "${pids[@]}"); sleep "$secs"; fc1=$(cpu_ticks "${pids[@]}")
  frss=$(rss_kib "${pids[@]}")
  alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
  [ "$alive" -eq "$n" ] || echo "bench: only $alive of $n ffmpeg processes were still recording" >&2
  kill -INT "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true
  rm -rf "$work/ffmpeg"
  ffm_cpu=$(awk -v t=$((fc1 - fc0)) -v hz=$hz -v n=$n -v s=$secs 'BEGIN {printf "%.2f", t / hz / n / s * 3600}')
  ffm_rss[$n]=$frss
  ratio=$(awk -v a=$our_cpu -v b=$ffm_cpu 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')
  printf "%-5s %-10s %12s %12.1f %12s %10s %10s\n" "$n" vms "$our_cpu" "$(awk -v r=$rss 'BEGIN {print r/1024}')" "$lost" "$lag" "$ratio"
  printf "%-5s %-10s %12s %12.1f %12s %10s\n" "$n" ffmpeg "$ffm_cpu" "$(awk -v r=$frss 'BEGIN {print r/1024}')" "-" "-"
  kill -TERM $sim; wait $sim || true
done

first=${counts[0]}; last=${counts[-1]}
if [ "$first" != "$last" ]; then
  awk -v a=${our_rss[$first]} -v b=${our_rss[$last]} -v c=${ffm_rss[$first]} -v d=${ffm_rss[$last]} -v n1=$first -v n2=$last \
    'BEGIN {printf "RSS per stream (slope %s..%s): vms %.3f MiB, ffmpeg %.1f MiB\n", n1, n2, (b-a)/1024/(n2-n1), (d-c)/1024/(n2-n1)}'
fi
echo "bars: cpu_ratio <= 0.4; vms RSS slope <= 0.5 MiB/stream; 0 frames lost at N = 200"
echo "(cpu_s/str_h: CPU-seconds per stream-hour; 0.1 % of a core = 3.6)"
