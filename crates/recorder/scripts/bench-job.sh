#!/usr/bin/env bash
# Whole job against ffmpeg (issue 18 item 4): CPU of recording a 45 s 3 Mbps HLS stream with the
# recorder (`record_many --count 1`) plus the in-process remux of the recorded part
# (`native_remux --seconds 45`, what finalize runs), against `ffmpeg -c copy` of the same playlist
# straight to mp4; BENCH_RUNS (15) runs each, alternating, medians. CPU = user + sys of each
# process from /usr/bin/time (10 ms ticks; process starts included on both sides).
#
#   bash crates/recorder/scripts/bench-job.sh
#
# The stream is the 45 s part of scripts/bench-finalize.sh (made there first if missing), cut
# into 2 s segments as a VOD playlist and served on 127.0.0.1 by `python3 -m http.server`, so both
# sides download it as fast as they can (a live recording also waits for each segment; the CPU
# per byte is the same). Needs ffmpeg, python3, /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/../../.."
runs="${BENCH_RUNS:-15}"
cache="${BENCH_CACHE:-${TMPDIR:-/tmp}/streambot-bench}"
part="$cache/part-45s-3mbps.ts"
[ -s "$part" ] || scripts/bench-finalize.sh --prepare-only
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/hls"
timeout 120 ffmpeg -nostdin -hide_banner -loglevel error -y -f mpegts -i "$part" -c copy -f hls \
  -hls_time 2 -hls_list_size 0 -hls_playlist_type vod "$work/hls/index.m3u8"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
(cd "$work/hls" && exec python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1) &
server_pid=$!
sleep 1
cargo build --release --quiet -p streambot-recorder --example record_many
cargo build --release --quiet -p streambot-mp4remux --example native_remux
target_directory="$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
record="$target_directory/release/examples/record_many"
remux="$target_directory/release/examples/native_remux"
url="http://127.0.0.1:$port/index.m3u8"
cpu() { /usr/bin/time -f "%U %S" "$@" 2>&1 >/dev/null | tail -1 | awk '{ print $1 + $2 }'; }
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$work/rows"
for run in $(seq "$runs"); do
  if [ $((run % 2)) = 1 ]; then
    rm -rf "$work/rec"
    recorded="$(cpu timeout 120 "$record" --count 1 --url "$url" --output "$work/rec")"
    remuxed="$(cpu timeout 120 "$remux" --seconds 45 "$work/rec/rec-0/main-0001.ts" "$work/rec/out.mp4")"
    ffmpeg_cpu="$(cpu timeout 120 ffmpeg -nostdin -hide_banner -loglevel error -y \
      -protocol_whitelist http,tcp -i "$url" -map 0:v -map 0:a -c copy -bsf:a aac_adtstoasc \
      -f mp4 "$work/ffmpeg.mp4")"
  else
    ffmpeg_cpu="$(cpu timeout 120 ffmpeg -nostdin -hide_banner -loglevel error -y \
      -protocol_whitelist http,tcp -i "$url" -map 0:v -map 0:a -c copy -bsf:a aac_adtstoasc \
      -f mp4 "$work/ffmpeg.mp4")"
    rm -rf "$work/rec"
    recorded="$(cpu timeout 120 "$record" --count 1 --url "$url" --output "$work/rec")"
    remuxed="$(cpu timeout 120 "$remux" --seconds 45 "$work/rec/rec-0/main-0001.ts" "$work/rec/out.mp4")"
  fi
  echo "run $run: record $recorded s, remux $remuxed s, ffmpeg -c copy to mp4 $ffmpeg_cpu s"
  echo "$recorded $remuxed $ffmpeg_cpu" >>"$work/rows"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/rows" <<'PYTHON'
import statistics, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1])]
record = statistics.median(row[0] for row in rows)
remux = statistics.median(row[1] for row in rows)
job = statistics.median(row[0] + row[1] for row in rows)
ffmpeg = statistics.median(row[2] for row in rows)
print(f"medians of {len(rows)}: record {record:.3f} s + remux {remux:.3f} s = job {job:.3f} s; "
      f"ffmpeg -c copy to mp4 {ffmpeg:.3f} s; job / ffmpeg = {job / ffmpeg:.2f} (target <= 0.5)")
PYTHON
