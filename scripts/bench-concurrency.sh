#!/usr/bin/env bash
# Concurrency benchmark (issue 2 item 8): N simultaneous recordings of a local live stream in one
# streambot process (crates/recorder/examples/record_many.rs) beside N bare
# `ffmpeg -i URL -c copy` processes, in the same invocation, each batch against a fresh
# `hls-origin` with the same settings. Measures CPU seconds (user+sys), peak RSS, lost segments
# and seconds from start to the first segment.
#
#   scripts/bench-concurrency.sh [N...]          (default: 20 100)
#
# Settings (environment): BENCH_WINDOW (playlist window, segments; default 30),
# BENCH_LIVE_SECONDS (seconds of live publishing after the initial window; default 60),
# BENCH_OUTPUT (where results go; default target/bench-concurrency/<date>),
# BENCH_KEEP_MEDIA=1 keeps the recorded media (deleted after each batch otherwise).
#
# Each run also records a base: one recording in the same program (N = 1), so
# "RSS per recording above base" = (peak(N) - peak(1)) / (N - 1).
# Results: one JSON line per batch in $BENCH_OUTPUT/results.jsonl, and a table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "bench-concurrency: $*" >&2; }

counts=("$@")
if [ "${#counts[@]}" -eq 0 ]; then counts=(20 100); fi
for count in "${counts[@]}"; do
  case "$count" in
    '' | *[!0-9]*) log "N must be a whole number, got '$count'"; exit 2 ;;
  esac
  if [ "$count" -lt 2 ]; then log "N must be at least 2"; exit 2; fi
done
window="${BENCH_WINDOW:-30}"
live_seconds="${BENCH_LIVE_SECONDS:-60}"
total=$((window + live_seconds))
first_sequence=1000
last_published=$((first_sequence + total - 1))
# Every client must be done this long after its start; generous, the stream ends by itself.
client_limit=$((live_seconds + 90))
output="${BENCH_OUTPUT:-target/bench-concurrency/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$output"
output="$(cd "$output" && pwd)"

