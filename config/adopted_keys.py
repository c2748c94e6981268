"""The secrets a data directory kept in files before the database kept them, for adopting.

Read only so that an existing installation's links, tokens and receipts still verify
after the move to shared secrets; a new data directory has none of these files and
nothing here makes them.
"""

from __future__ import annotations

from pathlib import Path

from storage import AdoptedKeys, SigningKey, load_secret, load_signing_key

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
