"""The subject access bundle: one encrypted, signed file per case, and its offline check.

Writing: ``write_bundle(entries, case=, created_at=, signer=, encryption=, sink=)`` with
``BundleEntry``/``json_entry``/``bytes_entry``, ``ToRecipients``/``ToPassphrase`` and a
sink such as ``private_bundle_file(path)``. Checking: ``verify_bundle``. The layout is in
``format`` and docs/subject-access-bundle.md.
"""

from __future__ import annotations

from retrieval.sar_bundle.age import (
    PASSPHRASE_LIMIT_BYTES,
    Decryption,
    Encryption,
    ToPassphrase,
    ToRecipients,
    WithIdentities,
    WithPassphrase,
    read_identities,
)
from retrieval.sar_bundle.errors import (
    BundleError,
    BundleInvalid,
    BundleRefused,
    BundleUnopenable,
)
from retrieval.sar_bundle.format import FORMAT, MANIFEST_NAME, BundleCase, MemberDigest
from retrieval.sar_bundle.sinks import private_bundle_file
from retrieval.sar_bundle.verifier import BundleReport, trusted_keys, verify_bundle
from retrieval.sar_bundle.writer import (
    BundleEntry,
    BundleSink,
    BundleSummary,
    bytes_entry,
    json_entry,
    write_bundle,
)

__all__ = [
    "FORMAT",
    "MANIFEST_NAME",
    "PASSPHRASE_LIMIT_BYTES",
    "BundleCase",
    "BundleEntry",
    "BundleError",
    "BundleInvalid",
    "BundleRefused",
    "BundleReport",
    "BundleSink",
    "BundleSummary",
    "BundleUnopenable",
    "Decryption",
    "Encryption",
    "MemberDigest",
    "ToPassphrase",
    "ToRecipients",
    "WithIdentities",
    "WithPassphrase",
    "bytes_entry",
    "json_entry",
    "private_bundle_file",
    "read_identities",
    "trusted_keys",
    "verify_bundle",
    "write_bundle",
]
