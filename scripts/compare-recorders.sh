#!/usr/bin/env bash
# Side-by-side comparison (issue 17 item 6): streambot, ffmpeg (-c copy) and streamlink record the
# same live stream at the same time, from real packagers on 127.0.0.1, while the origin misbehaves.
# Prints one table: finished files, media seconds, decode errors, lost segments and whether the
# recorder stopped early.
#
#   scripts/compare-recorders.sh [SCENARIO...]
#
# Scenarios (default: all):
#   clean          ffmpeg's HLS muxer (TS, 2 s segments, 10 in the playlist) behind nginx
#   outage         the same; nginx stops serving for 12 s in the middle (the window is 20 s)
#   restart        the packager restarts with the same settings (its numbering starts over)
#   new-encode     the packager restarts with another picture size (320x180 -> 480x270)
#   nginx-rtmp     ffmpeg pushes RTMP into nginx-rtmp; the encoder restarts in the middle
#   fmp4-restart   ffmpeg's HLS muxer in fMP4 mode restarts with another encode (new init, same URI)
#   fmp4-same      the same packager restarts with the same settings (the same init; numbering
#                  starts over): one file expected
#   fmp4-append    fMP4 with -hls_flags append_list restarts with another encode: the playlist goes
#                  on (a discontinuity tag, numbering continues), init.mp4 rewritten, no new MAP
#   aes-key        AES-128, the packager restarts with a new key behind the same key URI
#
# Needs: ffmpeg, ffprobe, nginx (+ libnginx-mod-rtmp for nginx-rtmp), python3; streamlink is
# installed into target/compare-recorders/venv from PyPI when missing. Builds streambot (release).
# Settings: STREAMBOT_BIN (a streambot binary to use instead of building one), COMPARE_SECONDS
# (recording length, default 50), COMPARE_RUNS (runs of each scenario, default 1; with more the
# table shows each figure's median and how many runs stopped early), COMPARE_SUMMARIZE_ONLY=1 (no
# recording: print the table of the runs already in COMPARE_OUTPUT), COMPARE_OUTPUT (default
# target/compare-recorders/<date>). Everything listens on 127.0.0.1 only; every child is stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "compare-recorders: $*" >&2; }

seconds="${COMPARE_SECONDS:-50}"
case "$seconds" in '' | *[!0-9]*) log "COMPARE_SECONDS must be a whole number"; exit 2 ;; esac
runs="${COMPARE_RUNS:-1}"
case "$runs" in '' | *[!0-9]* | 0) log "COMPARE_RUNS must be a whole number from 1"; exit 2 ;; esac
scenarios=("$@")
if [ "${#scenarios[@]}" -eq 0 ]; then
  scenarios=(clean outage restart new-encode nginx-rtmp fmp4-restart fmp4-same fmp4-append aes-key)
fi
for scenario in "${scenarios[@]}"; do
  case "$scenario" in
    clean | outage | restart | new-encode | nginx-rtmp | fmp4-restart | fmp4-same | fmp4-append | aes-key) ;;
    *) log "unknown scenario '$scenario'"; exit 2 ;;
  esac
done
for tool in ffmpeg ffprobe nginx python3; do
  command -v "$tool" >/dev/null 2>&1 || { log "$tool is missing (apt-get install -y $tool)"; exit 1; }
done

output="${COMPARE_OUTPUT:-target/compare-recorders/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$output"
output="$(cd "$output" && pwd)"

summarize_only="${COMPARE_SUMMARIZE_ONLY:-}"
venv="target/compare-recorders/venv"
if [ -n "$summarize_only" ]; then
  streamlink_bin=streamlink
elif command -v streamlink >/dev/null 2>&1; then
  streamlink_bin="$(command -v streamlink)"
else
  if [ ! -x "$venv/bin/streamlink" ]; then
    log "installing streamlink into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet streamlink
  fi
  streamlink_bin="$(pwd)/$venv/bin/streamlink"
fi

if [ -n "$summarize_only" ]; then
  streambot_bin=streambot
elif [ -n "${STREAMBOT_BIN:-}" ]; then
  streambot_bin="$STREAMBOT_BIN"
else
  log "building streambot (release)"
  cargo build --release --quiet -p streambot
  streambot_bin="$(pwd)/target/release/streambot"