# --- tools -----------------------------------------------------------------------------------
need_packages=()
command -v ffmpeg >/dev/null 2>&1 || need_packages+=(ffmpeg)
[ -x /usr/bin/time ] || need_packages+=(time)
command -v jq >/dev/null 2>&1 || need_packages+=(jq)
command -v bc >/dev/null 2>&1 || need_packages+=(bc)
if [ "${#need_packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${need_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need_packages[@]}" >/dev/null
  else
    log "missing ${need_packages[*]}: apt-get install -y ${need_packages[*]} (or run as root)"
    exit 1
  fi
fi
# 100 recordings hold a few hundred sockets and files at once.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- build, and copy the binaries so a rebuild in the checkout cannot change them mid-run -----
log "building release binaries"
cargo build --release --quiet -p streambot-testkit --bin hls-origin
cargo build --release --quiet -p streambot-recorder --example record_many
target_directory="$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)"
bin="$output/bin"
mkdir -p "$bin"
cp "$target_directory/release/hls-origin" "$target_directory/release/examples/record_many" "$bin/"

# --- process bookkeeping ---------------------------------------------------------------------
started_pids=()
kill_tree() {
  local pid="$1" child
  for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do kill_tree "$child"; done
  kill "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${started_pids[@]}"; do kill_tree "$pid"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

origin_pid=""
origin_url=""
origin_ready_at=""
# start_origin DIR: a fresh origin whose served log goes to DIR/served.jsonl.
start_origin() {
  local directory="$1" line=""
  "$bin/hls-origin" --port 0 --window "$window" --kind ts --total "$total" \
    --first-sequence "$first_sequence" --served-log "$directory/served.jsonl" \
    >"$directory/origin.out" 2>"$directory/origin.err" &
  origin_pid=$!
  started_pids+=("$origin_pid")
  local waited=0
  while ! line="$(grep -m1 '^READY ' "$directory/origin.out" 2>/dev/null)"; do
    if ! kill -0 "$origin_pid" 2>/dev/null || [ "$waited" -ge 1200 ]; then
      log "hls-origin did not become ready: $(cat "$directory/origin.err")"
      exit 1
    fi
    sleep 0.05
    waited=$((waited + 1))
  done
  # The origin's clock starts just before it listens; READY is within milliseconds of it.
  origin_ready_at="$EPOCHREALTIME"
  origin_url="${line#READY }/live/media.m3u8"
}
stop_origin() {
  kill -TERM "$origin_pid" 2>/dev/null || true
  local waited=0
  while kill -0 "$origin_pid" 2>/dev/null; do
    if [ "$waited" -ge 300 ]; then kill -KILL "$origin_pid" 2>/dev/null || true; break; fi
    sleep 0.1
    waited=$((waited + 1))
  done
  wait "$origin_pid" 2>/dev/null || true
}

# watch_first_bytes STARTED OUTFILE FILE...: until every FILE has bytes or every watched process
# ended, writes "index seconds" (from STARTED) when FILE number index first has bytes.
# Uses only shell builtins and one `sleep` per 0.1 s, so it costs the machine next to nothing.
watch_pids=()
watch_first_bytes() {
  local started="$1" result="$2"
  shift 2
  local files=("$@") seen=() remaining="$#" index now alive pid
  : >"$result"
  while [ "$remaining" -gt 0 ]; do
    now="$EPOCHREALTIME"
    for index in "${!files[@]}"; do
      if [ -z "${seen[$index]:-}" ] && [ -s "${files[$index]}" ]; then
        seen[index]=1
        remaining=$((remaining - 1))
        echo "$index $(echo "$now - $started" | bc -l)" >>"$result"
      fi
    done
    alive=0
    for pid in "${watch_pids[@]}"; do
      if kill -0 "$pid" 2>/dev/null; then alive=1; break; fi
    done
    if [ "$alive" = 0 ]; then break; fi
    sleep 0.1
  done
}

# time_fields FILE: "wall user sys maxrss_kb" from /usr/bin/time -f '%e %U %S %M' (last line).
time_fields() { tail -n 1 "$1"; }

# served_figures SERVED_LOG N OFFSET_SECONDS: JSON with per-sequence download counts turned into
# lost segments, and the time of the N-th... first segment downloads, from the origin's log.
served_figures() {
  jq -s --argjson n "$2" --argjson offset "$3" --argjson last "$last_published" '
    def at: (.at.secs + .at.nanos / 1e9);
    [ .[] | select(.kind == "Segment") ] as $segments
    | [ $segments[] | select(.status == 200 and .complete) ] as $ok
    | ($ok | group_by(.media_sequence) | map({key: (.[0].media_sequence | tostring), value: length})
           | from_entries) as $counts
    | ([ $segments[].media_sequence ] | min) as $first
    | [ range($first; $last + 1) | {sequence: ., count: ($counts[tostring] // 0)} ] as $per
    | ([ $per[] | select(.count >= $n) ] | first | .sequence) as $full
    | ([ $ok[] | at ] | sort | .[0:$n]) as $firsts
    | {
        first_fetched: $first,
        last_published: $last,
        all_clients_from: $full,
        segment_requests: ($segments | length),
        failed_or_incomplete: ([ $segments[] | select(.status != 200 or (.complete | not)) ] | length),
        lost_served: ([ $per[] | ([$n - .count, 0] | max) ] | add),
        lost_served_after_all_started: (if $full == null then null else
          ([ $per[] | select(.sequence >= $full) | ([$n - .count, 0] | max) ] | add) end),
        extra_downloads: ([ $per[] | ([.count - $n, 0] | max) ] | add),
        median_first_segment_request_seconds: (if ($firsts | length) == 0 then null else
          ($firsts[(($firsts | length) / 2 | floor)] - $offset) end)
      }' "$1"
}

median_of() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "null"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

results="$output/results.jsonl"
run_id="$(date +%s)"

# run_streambot N: one record_many process with N recordings.
run_streambot() {
  local n="$1" directory="$output/streambot-$1"
  rm -rf "$directory"
  mkdir -p "$directory/media"
  start_origin "$directory"
  local started="$EPOCHREALTIME"
  local offset
  offset="$(echo "$started - $origin_ready_at" | bc -l)"
  /usr/bin/time -o "$directory/time.txt" -f '%e %U %S %M' \
    timeout -k 10 "$client_limit" \
    "$bin/record_many" --count "$n" --url "$origin_url" --output "$directory/media" \
    >"$directory/record_many.json" 2>"$directory/record_many.err" &
  local pid=$!
  started_pids+=("$pid")
  watch_pids=("$pid")
  local files=() i
  for ((i = 0; i < n; i++)); do files+=("$directory/media/rec-$i/main-0001.ts"); done
  watch_first_bytes "$started" "$directory/first-bytes.txt" "${files[@]}"
  local status=0
  wait "$pid" || status=$?
  stop_origin
  if [ "$status" != 0 ]; then
    log "record_many (N=$n) exited with $status: $(tail -n 3 "$directory/record_many.err")"
  fi
  local wall user sys rss
  read -r wall user sys rss < <(time_fields "$directory/time.txt")
  local disk_median
  disk_median="$(awk '{ print $2 }' "$directory/first-bytes.txt" | median_of)"
  local served
  served="$(served_figures "$directory/served.jsonl" "$n" "$offset")"
  jq -c -n --arg side streambot --argjson n "$n" --arg run "$run_id" \
    --argjson wall "$wall" --argjson user "$user" --argjson sys "$sys" --argjson rss "$rss" \
    --argjson disk "$disk_median" --argjson served "$served" --argjson last "$last_published" \
    --slurpfile record "$directory/record_many.json" --argjson status "$status" '
    ($record[0] // {summary: {}, recordings: []}) as $r
    | {
        side: $side, n: $n, run: $run, exit_status: $status, wall_seconds: $wall,
        cpu_seconds: (($user + $sys) * 100 | round / 100), peak_rss_kb: $rss,
        lost_ledger: (($r.summary.total_gaps // 0) + ($r.summary.total_missing_in_ledger // 0)
          + ([ $r.recordings[] | ($last - (.last_media_sequence // $last)) ] | add // 0)),
        ledger_gaps: $r.summary.total_gaps, ledger_missing: $r.summary.total_missing_in_ledger,
        ledger_tail_short: ([ $r.recordings[] | ($last - (.last_media_sequence // $last)) ] | add),
        failed_recordings: $r.summary.failed_recordings,
        segments_ok: $r.summary.total_segments_ok,
        first_sequences: ([ $r.recordings[].first_media_sequence ] | unique),
        median_first_commit_seconds: $r.summary.median_seconds_to_first_segment,
        max_first_commit_seconds: $r.summary.max_seconds_to_first_segment,
        median_first_bytes_on_disk_seconds: $disk,
        served: $served
      }' >>"$results"
  if [ "${BENCH_KEEP_MEDIA:-0}" != 1 ]; then rm -rf "${directory:?}/media"; fi
}

# run_ffmpeg N: N ffmpeg processes, each under /usr/bin/time.
run_ffmpeg() {
  local n="$1" directory="$output/ffmpeg-$1"
  rm -rf "$directory"
  mkdir -p "$directory/media" "$directory/times"
  start_origin "$directory"
  local started="$EPOCHREALTIME"
  local offset
  offset="$(echo "$started - $origin_ready_at" | bc -l)"
  local pids=() files=() i
  for ((i = 0; i < n; i++)); do
    /usr/bin/time -o "$directory/times/$i.txt" -f '%e %U %S %M' \
      timeout -k 10 "$client_limit" \
      ffmpeg -nostdin -hide_banner -loglevel error -i "$origin_url" -c copy -f mpegts -y \
      "$directory/media/out-$i.ts" 2>"$directory/media/err-$i.txt" &
    pids+=("$!")
    started_pids+=("$!")
    files+=("$directory/media/out-$i.ts")
  done
  watch_pids=("${pids[@]}")
  watch_first_bytes "$started" "$directory/first-bytes.txt" "${files[@]}"
  local failures=0 pid
  for pid in "${pids[@]}"; do wait "$pid" || failures=$((failures + 1)); done
  stop_origin
  if [ "$failures" != 0 ]; then log "$failures of $n ffmpeg processes exited non-zero"; fi
  local cpu rss_total rss_median
  cpu="$(cat "$directory"/times/*.txt | awk '{ s += $2 + $3 } END { printf "%.2f", s }')"
  rss_total="$(cat "$directory"/times/*.txt | awk '{ s += $4 } END { print s }')"
  rss_median="$(cat "$directory"/times/*.txt | awk '{ print $4 }' | median_of)"
  local disk_median
  disk_median="$(awk '{ print $2 }' "$directory/first-bytes.txt" | median_of)"
  local served
  served="$(served_figures "$directory/served.jsonl" "$n" "$offset")"
  jq -c -n --arg side ffmpeg --argjson n "$n" --arg run "$run_id" --argjson failures "$failures" \
    --argjson cpu "$cpu" --argjson rss_total "$rss_total" --argjson rss_median "$rss_median" \
    --argjson disk "$disk_median" --argjson served "$served" '{
        side: $side, n: $n, run: $run, failed_processes: $failures,
        cpu_seconds: $cpu, peak_rss_kb: $rss_total, per_process_peak_rss_kb_median: $rss_median,
        lost_served: $served.lost_served,
        median_first_bytes_on_disk_seconds: $disk,
        served: $served
      }' >>"$results"
  if [ "${BENCH_KEEP_MEDIA:-0}" != 1 ]; then rm -rf "${directory:?}/media"; fi
}

log "window $window segments, $live_seconds s live, sequences $first_sequence..$last_published; output $output"
log "base: streambot with N = 1"
run_streambot 1
base_rss="$(jq -s 'map(select(.side == "streambot" and .n == 1)) | last | .peak_rss_kb' "$results")"
for n in "${counts[@]}"; do
  log "N = $n: streambot"
  run_streambot "$n"
  log "N = $n: ffmpeg"
  run_ffmpeg "$n"
done

# --- table -----------------------------------------------------------------------------------
echo
echo "run $run_id (base RSS with one recording: $((base_rss / 1024)) MB)"
printf '%-5s %-9s %8s %9s %12s %14s %6s %10s %10s\n' \
  N side "CPU s" "CPU ratio" "peak RSS MB" "MB/recording" lost "1st seg s" "1st byte s"
for n in "${counts[@]}"; do
  jq -r -s --argjson n "$n" --argjson base "$base_rss" --arg run "$run_id" '
    map(select(.n == $n and .run == $run)) as $rows
    | ($rows | map(select(.side == "streambot")) | last) as $s
    | ($rows | map(select(.side == "ffmpeg")) | last) as $f
    | def mb: . / 1024 | . * 10 | round / 10;
      [ $n, "streambot", $s.cpu_seconds, (($s.cpu_seconds / $f.cpu_seconds) * 1000 | round / 1000),
        ($s.peak_rss_kb | mb), ((($s.peak_rss_kb - $base) / ($n - 1)) | mb),
        "\($s.lost_ledger)/\($s.served.lost_served)",
        (($s.median_first_commit_seconds // 0) * 100 | round / 100),
        (($s.median_first_bytes_on_disk_seconds // 0) * 100 | round / 100) ],
      [ $n, "ffmpeg", $f.cpu_seconds, 1, ($f.peak_rss_kb | mb), ($f.per_process_peak_rss_kb_median | mb),
        "\($f.lost_served)/\($f.served.lost_served_after_all_started)",
        (($f.served.median_first_segment_request_seconds // 0) * 100 | round / 100),
        (($f.median_first_bytes_on_disk_seconds // 0) * 100 | round / 100) ]
    | @tsv' "$results" |
    awk -F'\t' '{ printf "%-5s %-9s %8s %9s %12s %14s %6s %10s %10s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }'
done
echo "lost: streambot ledger/served-log; ffmpeg served-log strict/after all clients started."
echo "1st seg: streambot first commit event; ffmpeg first complete segment request (served log, approx.)."
echo "results: $results"
