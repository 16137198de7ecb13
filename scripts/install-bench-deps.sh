#!/usr/bin/env bash
# System tools `make bench` runs beside the bench dependency group: rclone and zstd (two of the
# peers fap is measured against), iproute2 (`ip netns`, `tc`: the shaped links). Installed from
# Debian when missing and we are allowed to; otherwise a note: the benchmark then reports the
# tools it could not run as failed, and without `ip`/`tc` runs loopback only.
set -euo pipefail
missing=()
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
{ command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1; } || missing+=(iproute2)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing from Debian: ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "note: not installed (the benchmark reports them as failed): ${missing[*]}" >&2
fi
