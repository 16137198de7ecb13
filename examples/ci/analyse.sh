#!/usr/bin/env bash
# Analyse a folder of build artefacts with fap, and fail the build when any of them got no result.
#
#   bash ci/analyse.sh [ARTEFACTS [RESULTS]]      (defaults: build/ and fap-results)
#
# The pipeline sets two variables, and nothing else:
#   FAP_TOKEN   an API token (`fap token create --role member`), kept as a CI secret
#   FAP_SERVER  the fap server's URL
# FAP_PACKAGE (optional) is what to install when fap is not on PATH: fap from the package index
# (the default), fap==VERSION to pin a release, or a wheel's path or URL.
#
# Each artefact's result is written to RESULTS/<its path under ARTEFACTS>.result.json, and the
# JSON line of every artefact (file, upload_id, status, result_path, error) to RESULTS.jsonl.
# The exit code is fap's: 0 when every artefact got a result, 7 when some did not (the reason is
# in its line), 3 to 6 when fap could not run at all (a bad folder, the token, the server).
set -euo pipefail

artefacts=${1:-build/}
results=${2:-fap-results}
results=${results%/}  # RESULTS.jsonl goes beside the folder, not into it

if ! command -v fap >/dev/null 2>&1; then
  if ! command -v uv >/dev/null 2>&1; then
    echo "error: neither fap nor uv is on PATH: install one of them before this step." >&2
    exit 3
  fi
  uv tool install --quiet "${FAP_PACKAGE:-fap}"
  PATH="$(uv tool dir --bin):$PATH"
fi
fap --version

status=0
fap upload --recursive "$artefacts" --json --results "$results" | tee "$results.jsonl" || status=$?
if [[ $status -eq 7 ]]; then
  echo "error: some artefacts got no analysis result: their reasons are in $results.jsonl." >&2
fi
exit "$status"
