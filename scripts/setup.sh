#!/usr/bin/env bash
# Installs streambot on a Debian or Ubuntu VPS as systemd services.
#
#   sudo scripts/setup.sh                                   # one machine: streambot-run.service
#   sudo scripts/setup.sh --roles bot,worker,scheduler,dashboard --workers 2
#   sudo scripts/setup.sh --binary ./streambot --dry-run    # print every action, change nothing
#
# What it does (each step only when needed, so running it again is safe):
#   1. apt-get installs ffmpeg (and redis-server when a role needs Redis, or with --with-redis);
#   2. creates the system user `streambot`, /opt/streambot/bin, /var/lib/streambot (DATA_DIR) and
#      /var/lib/streambot/recordings (LOCAL_STORAGE_PATH), /etc/streambot;
#   3. installs the binary from --binary PATH, or builds it with cargo from this checkout;
#   4. writes /etc/streambot/streambot.env from .env.example when it does not exist (never
#      overwrites it: edit it, then `systemctl restart 'streambot-*'`);
#   5. writes a systemd unit per role and enables it; starts (restarts) the units when the
#      configuration has a bot token, else says what to edit first.
# Logs: journalctl -u 'streambot-*' -f   (the invoking sudo user is added to systemd-journal).
set -euo pipefail

script_directory="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repository="$(dirname "$script_directory")"

install_directory=/opt/streambot
data_directory=/var/lib/streambot
configuration_directory=/etc/streambot
environment_file="$configuration_directory/streambot.env"
unit_directory=/etc/systemd/system
service_user=streambot

dry_run=false
binary=""
roles="run"
workers=1
with_redis=false
start_units=true

usage() {
  cat <<'USAGE'
Usage: scripts/setup.sh [options]
  --roles LIST     run (default: bot + worker + scheduler in one process, embedded store), or a
                   comma-separated list of bot, worker, scheduler, dashboard (these share Redis)
  --workers N      worker processes on this machine (streambot-worker@1 … @N; default 1)
  --binary PATH    install this streambot binary instead of building one with cargo
  --with-redis     install redis-server even for --roles run
  --no-start       write and enable the units, but do not start them
  --dry-run        print every action (and every file it would write) without doing it
  -h, --help       this text
USAGE
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    --roles) roles="${2:?--roles needs a value}"; shift 2 ;;
    --roles=*) roles="${1#*=}"; shift ;;
    --workers) workers="${2:?--workers needs a value}"; shift 2 ;;
    --workers=*) workers="${1#*=}"; shift ;;
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --binary=*) binary="${1#*=}"; shift ;;
    --with-redis) with_redis=true; shift ;;
    --no-start) start_units=false; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "setup.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

log() { echo "setup.sh: $*"; }
fail() { echo "setup.sh: $*" >&2; exit 1; }

# Runs a command, or only prints it with --dry-run.
run() {
  if "$dry_run"; then
    echo "would run: $*"
  else
    log "running: $*"
    "$@"
  fi
}

# write_file PATH MODE OWNER:GROUP < content. Rewrites only when the content, mode or owner differ.
write_file() {
  local path="$1" mode="$2" owner="$3" content
  content="$(cat)"
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ] \
    && [ "$(stat -c '%a %U:%G' "$path")" = "$mode $owner" ]; then
    log "unchanged: $path"
    return 0
  fi
  if "$dry_run"; then
    echo "would write $path (mode $mode, owner $owner):"
    printf '%s\n' "$content" | sed 's/^/    | /'
    return 0
  fi
  local temporary
  temporary="$(mktemp "$path.XXXXXX")"
  printf '%s\n' "$content" >"$temporary"
  chmod "$mode" "$temporary"
  chown "$owner" "$temporary"
  mv -f "$temporary" "$path"
  log "wrote $path"
}

# ----------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------

case "$workers" in
  '' | *[!0-9]* | 0) fail "--workers must be a whole number from 1: $workers" ;;
esac
IFS=',' read -r -a role_list <<<"$roles"
needs_redis="$with_redis"
needs_token=false
for role in "${role_list[@]}"; do
  case "$role" in
    run)
      [ "${#role_list[@]}" -eq 1 ] || fail "--roles run runs every role in one process: use it alone"
      needs_token=true
      ;;
    bot) needs_redis=true; needs_token=true ;;
    worker | scheduler | dashboard) needs_redis=true ;;
    *) fail "unknown role '$role' (run, bot, worker, scheduler, dashboard)" ;;
  esac
