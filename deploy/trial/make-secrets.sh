#!/bin/sh
# Random secrets for the compose trial, one file each in deploy/trial/secrets/ (never
# committed). Run once before the first `docker compose up`; an existing file is kept,
# so running it again changes nothing.
#
# The folder is readable by its owner only; the files in it are world-readable so that
# the containers' own users (callrec's uid 10001 among them) can read the copy compose
# mounts at /run/secrets/<name>, which is all they see of it.
set -eu
umask 077
dir=$(dirname "$0")/secrets
mkdir -p "$dir"
chmod 700 "$dir"

random() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

write() {
    if [ ! -e "$dir/$1" ]; then
        printf '%s\n' "$2" > "$dir/$1"
        chmod 444 "$dir/$1"
        echo "wrote $dir/$1"
    fi
}

write postgres_password "$(random)"
write database_url "postgresql://callrec:$(cat "$dir/postgres_password")@postgres:5432/callrec"
write minio_root_user "callrec-$(random | cut -c1-12)"
write minio_root_password "$(random)"
write aws_credentials "[default]
aws_access_key_id = $(cat "$dir/minio_root_user")
aws_secret_access_key = $(cat "$dir/minio_root_password")"
write push_secrets "pbx1=$(random)"
