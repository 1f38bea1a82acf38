#!/usr/bin/env bash
# Issue 17 figures: join cost of a 2 x 10 min recording (concat -> one TS, then the remux to mp4)
# against finalizing the two parts separately, and the decode check whole vs sampled (what
# finalize runs: ffmpeg -v error -f null -, one thread). Median of 3 runs, wall seconds.
# Scratch media in a temporary directory removed at the end.
set -euo pipefail
minutes=${MINUTES:-10}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
for n in 1 2; do
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=320x180:rate=25" -f lavfi -i sine \
    -t $((minutes * 60)) -c:v libx264 -preset ultrafast -g 50 -b:v 200k -c:a aac -b:a 64k \
    -output_ts_offset $(( (n - 1) * (minutes * 60 + 30) )) -f mpegts "part-000$n.ts"
done
median() { sort -n | sed -n 2p; }
timed() { local start end; start=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; end=$(date +%s.%N); awk -v s="$start" -v e="$end" 'BEGIN { print e - s }'; }
remux() { ffmpeg -hide_banner -loglevel error -y -f mpegts -i "$1" -map 0 -c copy -bsf:a aac_adtstoasc -movflags +faststart -f mp4 "$2"; }
separate() { remux part-0001.ts a.mp4 && remux part-0002.ts b.mp4; }
printf "ffconcat version 1.0\nfile 'part-0001.ts'\nfile 'part-0002.ts'\n" > list.txt
joined() {
  ffmpeg -hide_banner -loglevel error -y -f concat -safe 0 -format_whitelist concat,mpegts -i list.txt \
    -map 0 -c copy -f mpegts joined.ts && remux joined.ts joined.mp4 && rm -f joined.ts
}
decode_whole() { ffmpeg -hide_banner -nostdin -loglevel error -threads 1 -i joined.mp4 -map 0:v? -map 0:a? -f null -; }
decode_sampled() {
  local duration; duration=$(ffprobe -v error -show_entries format=duration -of csv=p=0 joined.mp4)
  for slice_start in 0 $(awk -v d="$duration" 'BEGIN { print (d - 10) / 2, d - 10 }'); do
    ffmpeg -hide_banner -nostdin -loglevel error -threads 1 -ss "$slice_start" -t 10 -i joined.mp4 -map 0:v? -map 0:a? -f null -
  done
}
for name in separate joined decode_whole decode_sampled; do
  value=$(for _ in 1 2 3; do timed "$name"; done | median)
  printf "%-16s %6.2f s\n" "$name" "$value"
done
printf "parts %s MB each, joined mp4 %s MB\n" "$(( $(stat -c %s part-0001.ts) / 1000000 ))" "$(( $(stat -c %s joined.mp4) / 1000000 ))"
