"""Keys: the root keyring and its providers (local, KMS), retention-epoch keys with their
rotation and shredding, and the signing keys behind receipts and sessions."""
