#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine or in CI.
# - installs every tool the suite needs when missing (ffmpeg, redis-server, chromium, the shell
#   linter, nginx with the RTMP module, GStreamer; apt-get when root),
# - sets STREAMBOT_REQUIRE_ALL=1: a test that would skip because a tool is missing fails instead
#   (STREAMBOT_REQUIRE_ALL=0 bash scripts/test.sh lets them skip on a workstation),
# - starts a private redis-server on a free port unless REDIS_URL is given (stopped at exit),
# - runs cargo nextest (or cargo test) over the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "scripts/test.sh: $*" >&2; }

export STREAMBOT_REQUIRE_ALL="${STREAMBOT_REQUIRE_ALL:-1}"

need_packages=()
command -v ffmpeg >/dev/null 2>&1 || need_packages+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need_packages+=(ffmpeg)
# The process tests start their own redis-server even when REDIS_URL is given.
command -v redis-server >/dev/null 2>&1 || need_packages+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_packages+=(redis-server)
command -v shellcheck >/dev/null 2>&1 || need_packages+=(shellcheck)
# Real packagers (crates/streambot/tests/real_packagers.rs): nginx with its RTMP module, GStreamer's
# hlssink2 with the encoders its pipeline names.
command -v nginx >/dev/null 2>&1 || need_packages+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need_packages+=(libnginx-mod-rtmp)
if ! command -v gst-launch-1.0 >/dev/null 2>&1 || ! gst-inspect-1.0 hlssink2 >/dev/null 2>&1 \
  || ! gst-inspect-1.0 x264enc >/dev/null 2>&1 || ! gst-inspect-1.0 avenc_aac >/dev/null 2>&1; then
  need_packages+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav)
fi
# Headless Chromium drives the dashboard's page test (STREAMBOT_SKIP_BROWSER=1: not installed,
# and the page test may skip).
if [ -z "${STREAMBOT_SKIP_BROWSER:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  need_packages+=(chromium)
fi
if [ "${#need_packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${need_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need_packages[@]}" >/dev/null
  else
    log "missing ${need_packages[*]}: install them (apt-get install -y ${need_packages[*]}) or run as root"
    exit 1
  fi
fi

if [ -n "${STREAMBOT_SKIP_BROWSER:-}" ] && [ "$STREAMBOT_REQUIRE_ALL" = "1" ]; then
  log "STREAMBOT_SKIP_BROWSER is set: the dashboard page test may not skip under STREAMBOT_REQUIRE_ALL=1; set STREAMBOT_REQUIRE_ALL=0 too"
  exit 1
fi

if ! command -v cargo >/dev/null 2>&1; then
  log "cargo not found: install the Rust toolchain (https://rustup.rs)"
  exit 1
fi

redis_pid=""
redis_dir=""
cleanup() {
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  if [ -n "$redis_dir" ]; then rm -rf "$redis_dir"; fi
}
trap cleanup EXIT

if [ -z "${REDIS_URL:-}" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null || echo 6390)
  redis_dir=$(mktemp -d)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$redis_dir" --daemonize no >"$redis_dir/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 1 50); do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
    sleep 0.1
  done
  export REDIS_URL="redis://127.0.0.1:$port/"
  log "private redis-server on $REDIS_URL"
fi

# CI builds once from a clean clone: incremental caches would only take disk space there.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi

# Fixtures made by ffmpeg are cached here between runs.
export STREAMBOT_FIXTURE_CACHE="${STREAMBOT_FIXTURE_CACHE:-${TMPDIR:-/tmp}/streambot-testkit-fixtures}"

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  RUST_TEST_THREADS="${RUST_TEST_THREADS:-6}" cargo test --workspace --no-fail-fast "$@"
fi
