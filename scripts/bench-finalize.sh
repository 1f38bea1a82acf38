#!/usr/bin/env bash
# Finalize benchmark (issues 3 and 18): `finalize` of a 1-hour ~3 Mbps TS part (h264 + AAC)
# against a plain copy + fsync of the same bytes, and its CPU per 45-second part, in the same
# invocation; the seed's four-process finalize and a fragmented-mp4 pass beside them.
#
#   scripts/bench-finalize.sh [--prepare-only]
#
# 1. Makes the input once, cached as $BENCH_CACHE/part-1h-3mbps.ts (default cache
#    ${TMPDIR:-/tmp}/streambot-bench): 60 s of testsrc2 720p25 + sine encoded with libx264
#    ultrafast at 2900k (GOP 50) + AAC 128k, then 60 copies joined with the concat demuxer
#    (`-c copy`, continuous timestamps) into one TS; checked with ffprobe (duration ≈ 3600 s,
#    bitrate ≈ 3 Mbps). Encoding an hour of video is never needed.
# 2. Cuts the first 45 s of it (-c copy) into $BENCH_CACHE/part-45s-3mbps.ts.
# 3. Builds and runs `crates/recorder/examples/bench_finalize.rs`: on the hour (--runs $BENCH_RUNS,
#    default 3, page cache dropped before each measurement) and on the 45 s part (--runs
#    $BENCH_SHORT_RUNS, default 15, --warm: a busy worker has ffmpeg's libraries cached). Each:
#    copy+fsync, seed (probe, remux +faststart, probe, thumbnail), frag (one fragmented pass),
#    finalize (ffmpeg's one pass), native (the in-process remux finalize runs first, issue 18),
#    native+jpg (the same with an ffmpeg thumbnail), order alternated run by run; medians of wall
#    and CPU seconds. The decode check (issue 17) is off in every variant (measured apart).
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
  rm -rf "$cache"/bench-finalize-work-*
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
short="$cache/part-45s-3mbps.ts"
if [ ! -s "$short" ]; then
  log "cutting the first 45 s into $short"
  timeout -k 10 300 ffmpeg -nostdin -hide_banner -loglevel error -y -f mpegts -i "$input" \
    -t 45 -map 0 -c copy -f mpegts "$short.tmp"
  mv "$short.tmp" "$short"
fi
if [ "$prepare_only" = 1 ]; then exit 0; fi
short_runs="${BENCH_SHORT_RUNS:-15}"

# --- build and run -----------------------------------------------------------------------------
log "building the bench_finalize example (release)"
cargo build --release --quiet -p streambot-recorder --example bench_finalize
target_directory="$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
log "running $runs runs on $input"
"$target_directory/release/examples/bench_finalize" --input "$input" --runs "$runs"
log "running $short_runs runs on $short (--warm)"
"$target_directory/release/examples/bench_finalize" --input "$short" --runs "$short_runs" --warm
