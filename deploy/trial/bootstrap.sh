#!/bin/sh
# The compose trial's object store and KMS, made ready once: three buckets and a KMS key.
# Runs in the aws-cli image at every `docker compose up` and changes nothing already done,
# using the commands deploy/README.md gives for a real bucket.
set -eu

AUDIO=callrec-audio
EPOCH_KEYS=callrec-epoch-keys
ANCHORS=callrec-anchors

# The store and the KMS start alongside this; give them a minute to answer.
wait_for() {
    tries=0
    until "$@" >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -ge 60 ]; then
            echo "bootstrap: no answer to: $*" >&2
            exit 1
        fi
        sleep 1
    done
}

make_bucket() {
    bucket=$1
    shift
    if aws s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
        return 0
    fi
    aws s3api create-bucket --bucket "$bucket" \
        --create-bucket-configuration "LocationConstraint=$AWS_DEFAULT_REGION" "$@" >/dev/null
    echo "bootstrap: made bucket $bucket"
}

wait_for aws s3api list-buckets
wait_for aws kms list-keys

# Recordings: versioned (each deletion names its version), with the lifecycle backstop.
make_bucket "$AUDIO"
aws s3api put-bucket-versioning --bucket "$AUDIO" \
    --versioning-configuration Status=Enabled
aws s3api put-bucket-lifecycle-configuration --bucket "$AUDIO" \
    --lifecycle-configuration file:///bootstrap/s3-lifecycle.json

# Epoch keys: a bucket of their own, versioned, never expired by a rule.
make_bucket "$EPOCH_KEYS"
aws s3api put-bucket-versioning --bucket "$EPOCH_KEYS" \
    --versioning-configuration Status=Enabled

# Audit checkpoints and the deletion ledger: created with Object Lock (which versions it).
make_bucket "$ANCHORS" --object-lock-enabled-for-bucket

# The root key: made by the KMS, never seen here, found again by its alias.
if ! aws kms describe-key --key-id "$KMS_ALIAS" >/dev/null 2>&1; then
    key_id=$(aws kms create-key --description "callrec trial root key" \
        --query KeyMetadata.KeyId --output text)
    aws kms create-alias --alias-name "$KMS_ALIAS" --target-key-id "$key_id"
    echo "bootstrap: made KMS key $KMS_ALIAS"
fi

echo "bootstrap: store and KMS ready"