fi

children=()
cleanup() {
  for pid in "${children[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${children[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_group VARIABLE COMMAND...: runs COMMAND in its own process group; its pid in VARIABLE.
start_group() {
  local variable="$1"
  shift
  setsid "$@" </dev/null >/dev/null 2>&1 &
  local pid=$!
  children+=("$pid")
  printf -v "$variable" '%s' "$pid"
}

# crash_group PID: SIGKILL to the group (an encoder that crashes: ffmpeg's HLS muxer stopped by
# SIGTERM writes #EXT-X-ENDLIST, which ends every recorder; a crash does not).
crash_group() {
  kill -KILL -- "-$1" 2>/dev/null || true
}

stop_group() {
  kill -TERM -- "-$1" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null || true
}

write_nginx_config() { # DIRECTORY HTTP_PORT [RTMP_PORT]
  local directory="$1" http_port="$2" rtmp_port="${3:-}" rtmp_block="" load=""
  mkdir -p "$directory/www/hls" "$directory/logs"
  if [ -n "$rtmp_port" ]; then
    load="load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;"
    rtmp_block="rtmp { server { listen 127.0.0.1:$rtmp_port; application live { live on; hls on;
      hls_path $directory/www/hls; hls_fragment 2s; hls_playlist_length 20s; hls_cleanup off; } } }"
  fi
  cat >"$directory/nginx.conf" <<EOF
$load
daemon off; master_process off; worker_processes 1;
error_log $directory/logs/error.log warn; pid $directory/nginx.pid;
events { worker_connections 512; }
$rtmp_block
http { access_log off; client_body_temp_path $directory/body; proxy_temp_path $directory/proxy;
  fastcgi_temp_path $directory/fastcgi; uwsgi_temp_path $directory/uwsgi; scgi_temp_path $directory/scgi;
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; video/mp4 mp4 m4s; }
  server { listen 127.0.0.1:$http_port; location / { root $directory/www; add_header Cache-Control no-cache; } } }
EOF
}

start_nginx() { # VARIABLE DIRECTORY PORT
  start_group "$1" nginx -c "$2/nginx.conf" -p "$2"
  for _ in $(seq 1 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$3),0.2)" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "nginx did not start: $(cat "$2/logs/error.log" 2>/dev/null)"
  exit 1
}

source_args() { # SIZE
  echo "-nostdin -loglevel error -re -f lavfi -i testsrc2=size=$1:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 -c:v libx264 -preset ultrafast -tune zerolatency -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 -c:a aac -b:a 64k"
}

start_packager() { # VARIABLE WWW SIZE MODE RUN [URL_BASE]
  local variable="$1" www="$2" size="$3" mode="$4" run="$5" url_base="${6:-}"
  local -a extra
  case "$mode" in
    fmp4 | fmp4-append)
      extra=(-hls_segment_type fmp4 -hls_fmp4_init_filename init.mp4 -hls_segment_filename "run$run-%d.m4s")
      if [ "$mode" = fmp4-append ]; then extra+=(-hls_flags append_list); fi ;;
    aes)
      # A new key for each run, behind the same URI.
      head -c 16 /dev/urandom >"$www/key.key"
      printf '%s\n%s\n' "$url_base/key.key" "$www/key.key" >"$www/key-info.txt"
      extra=(-hls_key_info_file key-info.txt -hls_segment_filename "run$run-%d.ts") ;;
    *) extra=(-hls_segment_filename "run$run-%d.ts") ;;
  esac
  # shellcheck disable=SC2046
  start_group "$variable" env -C "$www" ffmpeg $(source_args "$size") -f hls -hls_time 2 -hls_list_size 10 "${extra[@]}" live.m3u8
}

wait_for_playlist() { # FILE
  for _ in $(seq 1 300); do
    if [ -f "$1" ] && [ "$(grep -vc '^#' "$1" || true)" -ge 3 ]; then return 0; fi
    sleep 0.1
  done
  log "no playlist at $1"
  exit 1
}

