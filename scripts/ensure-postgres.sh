#!/usr/bin/env bash
# Makes the PostgreSQL the tests use available: 127.0.0.1:5432, role `postgres`, trust auth from
# the loopback address (a test machine's server, never one that holds real data).
#
#   answers already           nothing to do
#   installed but down        start its cluster (pg_ctlcluster, Debian's tool)
#   missing, root on Debian   apt-get install postgresql, then start it
#
# Trust for `postgres` on 127.0.0.1 is added to pg_hba.conf when missing. The tests also start
# private servers of their own, so the server programs (initdb, pg_ctl) must be there: Debian's
# postgresql package brings them, and pg_stat_statements. With FAP_TEST_POSTGRES set the tests use
# that server instead, and this only says so.
set -euo pipefail

HOST=127.0.0.1
PORT=5432

say() { echo "ensure-postgres: $*" >&2; }

if [ -n "${FAP_TEST_POSTGRES:-}" ]; then
  say "FAP_TEST_POSTGRES is set; the tests use that server."
  exit 0
fi

answers() {
  command -v psql >/dev/null 2>&1 \
    && psql -h "$HOST" -p "$PORT" -U postgres -d postgres -XAtqc 'SELECT 1' >/dev/null 2>&1
}

wait_until_it_answers() {
  for _ in $(seq 1 60); do
    answers && return 0
    sleep 0.5
  done
  return 1
}

# The newest installed version's `main` cluster, Debian's layout: /etc/postgresql/VERSION/main.
cluster_version() {
  local dir
  dir=$(ls -d /etc/postgresql/*/main 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$dir" ] && basename "$(dirname "$dir")"
}

trust_loopback() {
  local hba="/etc/postgresql/$1/main/pg_hba.conf"
  [ -w "$hba" ] || return 0
  if ! grep -Eq '^host[[:space:]]+all[[:space:]]+(all|postgres)[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
    say "allowing role postgres from 127.0.0.1 without a password (trust) in $hba"
    # First match wins in pg_hba.conf, so the line goes on top.
    sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
    return 1  # changed: the server must reload
  fi
}

answers && exit 0

version=$(cluster_version || true)
if [ -z "$version" ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "PostgreSQL is not installed and cannot be installed here (needs root and apt-get)."
    say "Install it, run it on $HOST:$PORT with trust auth for role postgres, or set FAP_TEST_POSTGRES."
    exit 1
  fi
  say "installing PostgreSQL from Debian"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  version=$(cluster_version)
fi

reload=0
trust_loopback "$version" || reload=1
if pg_ctlcluster --skip-systemctl-redirect "$version" main status >/dev/null 2>&1; then
  [ "$reload" -eq 1 ] && pg_ctlcluster --skip-systemctl-redirect "$version" main reload
else
  say "starting PostgreSQL $version (cluster main)"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi

if ! wait_until_it_answers; then
  say "PostgreSQL $version does not answer on $HOST:$PORT as role postgres; see /var/log/postgresql/."
  exit 1
fi
