#!/usr/bin/env bash
# One-time (and idempotent) set-up of rsu-edge on a fresh Debian/Ubuntu machine:
#   - Mosquitto and Redis installed with apt-get where missing, and started where not running;
#   - PostgreSQL for the centre's store tests (scripts/setup-postgres.sh): Debian's package installed
#     and its cluster started where nothing listens on 127.0.0.1:5432, a running one left alone;
#   - a virtual environment in .venv with the pinned dependencies (CPU build of torch) and rsu itself.
# Re-running it is cheap: packages are reinstalled only when requirements.lock changes.
#   --dev  also installs Debian's Chromium, which the browser tests of the web page drive.
set -euo pipefail

with_browser=0
for argument in "$@"; do
  case "$argument" in
    --dev) with_browser=1 ;;
    *) printf 'setup: unknown option %s (known: --dev)\n' "$argument" >&2; exit 2 ;;
  esac
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
say() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1; then sudo "$@";
  else say "need root to run: $*"; return 1; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- services -----------------------------------------------------------------------------
missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
browser_missing=0
if [ "$with_browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then browser_missing=1; fi
if [ "$browser_missing" = 1 ]; then
  say "installing chromium with apt-get (browser tests of the web page)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi
if [ ${#missing[@]} -gt 0 ]; then
  if port_open 1883 && port_open 6379; then
    say "services already listening; not installing ${missing[*]}"
  else
    say "installing ${missing[*]} with apt-get"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

if ! port_open 1883; then
  say "starting Mosquitto on 127.0.0.1:1883"
  mosquitto_bin="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    as_root "$mosquitto_bin" -d -c /etc/mosquitto/mosquitto.conf
  else
    as_root "$mosquitto_bin" -d -p 1883
  fi
fi
if ! port_open 6379; then
  say "starting Redis on 127.0.0.1:6379 (append-only file on, so the outbox survives restarts)"
  redis_dir=/var/lib/redis
  [ -d "$redis_dir" ] || redis_dir="$repo/.run/redis"
  as_root mkdir -p "$redis_dir"
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --dir "$redis_dir" --appendonly yes \
    --logfile "$redis_dir/redis.log"
fi
for _ in $(seq 1 50); do port_open 1883 && port_open 6379 && break; sleep 0.1; done
port_open 1883 || { say "Mosquitto is not listening on 127.0.0.1:1883"; exit 1; }
port_open 6379 || { say "Redis is not listening on 127.0.0.1:6379"; exit 1; }
bash "$repo/scripts/setup-postgres.sh"

# --- python environment -------------------------------------------------------------------
python_bin="${PYTHON:-python3}"
"$python_bin" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  say "Python >= 3.11 is required (found $("$python_bin" --version 2>&1))"; exit 1; }
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$python_bin" -m venv .venv
fi
stamp=".venv/.rsu-lock-$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "installing pinned dependencies (first time: several minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps -e .
  rm -f .venv/.rsu-lock-*
  touch "$stamp"
fi
say "ready: Mosquitto 127.0.0.1:1883, Redis 127.0.0.1:6379, $(.venv/bin/python --version)"