# Records the three side by side; the scenario's fault runs in the foreground meanwhile.
start_recorders() { # URL DIRECTORY
  local url="$1" directory="$2"
  mkdir -p "$directory/streambot" "$directory/ffmpeg" "$directory/streamlink"
  date +%s.%N >"$directory/started"
  ( start=$(date +%s.%N); "$streambot_bin" record "$url" --allow-private-networks --for "${seconds}s" \
      -o "$directory/streambot" >"$directory/streambot.log" 2>&1 || true; end=$(date +%s.%N)
    echo "$start $end" >"$directory/streambot.time" ) &
  recorder_pids=($!)
  ( start=$(date +%s.%N); timeout -k 10 $((seconds + 60)) ffmpeg -nostdin -loglevel warning -i "$url" -c copy \
      -t "$seconds" -f mpegts "$directory/ffmpeg/out.ts" >"$directory/ffmpeg.log" 2>&1 || true
    end=$(date +%s.%N); echo "$start $end" >"$directory/ffmpeg.time" ) &
  recorder_pids+=($!)
  ( start=$(date +%s.%N); timeout -k 10 $((seconds + 60)) "$streamlink_bin" --hls-duration "$seconds" \
      -o "$directory/streamlink/out.ts" "hls://$url" best >"$directory/streamlink.log" 2>&1 || true
    end=$(date +%s.%N); echo "$start $end" >"$directory/streamlink.time" ) &
  recorder_pids+=($!)
}

run_scenario() { # SCENARIO RUN
  local scenario="$1" directory="$output/$1/run$2"
  local origin="$directory/origin" http_port rtmp_port="" nginx_pid packager_pid url
  mkdir -p "$directory"
  http_port="$(free_port)"
  if [ "$scenario" = nginx-rtmp ]; then rtmp_port="$(free_port)"; fi
  write_nginx_config "$origin" "$http_port" "$rtmp_port"
  start_nginx nginx_pid "$origin" "$http_port"
  local size=320x180 mode=ts
  case "$scenario" in
    fmp4-restart | fmp4-same) mode=fmp4 ;;
    fmp4-append) mode=fmp4-append ;;
    aes-key) mode=aes ;;
  esac
  if [ "$scenario" = nginx-rtmp ]; then
    # shellcheck disable=SC2046
    start_group packager_pid ffmpeg $(source_args "$size") -f flv "rtmp://127.0.0.1:$rtmp_port/live/stream"
    url="http://127.0.0.1:$http_port/hls/stream.m3u8"
    wait_for_playlist "$origin/www/hls/stream.m3u8"
  else
    start_packager packager_pid "$origin/www" "$size" "$mode" 1 "http://127.0.0.1:$http_port"
    url="http://127.0.0.1:$http_port/live.m3u8"
    wait_for_playlist "$origin/www/live.m3u8"
  fi
  log "$scenario: recording $seconds s with streambot, ffmpeg and streamlink from $url"
  start_recorders "$url" "$directory"
  sleep 15
  case "$scenario" in
    outage) stop_group "$nginx_pid"; sleep 12; start_nginx nginx_pid "$origin" "$http_port" ;;
    restart) crash_group "$packager_pid"; sleep 2; start_packager packager_pid "$origin/www" "$size" ts 2 ;;
    new-encode) crash_group "$packager_pid"; sleep 2; start_packager packager_pid "$origin/www" 480x270 ts 2 ;;
    fmp4-restart) crash_group "$packager_pid"; sleep 2; start_packager packager_pid "$origin/www" 480x270 fmp4 2 ;;
    fmp4-same) crash_group "$packager_pid"; sleep 2; start_packager packager_pid "$origin/www" "$size" fmp4 2 ;;
    fmp4-append) crash_group "$packager_pid"; sleep 2; start_packager packager_pid "$origin/www" 480x270 fmp4-append 2 ;;
    aes-key)
      crash_group "$packager_pid"; sleep 2
      start_packager packager_pid "$origin/www" "$size" aes 2 "http://127.0.0.1:$http_port" ;;
    nginx-rtmp)
      stop_group "$packager_pid"; sleep 2
      # shellcheck disable=SC2046
      start_group packager_pid ffmpeg $(source_args "$size") -f flv "rtmp://127.0.0.1:$rtmp_port/live/stream" ;;
    clean) ;;
  esac
  wait "${recorder_pids[@]}" || true
  stop_group "$packager_pid"
  stop_group "$nginx_pid"
  rm -rf "$origin/www"
}

