#!/usr/bin/env bash
# The deployment checks that need no AWS account:
#   1. cfn-lint on the template, and on each template given (`streamlake dataset template`
#      output: infra/check.sh [TEMPLATE ...]) (no errors);
#   2. checkov on them (no failed check; skips are annotated in the template);
#   3. a smoke deploy to moto with `aws cloudformation create-stack`, then teardown.sh;
#   4. deploy.sh run without credentials stops early, with a clear message.
# The Python tools (pinned) are installed into a virtualenv under the build directory
# ($STREAMLAKE_STATE_DIR, default target/streamlake) on first use, with the uv the local
# stack installs its emulator with (local/src/harness/python.rs: same version, same lock).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
state="${STREAMLAKE_STATE_DIR:-${root}/target/streamlake}"
venv="${state}/infra-venv-2"
python="${PYTHON:-python3}"
uv_version="0.13.9"
uv_venv="${state}/uv-${uv_version}"

mkdir -p "$state"
(
    flock 9
    if [ ! -f "${uv_venv}/.installed" ]; then
        "$python" -m venv --clear "$uv_venv"
        "${uv_venv}/bin/pip" install --quiet "uv==${uv_version}"
        touch "${uv_venv}/.installed"
    fi
    if [ ! -f "${venv}/.installed" ]; then
        echo "infra checks: installing cfn-lint, checkov, the AWS CLI, moto and cargo-lambda into ${venv}"
        export UV_PYTHON_DOWNLOADS=never
        "${uv_venv}/bin/uv" venv --quiet --clear --python "$python" "$venv"
        "${uv_venv}/bin/uv" pip install --quiet --python "${venv}/bin/python" \
            "cfn-lint==1.58.0" \
            "checkov==3.3.30" \
            "awscli==1.46.3" \
            "moto[server]==5.2.5" \
            "cargo-lambda==1.9.2"
        touch "${venv}/.installed"
    fi
) 9>"${state}/python-tools.lock"
export PATH="${venv}/bin:${PATH}"
# The tools cache their modules' bytecode in the virtualenv (checkov and cfn-lint import
# thousands of them; local/src/harness/python.rs says why).
unset PYTHONDONTWRITEBYTECODE
template="${root}/infra/template.yaml"

# Each tool runs once over every template: each start imports thousands of modules.
templates=("$template" "$@")
echo "== cfn-lint ${templates[*]}"
# Exit codes 0 (clean) and 4 (warnings only) pass; errors fail.
status=0
cfn-lint "${templates[@]}" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 4 ]; then
    echo "cfn-lint found errors in ${templates[*]}" >&2
    exit 1
fi

echo "== checkov ${templates[*]}"
files=()
for checked in "${templates[@]}"; do
    files+=(--file "$checked")
done
checkov "${files[@]}" --framework cloudformation --compact --quiet --skip-download

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