done

if ! "$dry_run"; then
  [ "$(id -u)" = "0" ] || fail "run as root (sudo), or with --dry-run to see what it would do"
  command -v apt-get >/dev/null 2>&1 || fail "apt-get not found: this installer is for Debian and Ubuntu"
  command -v systemctl >/dev/null 2>&1 || fail "systemctl not found: systemd is needed for the services"
fi
"$dry_run" && log "dry run: nothing is changed"

# ----------------------------------------------------------------------------------------------
# 1. Packages
# ----------------------------------------------------------------------------------------------

packages=()
if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then packages+=(ffmpeg); fi
if "$needs_redis" && ! command -v redis-server >/dev/null 2>&1; then packages+=(redis-server); fi
command -v update-ca-certificates >/dev/null 2>&1 || packages+=(ca-certificates)
if [ "${#packages[@]}" -gt 0 ]; then
  run env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
else
  log "packages already installed: ffmpeg$("$needs_redis" && echo ", redis-server")"
fi
if "$needs_redis"; then
  # Debian's redis-server listens on 127.0.0.1 only; AOF makes a queue survive a power cut.
  redis_configuration=/etc/redis/redis.conf
  if [ -f "$redis_configuration" ] && ! grep -qE '^appendonly yes' "$redis_configuration"; then
    run sed -i -E 's/^#? *appendonly .*/appendonly yes/' "$redis_configuration"
    run systemctl restart redis-server
  fi
  run systemctl enable --now redis-server
fi

# ----------------------------------------------------------------------------------------------
# 2. User and directories
# ----------------------------------------------------------------------------------------------

if id -u "$service_user" >/dev/null 2>&1; then
  log "user $service_user exists"
else
  run useradd --system --home-dir "$data_directory" --shell /usr/sbin/nologin "$service_user"
fi
for directory in "$install_directory" "$install_directory/bin" "$configuration_directory"; do
  if [ -d "$directory" ]; then log "exists: $directory"; else run install -d -m 0755 -o root -g root "$directory"; fi
done
for directory in "$data_directory" "$data_directory/recordings"; do
  if [ -d "$directory" ]; then
    log "exists: $directory"
  else
    run install -d -m 0750 -o "$service_user" -g "$service_user" "$directory"
  fi
done

# ----------------------------------------------------------------------------------------------
# 3. The binary
# ----------------------------------------------------------------------------------------------

installed_binary="$install_directory/bin/streambot"
if [ -z "$binary" ]; then
  if command -v cargo >/dev/null 2>&1 && [ -f "$repository/Cargo.toml" ]; then
    run cargo build --release --locked -p streambot --manifest-path "$repository/Cargo.toml"
    binary="$repository/target/release/streambot"
  elif [ -x "$installed_binary" ]; then
    log "no --binary and no cargo: keeping $installed_binary"
  else
    fail "no --binary PATH and no cargo to build one (install Rust from https://rustup.rs, or copy a release binary)"
  fi
fi
if [ -n "$binary" ]; then
  if ! "$dry_run" && [ ! -x "$binary" ]; then fail "$binary is not an executable file"; fi
  if [ -f "$installed_binary" ] && [ -f "$binary" ] && cmp -s "$binary" "$installed_binary"; then
    log "unchanged: $installed_binary"
  else
    run install -m 0755 -o root -g root "$binary" "$installed_binary"
  fi
fi
if [ "$(readlink /usr/local/bin/streambot 2>/dev/null || true)" != "$installed_binary" ]; then
  run ln -sfn "$installed_binary" /usr/local/bin/streambot
fi

# ----------------------------------------------------------------------------------------------
# 4. The configuration (never overwritten)
# ----------------------------------------------------------------------------------------------

if [ -f "$environment_file" ]; then
  log "keeping $environment_file (edit it, then: systemctl restart 'streambot-*')"
else
  [ -f "$repository/.env.example" ] || fail "$repository/.env.example not found"
  redis_line="# REDIS_URL=redis://127.0.0.1:6379/0"
  "$needs_redis" && redis_line="REDIS_URL=redis://127.0.0.1:6379/0"
  sed -E \
    -e "s|^#? *DATA_DIR=.*|DATA_DIR=$data_directory|" \
    -e "s|^#? *LOCAL_STORAGE_PATH=.*|LOCAL_STORAGE_PATH=$data_directory/recordings|" \
    -e "s|^#? *REDIS_URL=.*|$redis_line|" \
    -e "s|^#? *LOG_FORMAT=.*|LOG_FORMAT=json|" \
    -e "s|^#? *LOG_LEVEL=.*|LOG_LEVEL=info|" \
    "$repository/.env.example" | write_file "$environment_file" 640 "root:$service_user"
