#!/usr/bin/env bash
# Finalize benchmark (issue 3 item 9): the remux that `finalize` does to a 1-hour ~3 Mbps TS part
# (h264 + AAC) against a plain copy of the same bytes, in the same run.
#
#   scripts/bench-finalize.sh [--prepare-only]
#
# 1. Makes the input once, cached as $BENCH_CACHE/part-1h-3mbps.ts (default cache
#    ${TMPDIR:-/tmp}/streambot-bench): 60 s of testsrc2 720p25 + sine encoded with libx264
#    ultrafast at 2900k (GOP 50) + AAC 128k, then 60 copies joined with the concat demuxer
#    (`-c copy`, continuous timestamps) into one TS; checked with ffprobe (duration ≈ 3600 s,
#    bitrate ≈ 3 Mbps). Encoding an hour of video is never needed.
# 2. Builds and runs `crates/ffmpeg/examples/bench_finalize.rs` on it (--runs $BENCH_RUNS, default
#    3): copy+fsync, remux with faststart, remux without faststart, order alternated run by run.
#
# Temp outputs (beside the input) are removed by the example and again here on exit; the cached
# input is kept (delete $BENCH_CACHE to rebuild it). Needs ~5 GB free where the cache lives.
# Every ffmpeg run is bounded by `timeout`; the example bounds its own runs (1 h each).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "bench-finalize: $*" >&2; }

prepare_only=0
case "${1:-}" in
  '') ;;
  --prepare-only) prepare_only=1 ;;
  *) log "usage: scripts/bench-finalize.sh [--prepare-only]"; exit 2 ;;
esac
runs="${BENCH_RUNS:-3}"
case "$runs" in
  '' | *[!0-9]* | 0) log "BENCH_RUNS must be a whole number >= 1, got '$runs'"; exit 2 ;;
esac

cache="${BENCH_CACHE:-${TMPDIR:-/tmp}/streambot-bench}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"
input="$cache/part-1h-3mbps.ts"
piece="$cache/piece-60s.ts"
list="$cache/concat-60.txt"

for tool in ffmpeg ffprobe cargo timeout; do
  if ! command -v "$tool" >/dev/null 2>&1; then log "missing $tool"; exit 1; fi
done

# --- free space: input (~1.45 GB) + copy + mp4 (+ its .partial while faststart rewrites) ------
need_kb=$((5 * 1024 * 1024))
if [ -s "$input" ]; then need_kb=$((need_kb - $(du -k "$input" | cut -f1))); fi
free_kb="$(df -Pk "$cache" | awk 'NR == 2 { print $4 }')"
if [ "$free_kb" -lt "$need_kb" ]; then
  log "not enough free space in $cache: $((free_kb / 1024)) MB free, need $((need_kb / 1024)) MB" \
    "(set BENCH_CACHE or TMPDIR to a file system with ~5 GB free)"
  exit 1
fi

cleanup() {
  rm -f "$cache"/*.bench-copy "$cache"/*.bench-*.mp4 "$cache"/*.bench-*.mp4.partial \
    "$cache"/*.tmp "$list"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# check_input FILE: duration 3590..3610 s and bitrate 2.7..3.4 Mbps, or fail.
check_input() {
  local duration bit_rate size
  IFS=, read -r duration size bit_rate < <(ffprobe -v error -show_entries \
    format=duration,size,bit_rate -of csv=p=0 "$1")
  log "$(basename "$1"): duration ${duration} s, $((size / 1000000)) MB, $((bit_rate / 1000)) kbit/s"
  awk -v d="$duration" -v b="$bit_rate" \
    'BEGIN { exit !(d >= 3590 && d <= 3610 && b >= 2700000 && b <= 3400000) }'
}

# --- the input, made once ----------------------------------------------------------------------
if [ -s "$input" ] && check_input "$input"; then
  log "using cached input $input"
else
  rm -f "$input"
  log "encoding 60 s of 720p25 testsrc2 + sine (libx264 ultrafast 2900k, AAC 128k)"
  timeout -k 10 900 ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i testsrc2=size=1280x720:rate=25 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -t 60 -map 0:v -map 1:a \
    -c:v libx264 -preset ultrafast -b:v 2900k -maxrate 2900k -bufsize 6M -g 50 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -f mpegts "$piece.tmp"
  mv "$piece.tmp" "$piece"
  : >"$list"
  for _ in $(seq 60); do printf "file '%s'\n" "$piece" >>"$list"; done
  log "joining 60 copies with the concat demuxer (-c copy)"
  timeout -k 10 1800 ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f concat -safe 0 -i "$list" -map 0 -c copy -f mpegts "$input.tmp"
  rm -f "$piece" "$list"
  if ! check_input "$input.tmp"; then
    log "the joined input is not ~3600 s at ~3 Mbps; see above"
    rm -f "$input.tmp"
    exit 1
  fi
  mv "$input.tmp" "$input"
fi
if [ "$prepare_only" = 1 ]; then exit 0; fi

# --- build and run -----------------------------------------------------------------------------
log "building the bench_finalize example (release)"
cargo build --release --quiet -p streambot-ffmpeg --example bench_finalize
target_directory="$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
log "running $runs runs on $input"
"$target_directory/release/examples/bench_finalize" --input "$input" --runs "$runs"
