#!/usr/bin/env bash
# Builds both Lambdas for arm64, uploads them, and deploys infra/template.yaml.
#
# Usage: infra/deploy.sh [Parameter=Value ...]
#   e.g. infra/deploy.sh OutputFormat=parquet ShardCount=0
# Environment: STACK_NAME (default streamlake), NAME_PREFIX (default streamlake), and the
# standard AWS configuration (AWS_PROFILE, AWS_REGION, ...). Credentials come only from
# the standard provider chain.
set -euo pipefail

cd "$(dirname "$0")/.."
STACK_NAME="${STACK_NAME:-streamlake}"
NAME_PREFIX="${NAME_PREFIX:-streamlake}"

fail() {
    echo "deploy: $*" >&2
    exit 1
}

# Tools first: nothing is built or created when one is missing.
command -v aws >/dev/null || fail "the AWS CLI is missing: pip install awscli (or see https://aws.amazon.com/cli/)"
command -v cargo >/dev/null || fail "cargo is missing: install Rust from https://rustup.rs"
cargo lambda --version >/dev/null 2>&1 ||
    fail "cargo-lambda is missing: pip install cargo-lambda ziglang (or cargo install cargo-lambda)"

# Then credentials and region, from the standard configuration.
if ! account=$(aws sts get-caller-identity --query Account --output text 2>&1); then
    fail "no usable AWS credentials (configure them with aws configure, AWS_PROFILE or aws sso login): ${account}"
fi
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region || true)}}"
[ -n "$region" ] || fail "no AWS region: set AWS_REGION or configure a default region"
echo "deploy: account ${account}, region ${region}, stack ${STACK_NAME}"

# Build both Lambdas for Graviton (provided.al2023, arm64).
cargo lambda build --release --arm64 --output-format zip --package transform_lambda --package consumer_lambda
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

# A private, encrypted bucket for the zips.
artifacts="${NAME_PREFIX}-artifacts-${account}-${region}"
if ! aws s3api head-bucket --bucket "$artifacts" >/dev/null 2>&1; then
    if [ "$region" = us-east-1 ]; then
        aws s3api create-bucket --bucket "$artifacts" --region "$region" >/dev/null
    else
        aws s3api create-bucket --bucket "$artifacts" --region "$region" \
            --create-bucket-configuration "LocationConstraint=${region}" >/dev/null
    fi
    aws s3api put-public-access-block --bucket "$artifacts" --public-access-block-configuration \
        BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
    aws s3api put-bucket-encryption --bucket "$artifacts" --server-side-encryption-configuration \
        '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}'
fi

# Keys named by content, so a changed binary updates the function.
upload() {
    local zip="${target_dir}/lambda/$1/bootstrap.zip"
    [ -f "$zip" ] || fail "cargo lambda did not produce ${zip}"
    local key="$1/$(sha256sum "$zip" | cut -c1-16).zip"
    aws s3 cp --only-show-errors "$zip" "s3://${artifacts}/${key}" >&2
    echo "$key"
}
transform_key=$(upload transform_lambda)
consumer_key=$(upload consumer_lambda)

aws cloudformation deploy \
    --template-file infra/template.yaml \
    --stack-name "$STACK_NAME" \
    --capabilities CAPABILITY_NAMED_IAM \
    --no-fail-on-empty-changeset \
    --parameter-overrides \
    "NamePrefix=${NAME_PREFIX}" \
    "ArtifactBucket=${artifacts}" \
    "TransformCodeKey=${transform_key}" \
    "ConsumerCodeKey=${consumer_key}" \
    "$@"

aws cloudformation describe-stacks --stack-name "$STACK_NAME" \
    --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output table
stream=$(aws cloudformation describe-stacks --stack-name "$STACK_NAME" \
    --query "Stacks[0].Outputs[?OutputKey=='StreamName'].OutputValue" --output text)
lake=$(aws cloudformation describe-stacks --stack-name "$STACK_NAME" \
    --query "Stacks[0].Outputs[?OutputKey=='Lake'].OutputValue" --output text)
cat <<NEXT

Send data:   cargo run --bin producer -- --stream ${stream} --generate weather --count 1000
Read it:     cargo run --bin query -- --lake ${lake} partitions
Tear down:   STACK_NAME=${STACK_NAME} infra/teardown.sh --empty-bucket
NEXT
