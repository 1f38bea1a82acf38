#!/usr/bin/env bash
# Scale benchmark (issue 14 item 2): N simultaneous recordings in ONE `streambot worker`, against a
# real origin (nginx serving a live HLS folder that ffmpeg's hls muxer writes from a looping test
# clip, `-c copy`, 2 s segments, delete_segments), through Redis (a private redis-server this
# script starts) and through SQLite (the `run` wiring without the bot: `jobs add` + `worker`).
# At the first N it also runs the same number of bare `ffmpeg -i URL -c copy` recordings of the
# same stream (CPU ratio) and reads one ffmpeg's RSS.
#
#   scripts/bench-scale.sh [N...]            (default: 100 500 1000)
#
# Environment: BENCH_SECONDS (recording window per run after the last claim; default 120),
# BENCH_BACKENDS (default "redis sqlite"), BENCH_FFMPEG=0 skips the ffmpeg comparison,
# BENCH_OUTPUT (default target/bench-scale/<date>), STREAMBOT_BIN (default: a release build).
#
# Per run it prints: peak RSS above base per recording (the worker's VmHWM minus its VmRSS
# before the first job, / N), CPU seconds (user+sys of the worker) per recording-minute over the
# recording window, lost segments (sequence numbers nginx published inside each job's recorded
# window that its ledger has no committed segment for), median claim → first committed segment,
# store operations per second (Redis: commands processed; SQLite: the worker's writes counted
# from its data_version is not possible across processes, so the store's file growth is given).
# The recordings are deleted after each run; results go to $BENCH_OUTPUT/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
repository="$(pwd)"

log() { echo "bench-scale: $(date +%H:%M:%S) $*" >&2; }

counts=("$@")
if [ "${#counts[@]}" -eq 0 ]; then counts=(100 500 1000); fi
for count in "${counts[@]}"; do
  case "$count" in '' | *[!0-9]*) log "N must be a whole number, got '$count'"; exit 2 ;; esac
done
seconds="${BENCH_SECONDS:-120}"
backends="${BENCH_BACKENDS:-redis sqlite}"
output="${BENCH_OUTPUT:-target/bench-scale/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$output"
output="$(cd "$output" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/streambot-bench-scale.XXXXXX")"
# nginx's worker runs as another user when started as root: it must read the live folder.
chmod 755 "$work"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

for tool in nginx redis-server redis-cli ffmpeg python3; do
  command -v "$tool" >/dev/null 2>&1 || { log "missing $tool"; exit 1; }
done

if [ -z "${STREAMBOT_BIN:-}" ]; then
  log "building the release binary"
  cargo build --release --quiet -p streambot --bin streambot
  STREAMBOT_BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/streambot"
fi
# Copied so a rebuild in the checkout cannot change it mid-run.
cp "$STREAMBOT_BIN" "$work/streambot"
streambot="$work/streambot"

