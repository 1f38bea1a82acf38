#!/usr/bin/env bash
# Runs the bot on this machine: `streambot run` (bot + worker + scheduler, embedded SQLite store,
# no Redis needed). Installs ffmpeg first when it is missing and we are root (Debian/Ubuntu).
# Settings come from .env (at least TELEGRAM_BOT_TOKEN; see .env.example).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "scripts/run.sh: installing ffmpeg" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq ffmpeg >/dev/null
  else
    echo "scripts/run.sh: ffmpeg is missing: install it (apt-get install -y ffmpeg); recordings are kept as TS parts without it" >&2
  fi
fi

if [ ! -f .env ] && [ -z "${TELEGRAM_BOT_TOKEN:-}" ]; then
  echo "scripts/run.sh: no .env and no TELEGRAM_BOT_TOKEN: copy .env.example to .env and set TELEGRAM_BOT_TOKEN (from @BotFather)" >&2
  exit 2
fi

exec cargo run --release -p streambot -- run "$@"
