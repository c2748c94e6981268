"""Persistence: encrypted objects, their keys, recording metadata and the audit trail.

Other packages import from here, never from the modules inside; this package imports
none of its siblings.
"""

from typing import TYPE_CHECKING

from storage.audit import AuditLog, AuditRecord, AuditTrail, verify_audit_chain
from storage.blobs import FilesystemObjectStore, ObjectStore
from storage.catalog import RecordingCatalog, RecordingView, SearchQuery
from storage.database import (
    Database,
    check_database,
    create_engine,
    create_sessionmaker,
    upgrade_database,
)
from storage.deletion import DueRecording, RecordingDeleter, RetentionFacts
from storage.errors import (
    AuditChainBroken,
    DatabaseUnavailable,
    IntegrityFailure,
    KeyringError,
    ObjectExists,
    ObjectMissing,
    StorageError,
    StoreUnavailable,
    Unavailable,
)
from storage.keyring import KeyWrapper, LocalKeyring
from storage.playback import AudioInfo, OpenAudio, RecordingAudio
from storage.recordings import (
    AudioFacts,
    CaptureInProgress,
    CaptureOutcome,
    NewRecording,
    RecordingStore,
)
from storage.referrals import ReferralLinks
from storage.signing import SigningKey, load_secret, load_signing_key
from storage.spool import EncryptedSpool, SpoolDirectory, SpoolFacts, sweep_spool

__all__ = [
    "AudioFacts",
    "AudioInfo",
    "AuditChainBroken",
    "AuditLog",
    "AuditRecord",
    "AuditTrail",
    "CaptureInProgress",
    "CaptureOutcome",
    "Database",
    "DatabaseUnavailable",
    "DueRecording",
    "EncryptedSpool",
    "FilesystemObjectStore",
    "IntegrityFailure",
    "KeyWrapper",
    "KeyringError",
    "LocalKeyring",
    "NewRecording",
    "ObjectExists",
    "ObjectMissing",
    "ObjectStore",
    "OpenAudio",
    "RecordingAudio",
    "RecordingCatalog",
    "RecordingDeleter",
    "RecordingStore",
    "RecordingView",
    "ReferralLinks",
    "RetentionFacts",
    "S3ObjectStore",
    "SearchQuery",
    "SigningKey",
    "SpoolDirectory",
    "SpoolFacts",
    "StorageError",
    "StoreUnavailable",
    "Unavailable",
    "check_database",
    "create_engine",
    "create_sessionmaker",
    "load_secret",
    "load_signing_key",
    "sweep_spool",
    "upgrade_database",
    "verify_audit_chain",
]

if TYPE_CHECKING:
    from storage.s3 import S3ObjectStore


def __getattr__(name: str) -> object:
    # boto3 costs about 10 MB and a tenth of a second at start-up; a service on the
    # filesystem store never pays for it.
    if name == "S3ObjectStore":
        from storage.s3 import S3ObjectStore

        return S3ObjectStore
    raise AttributeError(f"module 'storage' has no attribute {name!r}")
