#!/usr/bin/env bash
# Builds both Lambdas for arm64, uploads them with the dataset file in the transform's
# package, deploys infra/template.yaml (or, with --dataset, the template rendered for that
# dataset by `streamlake dataset template`), and stores the dataset beside the lake.
#
# Usage: infra/deploy.sh [--dataset FILE|DIR] [--allow-breaking-dataset] [Parameter=Value ...]
#   e.g. infra/deploy.sh OutputFormat=parquet ShardCount=0
#        infra/deploy.sh --dataset examples/unicorns
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

dataset=""
allow_breaking=""
while [ $# -gt 0 ]; do
    case "$1" in
    --dataset)
        [ $# -ge 2 ] || fail "--dataset needs a file or folder"
        dataset="$2"
        shift 2
        ;;
    --allow-breaking-dataset)
        allow_breaking="--allow-breaking"
        shift
        ;;
    *) break ;;
    esac
done

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

# The dataset and its template: checked before anything is built or created.
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
work="${target_dir}/streamlake/deploy"
mkdir -p "$work"
template="infra/template.yaml"
dataset_file="examples/weather/dataset.toml"
if [ -n "$dataset" ]; then
    dataset_file="$dataset"
    [ -d "$dataset" ] && dataset_file="${dataset%/}/dataset.toml"
    template="${work}/template.yaml"
    cargo run --quiet --bin streamlake -- dataset template "$dataset" -o "$template"
fi
cargo run --quiet --bin streamlake -- dataset check "$dataset_file" >&2

# Build both Lambdas for Graviton (provided.al2023, arm64).
cargo lambda build --release --arm64 --output-format zip --package transform_lambda --package consumer_lambda
# Both Lambdas read the dataset at cold start from dataset.toml in their package
# (STREAMLAKE_DATASET in the template, read from LAMBDA_TASK_ROOT).
for function in transform_lambda consumer_lambda; do
    python3 - "${target_dir}/lambda/${function}/bootstrap.zip" "$dataset_file" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "a") as z:
    if "dataset.toml" not in z.namelist():
        z.write(sys.argv[2], "dataset.toml")
PY
done

# A deployed lake keeps its dataset: a change that older objects cannot be read with is
# refused before anything changes, unless --allow-breaking-dataset.
bucket=$(aws cloudformation describe-stacks --stack-name "$STACK_NAME" \
    --query "Stacks[0].Outputs[?OutputKey=='LakeBucket'].OutputValue" --output text 2>/dev/null || true)
if [ -n "$bucket" ] && [ "$bucket" != None ]; then
    cargo run --quiet --bin streamlake -- dataset check "$dataset_file" --bucket "$bucket" \
        $allow_breaking >/dev/null || fail "the dataset cannot replace the one stored with the lake"
fi

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
    --template-file "$template" \
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
# The dataset travels with the lake: query --lake finds it there.
aws s3 cp --only-show-errors "$dataset_file" "${lake}_dataset.toml"
cat <<NEXT

Send data:   cargo run --bin producer -- --stream ${stream} --generate ${dataset_file} --count 1000
Read it:     cargo run --bin query -- --lake ${lake} partitions
Tear down:   STACK_NAME=${STACK_NAME} infra/teardown.sh --empty-bucket
NEXT
