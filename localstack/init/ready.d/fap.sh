#!/bin/sh
# LocalStack init hook (ready stage): provision fap's bucket, lifecycle rule, server secret and
# least-privilege IAM policy and role. See ../../README.md for how to mount it and its settings.
set -eu

# provision.py is mounted beside the hooks' directory (-v ./localstack:/opt/fap/localstack:ro), or
# found relative to this script when it runs from a checkout.
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
script=${FAP_PROVISION_SCRIPT:-/opt/fap/localstack/provision.py}
[ -f "$script" ] || script="$here/../../provision.py"
if [ ! -f "$script" ]; then
    echo "fap provision: error: provision.py not found; mount ./localstack at /opt/fap/localstack" >&2
    exit 1
fi

# LocalStack's own Python has botocore; elsewhere, any python3 with botocore will do.
python=${FAP_PYTHON:-}
if [ -z "$python" ]; then
    if [ -x /opt/code/localstack/.venv/bin/python ]; then
        python=/opt/code/localstack/.venv/bin/python
    else
        python=python3
    fi
fi

# Inside LocalStack the API answers on localhost:4566, and takes any credentials.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}"
exec "$python" "$script" --endpoint "${FAP_AWS_ENDPOINT:-${AWS_ENDPOINT_URL:-http://localhost:4566}}" "$@"
