#!/usr/bin/env bash
# PostgreSQL for the centre's store tests (tests/centre), called by scripts/setup.sh; idempotent.
#   - A server already listening on 127.0.0.1:$port is left alone (not installed, started or
#     reconfigured); only a check that the tests' database answers is made, with a hint if not.
#   - Otherwise Debian's package is installed with apt-get if missing, its cluster created or started
#     (pg_createcluster / pg_ctlcluster: works without systemd), loopback connections to the test
#     database trusted (one pg_hba.conf line, for that database and 127.0.0.1 only), and the
#     database created.
# The tests read RSU_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test).
#   RSU_SETUP_DRY_RUN=1  print the commands that change the machine instead of running them.
set -euo pipefail

port="${RSU_POSTGRES_PORT:-5432}"
database="${RSU_POSTGRES_DB:-test}"
url="${RSU_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:$port/$database}"
dry_run="${RSU_SETUP_DRY_RUN:-0}"
say() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
  if [ "$dry_run" = 1 ]; then say "would run: $*"; return 0; fi
  if [ "$(id -u)" -eq 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1; then sudo "$@";
  else say "need root to run: $*"; return 1; fi
}
as_postgres() { as_root runuser -u postgres -- "$@"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

answers() {
  command -v psql >/dev/null 2>&1 || return 127
  psql "$url" -qtAc 'SELECT 1' >/dev/null 2>&1
}

if port_open "$port"; then
  say "PostgreSQL already listening on 127.0.0.1:$port; leaving it as it is"
  if answers; then
    say "PostgreSQL test database reachable at $url"
  else
    status=$?
    if [ "$status" = 127 ]; then
      say "psql not installed: cannot check $url (apt-get install postgresql-client to check)"
    else
      say "WARNING: the running PostgreSQL does not accept $url; the centre's PostgreSQL tests will" \
          "skip (fail under CI=true). Create the database and allow the role, or set RSU_TEST_POSTGRES_URL."
    fi
  fi
  exit 0
fi

# --- not running: install, create or start the cluster --------------------------------------
clusters() { pg_lsclusters -h 2>/dev/null || true; }
newest_version() { ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1; }
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(newest_version)" ]; then
  say "installing PostgreSQL with apt-get (the centre's store tests)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi
version="$(newest_version)"
[ -n "$version" ] || version="${RSU_POSTGRES_VERSION:-15}"  # dry run on a machine without it
# The cluster on our port, else Debian's "main" of the newest version (the package creates it).
cluster="$(clusters | awk -v p="$port" '$3 == p {print $1 " " $2; exit}')"
if [ -z "$cluster" ]; then
  if clusters | awk -v v="$version" '$1 == v && $2 == "main" {found=1} END {exit !found}'; then
    say "PostgreSQL $version/main exists on another port; creating cluster $version/rsu on $port"
    as_root pg_createcluster "$version" rsu --port "$port"
    cluster="$version rsu"
  else
    say "creating PostgreSQL cluster $version/main on port $port"
    as_root pg_createcluster "$version" main --port "$port"
    cluster="$version main"
  fi
fi
read -r cluster_version cluster_name <<<"$cluster"
hba="/etc/postgresql/$cluster_version/$cluster_name/pg_hba.conf"
marker="# rsu-edge scripts/setup.sh: the tests' database over loopback"
if [ "$dry_run" = 1 ] || ! grep -qF "$marker" "$hba" 2>/dev/null; then
  say "trusting loopback connections to database $database in $hba"
  # First match wins in pg_hba.conf: the line goes on top.
  as_root sed -i "1i $marker\\nhost $database all 127.0.0.1/32 trust" "$hba"
fi
say "starting PostgreSQL $cluster_version/$cluster_name on 127.0.0.1:$port"
as_root pg_ctlcluster "$cluster_version" "$cluster_name" start || as_root pg_ctlcluster "$cluster_version" "$cluster_name" reload
if [ "$dry_run" = 1 ]; then
  say "would create database $database if missing"
  exit 0
fi
for _ in $(seq 1 100); do port_open "$port" && break; sleep 0.1; done
port_open "$port" || { say "PostgreSQL is not listening on 127.0.0.1:$port"; exit 1; }
if [ "$(as_postgres psql -p "$port" -qtAc "SELECT 1 FROM pg_database WHERE datname = '$database'")" != 1 ]; then
  say "creating database $database"
  as_postgres createdb -p "$port" "$database"
fi
answers || { say "PostgreSQL started but $url does not answer"; exit 1; }
say "PostgreSQL ready at $url"