for run in $(seq 1 "$runs"); do
  [ -z "$summarize_only" ] || break
  for scenario in "${scenarios[@]}"; do run_scenario "$scenario" "$run"; done
done

python3 - "$output" "$seconds" "$runs" "${scenarios[@]}" <<'EOF'
import json, os, statistics, subprocess, sys
output, seconds, runs, scenarios = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
def media_files(directory):
    found = []
    for root, _, names in os.walk(directory):
        for name in names:
            if name.endswith((".mp4", ".ts", ".mkv")) and "part" not in name.split("-")[0]:
                found.append(os.path.join(root, name))
    return sorted(found)
def duration(path):
    result = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                             "default=noprint_wrappers=1:nokey=1", path], capture_output=True, text=True)
    try: return float(result.stdout.strip())
    except ValueError: return 0.0
def decode_errors(path):
    result = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-"],
                            capture_output=True, text=True)
    return len([line for line in result.stderr.splitlines() if line.strip()])
def measure(scenario, run, recorder):
    base = os.path.join(output, scenario, f"run{run}")
    directory = os.path.join(base, recorder)
    files = media_files(directory)
    if recorder == "streambot":
        # streambot's finished files are recording-NNNN.mp4; its parts are removed after finalize.
        files = [f for f in files if os.path.basename(f).startswith("recording-")] or files
    media = sum(duration(f) for f in files)
    errors = sum(decode_errors(f) for f in files)
    try:
        start, end = map(float, open(os.path.join(base, recorder + ".time")).read().split())
    except (OSError, ValueError):
        start, end = 0.0, 0.0
    ledger = os.path.join(directory, "main-ledger.jsonl")
    if recorder == "streambot" and os.path.exists(ledger):
        lost, exact = 0, True
        for line in open(ledger):
            try: entry = json.loads(line)
            except ValueError: continue
            if entry.get("state") == "gap":
                lost += 1 + max(0, (entry.get("range_last_media_sequence") or entry["media_sequence"]) - entry["media_sequence"])
    else:
        lost, exact = max(0.0, seconds - media) / 2, False
    # Stopped early: exited before the requested span was covered (a recorder that starts at the
    # live edge may finish a few seconds sooner than the span with all of it recorded).
    return {"files": len(files), "media": media, "errors": errors, "lost": lost, "exact": exact,
            "early": end - start < seconds - 5 and media < seconds - 2, "wall": end - start}
header = ("scenario", "recorder", "files", "media s", "decode errors", "lost segments", "stopped early", "wall s")
rows, run_rows = [], []
for scenario in scenarios:
    for recorder in ("streambot", "ffmpeg", "streamlink"):
        measured = [measure(scenario, run, recorder) for run in range(1, runs + 1)]
        for run, m in enumerate(measured, 1):
            run_rows.append((scenario, run, recorder, m["files"], f"{m['media']:.1f}", m["errors"],
                             f"{m['lost']:.0f}", "yes" if m["early"] else "no", f"{m['wall']:.0f}"))
        def median(key):
            return statistics.median(m[key] for m in measured)
        lost = f"{median('lost'):.0f} (ledger)" if all(m["exact"] for m in measured) else f"~{median('lost'):.0f} (est.)"
        early = sum(m["early"] for m in measured)
        early_text = ("yes" if early else "no") if runs == 1 else f"{early}/{runs}"
        rows.append((scenario, recorder, f"{median('files'):g}", f"{median('media'):.1f}",
                     f"{median('errors'):g}", lost, early_text, f"{median('wall'):.0f}"))
if runs > 1:
    print(f"medians of {runs} runs; 'stopped early' counts the runs that did")
widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
for row in [header] + rows:
    print("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)))
with open(os.path.join(output, "table.txt"), "w") as handle:
    for row in [header] + rows:
        handle.write("\t".join(map(str, row)) + "\n")
with open(os.path.join(output, "runs.txt"), "w") as handle:
    handle.write("\t".join(("scenario", "run") + header[1:]) + "\n")
    for row in run_rows:
        handle.write("\t".join(map(str, row)) + "\n")
EOF
log "results in $output"