# --- process bookkeeping: everything started here is stopped by its pid ----------------------
started_pids=()
cleanup() {
  local pid
  for pid in "${started_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${started_pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# --- origin: ffmpeg's hls muxer into a folder, nginx serving it --------------------------------
clip="$work/clip.ts"
log "encoding the test clip (20 s, 426x240, ~300 kbit/s)"
ffmpeg -nostdin -loglevel error -f lavfi -i "testsrc2=size=426x240:rate=25" \
  -f lavfi -i "sine=frequency=440:sample_rate=44100" -t 20 \
  -c:v libx264 -preset ultrafast -b:v 250k -g 50 -keyint_min 50 -sc_threshold 0 \
  -c:a aac -b:a 48k -f mpegts "$clip"
live="$work/live"
mkdir -p "$live"
ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i "$clip" -c copy -f hls \
  -hls_time 2 -hls_list_size 10 -hls_flags delete_segments+omit_endlist \
  -hls_segment_filename "$live/seg%06d.ts" "$live/live.m3u8" &
started_pids+=($!)
# Which segments the folder published: sampled every second from the playlist.
: >"$output/published.txt"
while true; do
  grep -o 'seg[0-9]*\.ts' "$live/live.m3u8" >>"$output/published.txt" 2>/dev/null || true
  sleep 1
done &
started_pids+=($!)
origin_port="$(free_port)"
mkdir -p "$work/nginx/logs" "$work/nginx/tmp"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp;
  proxy_temp_path $work/nginx/tmp;
  fastcgi_temp_path $work/nginx/tmp;
  uwsgi_temp_path $work/nginx/tmp;
  scgi_temp_path $work/nginx/tmp;
  keepalive_requests 100000;
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
  server {
    listen 127.0.0.1:$origin_port;
    root $live;
    location ~ \.m3u8\$ { add_header Cache-Control no-cache; }
  }
}
EOF
worker_rlimit=$(ulimit -Hn)
sed -i "1i worker_rlimit_nofile $worker_rlimit;" "$work/nginx/nginx.conf"
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
started_pids+=($!)
url="http://127.0.0.1:$origin_port/live.m3u8"
for _ in $(seq 1 100); do
  if curl -fsS "$url" 2>/dev/null | grep -q 'seg'; then break; fi
  sleep 0.2
done
curl -fsS "$url" | grep -q seg || { log "the origin did not come up"; exit 1; }
log "origin at $url"

# --- measurements ------------------------------------------------------------------------------
# user+sys CPU seconds of a pid (and its waited-for children).
cpu_seconds() {
  awk -v ticks="$(getconf CLK_TCK)" '{ print ($14 + $15 + $16 + $17) / ticks }' "/proc/$1/stat"
}
status_kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }

redis_port=""
start_redis() {
  redis_port="$(free_port)"
  mkdir -p "$work/redis"
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --dir "$work/redis" --daemonize no --loglevel warning >"$work/redis/log" 2>&1 &
  started_pids+=($!)
  for _ in $(seq 1 50); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "redis-server did not start"; exit 1
}

redis_commands() {
  redis-cli -p "$redis_port" info stats | awk -F: '/^total_commands_processed/ { gsub("\r", "", $2); print $2 }'
}

