#!/usr/bin/env bash
# System tools the tests use and a user may want beside fap: `age` (decrypts results without fap),
# bubblewrap (`bwrap`: the sandbox `fap work` runs its engines in, docs/sandbox.md; without it
# engines get their rlimits alone), Node.js and npm (run the tests' OpenID Connect provider,
# tests/support/oidc; the Makefile checks their version), systemd's tools (`systemd-analyze verify`
# checks the units `fap service install` writes; `systemd-escape` the names it gives them, no
# running systemd needed). Installed from Debian when missing and we are allowed to; otherwise a
# note, never a failure: fap itself needs none of them.
set -euo pipefail
missing=()
command -v age >/dev/null 2>&1 || missing+=(age)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing from Debian: ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "note: not installed (optional): ${missing[*]}" >&2
fi
