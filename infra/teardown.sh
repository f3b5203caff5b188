#!/usr/bin/env bash
# Deletes the streamlake stack. The lake bucket is kept (DeletionPolicy: Retain) unless
# --empty-bucket is given: then it is emptied (every version) and deleted as well.
#
# Usage: infra/teardown.sh [--empty-bucket]
# Environment: STACK_NAME (default streamlake) and the standard AWS configuration.
set -euo pipefail

STACK_NAME="${STACK_NAME:-streamlake}"
empty_bucket=false
case "${1:-}" in
    --empty-bucket) empty_bucket=true ;;
    "") ;;
    *) echo "usage: $0 [--empty-bucket]" >&2; exit 2 ;;
esac

fail() {
    echo "teardown: $*" >&2
    exit 1
}
command -v aws >/dev/null || fail "the AWS CLI is missing: pip install awscli (or see https://aws.amazon.com/cli/)"
if ! account=$(aws sts get-caller-identity --query Account --output text 2>&1); then
    fail "no usable AWS credentials (configure them with aws configure, AWS_PROFILE or aws sso login): ${account}"
fi

bucket=$(aws cloudformation describe-stacks --stack-name "$STACK_NAME" \
    --query "Stacks[0].Outputs[?OutputKey=='LakeBucket'].OutputValue" --output text) ||
    fail "stack ${STACK_NAME} not found in account ${account}"

echo "teardown: deleting stack ${STACK_NAME}"
aws cloudformation delete-stack --stack-name "$STACK_NAME"
aws cloudformation wait stack-delete-complete --stack-name "$STACK_NAME"

if $empty_bucket; then
    echo "teardown: emptying and deleting s3://${bucket}"
    # Every version and delete marker, a thousand at a time.
    batch=$(mktemp)
    while true; do
        aws s3api list-object-versions --bucket "$bucket" --max-items 1000 --output json \
            --query '{Objects: [Versions, DeleteMarkers][][].{Key: Key, VersionId: VersionId}, Quiet: `true`}' >"$batch"
        grep -q '"Key"' "$batch" || break
        aws s3api delete-objects --bucket "$bucket" --delete "file://${batch}" >/dev/null
    done
    rm -f "$batch"
    aws s3api delete-bucket --bucket "$bucket"
else
    echo "teardown: kept s3://${bucket} (run again with --empty-bucket to delete it)"
fi