# One run: N jobs through one worker on one backend.
run_streambot() {
  local backend="$1" count="$2"
  local run="$work/run-$backend-$count"
  rm -rf "$run"
  mkdir -p "$run/data" "$run/recordings"
  local environment=(
    "DATA_DIR=$run/data" "LOCAL_STORAGE_PATH=$run/recordings" "ALLOW_PRIVATE_NETWORKS=true"
    "WORKER_CONCURRENCY=${BENCH_WORKER_CONCURRENCY:-auto}" "WORKER_ID=bench" "RUST_LOG=warn" "STORAGE_BACKEND=local"
    "FILE_RETENTION_HOURS=0"
  )
  if [ "$backend" = redis ]; then
    environment+=("REDIS_URL=redis://127.0.0.1:$redis_port/0" "REDIS_KEY_PREFIX=bench$count:")
  fi
  env "${environment[@]}" "$streambot" worker >"$run/worker.log" 2>&1 &
  local worker=$!
  started_pids+=("$worker")
  sleep 3
  local base_kib
  base_kib="$(status_kib "$worker" VmRSS)"
  local commands_before=0
  [ "$backend" = redis ] && commands_before="$(redis_commands)"
  local cpu_before add_started
  cpu_before="$(cpu_seconds "$worker")"
  add_started=$(date +%s.%N)
  log "$backend N=$count: adding $count jobs (worker base RSS ${base_kib} KiB)"
  seq 1 "$count" | xargs -P 4 -I{} env "${environment[@]}" "$streambot" jobs add "$url" \
    --user {} --for 30m >/dev/null 2>>"$run/add.log"
  local added
  added=$(date +%s.%N)
  log "$backend N=$count: added in $(echo "$added - $add_started" | bc) s; recording ${seconds} s"
  # Wait until every job has been claimed (or 60 s), then the recording window.
  sleep "$seconds"
  local cpu_after commands_after=0 peak_kib rss_kib window_end
  cpu_after="$(cpu_seconds "$worker")"
  window_end=$(date +%s.%N)
  peak_kib="$(status_kib "$worker" VmHWM)"
  rss_kib="$(status_kib "$worker" VmRSS)"
  [ "$backend" = redis ] && commands_after="$(redis_commands)"
  local descriptors
  descriptors="$(ls "/proc/$worker/fd" | wc -l)"
  env "${environment[@]}" "$streambot" jobs list --json --limit "$((count + 10))" >"$run/jobs.jsonl" 2>/dev/null || true
  kill -TERM "$worker" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$worker" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$worker" 2>/dev/null || true
  wait "$worker" 2>/dev/null || true
  python3 "$repository/scripts/bench_scale_report.py" \
    --backend "$backend" --count "$count" --recordings "$run/recordings" \
    --jobs "$run/jobs.jsonl" --published "$output/published.txt" \
    --base-kib "$base_kib" --peak-kib "$peak_kib" --rss-kib "$rss_kib" \
    --cpu "$(echo "$cpu_after - $cpu_before" | bc)" \
    --window "$(echo "$window_end - $add_started" | bc)" \
    --store-operations "$((commands_after - commands_before))" \
    --descriptors "$descriptors" \
    --sqlite "$run/data/streambot.db" | tee -a "$output/results.jsonl"
  grep -c -i 'error\|panick' "$run/worker.log" >"$output/$backend-$count-errors.txt" || true
  tail -n 20 "$run/worker.log" >"$output/$backend-$count-worker-tail.log" || true
  tail -n 20 "$run/add.log" >"$output/$backend-$count-add-tail.log" 2>/dev/null || true
  (cd "$run/recordings" && find . -maxdepth 3 | head -n 30) >"$output/$backend-$count-files.txt" || true
  find "$run/recordings" -name main-ledger.jsonl -print -quit | xargs -r head -n 3 >"$output/$backend-$count-ledger-head.txt" || true
  rm -rf "$run"
}

# N bare ffmpeg recordings of the same stream, the same window.
run_ffmpeg() {
  local count="$1"
  local run="$work/run-ffmpeg-$count"
  mkdir -p "$run"
  local pids=()
  for index in $(seq 1 "$count"); do
    ffmpeg -nostdin -loglevel error -i "$url" -c copy -f mpegts "$run/$index.ts" &
    pids+=($!)
    started_pids+=($!)
  done
  sleep 5
  local cpu_before=0 cpu_after=0 pid one_rss
  for pid in "${pids[@]}"; do cpu_before=$(echo "$cpu_before + $(cpu_seconds "$pid")" | bc); done
  sleep "$((seconds - 5))"
  for pid in "${pids[@]}"; do cpu_after=$(echo "$cpu_after + $(cpu_seconds "$pid")" | bc); done
  one_rss="$(status_kib "${pids[0]}" VmHWM)"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  python3 - "$count" "$(echo "$cpu_after - $cpu_before" | bc)" "$((seconds - 5))" "$one_rss" <<'EOF' | tee -a "$output/results.jsonl"
import json, sys
count, cpu, window, rss = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(json.dumps({"backend": "ffmpeg -c copy", "count": count,
                  "cpu_seconds_per_recording_minute": round(cpu / (count * window / 60), 4),
                  "one_ffmpeg_peak_rss_mib": round(rss / 1024, 1)}))
EOF
  rm -rf "$run"
}

for backend in $backends; do [ "$backend" = redis ] && start_redis; done
first=1
for count in "${counts[@]}"; do
  for backend in $backends; do
    run_streambot "$backend" "$count"
  done
  if [ "$first" = 1 ] && [ "${BENCH_FFMPEG:-1}" = 1 ]; then
    log "ffmpeg N=$count"
    run_ffmpeg "$count"
  fi
  first=0
done
log "results: $output/results.jsonl"
