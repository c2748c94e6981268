#!/bin/sh
# `callrec` for an operator of the single-machine install (callrec.service): installed as
# /usr/local/bin/callrec, it runs the real command as the service's user, with the
# service's settings and data directory, so `sudo callrec keys status` sees what the
# service sees and anything it writes (keyring versions, spool files) stays the service's.
set -eu
if [ "$(id -u)" = 0 ]; then
    exec runuser -u callrec -- "$0" "$@"
fi
if [ "$(id -un)" != callrec ]; then
    echo "callrec: run this as root (sudo callrec ...) or as the callrec user" >&2
    exit 2
fi
set -a
. /etc/callrec/callrec.env
set +a
CALLREC_DATA_DIR=/var/lib/callrec
export CALLREC_DATA_DIR
cd /var/lib/callrec
exec /opt/callrec/bin/callrec "$@"
