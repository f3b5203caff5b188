#!/usr/bin/env bash
# The deployment checks that need no AWS account:
#   1. cfn-lint on the template (no errors);
#   2. checkov on the template (no failed check; skips are annotated in the template);
#   3. a smoke deploy to moto with `aws cloudformation create-stack`, then teardown.sh;
#   4. deploy.sh run without credentials stops early, with a clear message.
# The Python tools (pinned) are installed into a virtualenv under the build directory
# ($STREAMLAKE_STATE_DIR, default target/streamlake) on first use.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
state="${STREAMLAKE_STATE_DIR:-${root}/target/streamlake}"
venv="${state}/infra-venv-1"
python="${PYTHON:-python3}"

if [ ! -f "${venv}/.installed" ]; then
    echo "infra checks: installing cfn-lint, checkov, the AWS CLI, moto and cargo-lambda into ${venv}"
    "$python" -m venv --clear "$venv"
    "${venv}/bin/pip" install --quiet \
        "cfn-lint==1.58.0" \
        "checkov==3.3.30" \
        "awscli==1.46.3" \
        "moto[server]==5.2.5" \
        "cargo-lambda==1.9.2" \
        "ziglang==0.17.1"
    touch "${venv}/.installed"
fi
export PATH="${venv}/bin:${PATH}"
template="${root}/infra/template.yaml"

echo "== cfn-lint"
# Exit codes 0 (clean) and 4 (warnings only) pass; errors fail.
status=0
cfn-lint "$template" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 4 ]; then
    echo "cfn-lint found errors" >&2
    exit 1
fi

echo "== checkov"
checkov --file "$template" --framework cloudformation --compact --quiet --skip-download

echo "== smoke deploy to moto"
python "${root}/infra/checks/smoke_deploy.py" "$template" "${venv}/bin/moto_server"

echo "== deploy.sh without credentials"
out=$(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
    AWS_REGION=us-east-1 "${root}/infra/deploy.sh" 2>&1) && {
    echo "deploy.sh succeeded without credentials" >&2
    exit 1
}
echo "$out" | grep -q "no usable AWS credentials" || {
    echo "deploy.sh did not stop at the credentials check:" >&2
    echo "$out" >&2
    exit 1
}
echo "stopped as expected: $(echo "$out" | head -c 120)..."
echo "infra checks passed"
