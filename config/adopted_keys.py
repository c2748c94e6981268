"""The secrets a data directory kept in files before the database kept them, for adopting.

Read only so that an existing installation's links, tokens and receipts still verify
after the move to shared secrets; a new data directory has none of these files and
nothing here makes them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from storage import AdoptedKeys, SharedKeys, SigningKey, load_secret, load_signing_key

log = logging.getLogger("callrec")

GRANT_KEY = "keyring/grant-signing.secret"
DEV_SIGNING_KEY = "dev-signing-key.pem"
RECEIPT_KEY = "keyring/receipt-signing-key.pem"


def keys_in_data_directory(data_dir: Path) -> AdoptedKeys:
    """What ``data_dir`` holds of the old files; a file that is there but unsafe is an error."""
    grant = data_dir / GRANT_KEY
    return AdoptedKeys(
        grant_secret=load_secret(grant, create=False) if grant.exists() else None,
        dev_token_key=_signing_key(data_dir / DEV_SIGNING_KEY),
        receipt_key=_signing_key(data_dir / RECEIPT_KEY),
    )


def _signing_key(path: Path) -> SigningKey | None:
    return load_signing_key(path, create=False) if path.exists() else None


def warn_of_files_not_adopted(adopted: AdoptedKeys, shared: SharedKeys) -> None:
    """Log each file of this data directory that the database's secret overrode.

    Another replica (or an earlier start elsewhere) made the shared secret first: what this
    directory's own file signed no longer verifies, except receipts (its public key is
    listed). Worth a warning, never a refusal: links and dev tokens are short-lived.
    """
    differing = []
    if adopted.grant_secret is not None and adopted.grant_secret != shared.grant_secret:
        differing.append(GRANT_KEY)
    if adopted.dev_token_key is not None and (
        adopted.dev_token_key.key_id != shared.dev_token_key.key_id
    ):
        differing.append(DEV_SIGNING_KEY)
    if adopted.receipt_key is not None and (
        adopted.receipt_key.key_id != shared.receipt_key.key_id
    ):
        differing.append(RECEIPT_KEY)
    if differing:
        log.warning(
            "the database's shared secrets are used instead of this data directory's own",
            extra={"files": differing},
        )