fi

# ----------------------------------------------------------------------------------------------
# 5. systemd units
# ----------------------------------------------------------------------------------------------

# Directories the services write to: DATA_DIR and LOCAL_STORAGE_PATH as configured (a shared
# recordings mount elsewhere must be writable under ProtectSystem=strict).
setting_value() {
  if [ -f "$environment_file" ]; then
    sed -n -E "s/^$1=(.*)$/\1/p" "$environment_file" | tail -n 1
  fi
}
writable_paths="$data_directory"
for configured in "$(setting_value DATA_DIR)" "$(setting_value LOCAL_STORAGE_PATH)"; do
  case "$configured" in
    /*) case " $writable_paths " in *" $configured "*) ;; *) writable_paths="$writable_paths $configured" ;; esac ;;
  esac
done
after_units="network-online.target"
if "$needs_redis"; then after_units="$after_units redis-server.service"; fi

# unit_text ROLE DESCRIPTION [WORKER_ID]
unit_text() {
  local role="$1" description="$2" worker_id="${3:-}"
  local worker_line="# WORKER_ID: <hostname>-<pid> unless set in $environment_file"
  if [ -n "$worker_id" ]; then worker_line="Environment=WORKER_ID=$worker_id"; fi
  cat <<UNIT
# Written by streambot's scripts/setup.sh; running it again rewrites this file.
[Unit]
Description=streambot $description
After=$after_units
Wants=$after_units
StartLimitIntervalSec=300
StartLimitBurst=10

[Service]
Type=exec
User=$service_user
Group=$service_user
EnvironmentFile=$environment_file
$worker_line
WorkingDirectory=$data_directory
ExecStart=$installed_binary $role
# streambot does not speak sd_notify, so there is no WatchdogSec= (systemd would kill a healthy
# process that never pings): Restart=always with RestartSec= brings back a role that crashed,
# stopped on a fatal error or was killed, and StartLimit* above stops a crash loop.
Restart=always
RestartSec=5
# SIGTERM to streambot alone: it finishes the segments in flight, finalizes, leaves unfinished
# jobs resumable and stops its ffmpeg children; whatever is left gets SIGKILL after the timeout.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=90
StandardOutput=journal
StandardError=journal
SyslogIdentifier=streambot-$role
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=yes
ReadWritePaths=$writable_paths
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
UNIT
}

units=()
for role in "${role_list[@]}"; do
  case "$role" in
    run)
      unit_text run "(bot, worker and scheduler in one process)" \
        | write_file "$unit_directory/streambot-run.service" 644 root:root
      units+=(streambot-run.service)
      ;;
    worker)
      unit_text worker "worker %i" "%H-%i" \
        | write_file "$unit_directory/streambot-worker@.service" 644 root:root
      for index in $(seq 1 "$workers"); do units+=("streambot-worker@$index.service"); done
      ;;
    *)
      unit_text "$role" "$role" | write_file "$unit_directory/streambot-$role.service" 644 root:root
      units+=("streambot-$role.service")
      ;;
  esac
done

run systemctl daemon-reload
run systemctl enable "${units[@]}"

# Logs without sudo for the admin who ran this.
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && getent group systemd-journal >/dev/null 2>&1 \
  && ! id -nG "$SUDO_USER" | tr ' ' '\n' | grep -qx systemd-journal; then
  run usermod -a -G systemd-journal "$SUDO_USER"
fi

token_is_set=false
if [ -f "$environment_file" ] && grep -qE '^TELEGRAM_BOT_TOKEN=.+' "$environment_file"; then token_is_set=true; fi
if "$start_units" && { "$token_is_set" || ! "$needs_token"; }; then
  run systemctl restart "${units[@]}"
  log "started: ${units[*]}"
else
  log "not started yet: set TELEGRAM_BOT_TOKEN (and the rest) in $environment_file, then"
  log "  systemctl restart ${units[*]}"
fi
log "check the configuration: sudo -u $service_user sh -c 'set -a; . $environment_file; streambot config check'"
log "logs: journalctl -u 'streambot-*' -f        status: systemctl status 'streambot-*'"
