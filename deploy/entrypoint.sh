#!/bin/sh
# The image's entrypoint: FAP_TOKEN_FILE names a file holding the token (a mounted secret), so
# that the token stays out of the container's environment listing and the compose file.
set -eu
if [ -n "${FAP_TOKEN_FILE:-}" ]; then
    FAP_TOKEN="$(cat "$FAP_TOKEN_FILE")"
    export FAP_TOKEN
fi
exec "$@"
