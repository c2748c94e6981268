"""Persistence: encrypted objects, their keys, recording metadata and the audit trail.

Its rooms: ``objects`` (where ciphertext lives: filesystem, S3), ``crypto`` (the SGRC
format, the spool and sealed writer, the one verified reader), ``keys`` (root, epoch and
signing keys) and ``db`` (engine, models, migrations, repositories). The modules at this
level are what works on whole recordings across them: capture, playback, the scrub,
holds, deletion, the audit trail and the shared vocabulary.

Other packages import from here, never from the modules inside; this package imports
none of its siblings.
"""

from typing import TYPE_CHECKING

from storage.anchors.checkpoints import AuditAnchors, Checkpoint, compare_with_checkpoint
from storage.anchors.ledger import DeletionLedger, LedgerEntry
from storage.anchors.reconcile import Reconciliation, reconcile_with_anchors
from storage.anchors.records import AnchorLock, LockMode, SignedRecords
from storage.audit import (
    AuditEntry,
    AuditLog,
    AuditQuery,
    AuditRecord,
    AuditTrail,
    verify_audit_chain,
)
from storage.crypto.file_reader import EncryptedFileReader
from storage.crypto.sealed_writer import SealedFile, SealedFileWriter
from storage.crypto.spool import EncryptedSpool, SpoolDirectory, SpoolFacts, sweep_spool
from storage.crypto.verified_reader import StoredCiphertext, VerifiedObject, open_verified
from storage.db.call_accesses import CallAccess, CallAccesses, CallAccessQuery
from storage.db.catalog import (
    CopyState,
    PlaybackCopy,
    RecordingCatalog,
    RecordingView,
    SearchQuery,
)
from storage.db.database import (
    Database,
    check_database,
    create_engine,
    create_sessionmaker,
    upgrade_database,
)
from storage.db.fetch_queue import ClaimedFetch, FetchQueue, QueuedFetch
from storage.db.peaks import PeakReader, Peaks
from storage.db.referrals import ReferralLinks
from storage.db.rendition_queue import (
    ClaimedRendition,
    RenditionBacklog,
    RenditionQueue,
    RenditionStatus,
)
from storage.db.unlinked import (
    NO_REFERRAL_ACTION,
    NoReferralDecision,
    UnlinkedCount,
    UnlinkedQuery,
    UnlinkedRecording,
    UnlinkedRecordings,
)
from storage.db.web_sessions import SessionFacts, SessionStore
from storage.deletion import DueRecording, RecordingDeleter, RetentionFacts
from storage.erasure_requests import ErasureRequests, ErasureRequestView
from storage.errors import (
    AnchorInvalid,
    AnchorMismatch,
    AuditChainBroken,
    CaseClosed,
    CaseExists,
    CaseMissing,
    DatabaseNotMigrated,
    DatabaseUnavailable,
    ErasureAlreadyRequested,
    ErasureRequestDecided,
    ErasureRequestMissing,
    IntegrityFailure,
    KeyringError,
    KeyShareMissing,
    NothingToAccept,
    NotInCase,
    NotStored,
    ObjectExists,
    ObjectMissing,
    ReceiptInvalid,
    RecordingHeld,
    StorageError,
    StoreUnavailable,
    TriageSettled,
    Unavailable,
)
from storage.holds import HoldView, RecordingHolds, in_force
from storage.keys.epochs import (
    HOLD_EPOCH,
    DataKeys,
    EpochKeys,
    KeyStatus,
    RewrapReport,
    ShredReport,
    epoch_of,
)
from storage.keys.key_shares import KeyShare, KeyShares, share_key_for, unmask
from storage.keys.keyring import KeyWrapper, LocalKeyring
from storage.keys.kms import KmsKeyWrapper
from storage.keys.providers import KeyChain, KeyProvider
from storage.keys.receipts import ReceiptSigner, verify_deletion_receipts, verify_receipt
from storage.keys.shared_secrets import (
    AdoptedKeys,
    SharedKeys,
    SharedSecrets,
    receipt_public_keys,
)
from storage.keys.signing import SigningKey, load_secret, load_signing_key, public_key_id
from storage.objects.filesystem import FilesystemObjectStore
from storage.objects.store import RECORDINGS_PREFIX, ObjectLock, ObjectStore, ObjectVersion
from storage.phone_numbers import as_stored, e164, known_region
from storage.playback import AudioInfo, OpenAudio, RecordingAudio
from storage.recordings import (
    ORIGINAL,
    PLAYBACK,
    AudioFacts,
    CaptureInProgress,
    CaptureOutcome,
    NewRecording,
    RecordingStore,
)
from storage.renditions import OriginalCopy, RenditionStore
from storage.scrubber import PROBLEMS as SCRUB_PROBLEMS
from storage.scrubber import Scrubber, ScrubReport
from storage.subject_access import CaseRecording, CaseView, SubjectAccessCases
from storage.subject_access_holds import CaseCoverage
from storage.vocabulary import (
    HOLD_KINDS,
    MAX_MUTED_RANGES,
    PAST_RETENTION,
    RETENTION_ACTOR,
    SUBJECT_ACCESS_HOLD,
    past_retention,
    retention_deadline,
    rfc3339,
    whole_number,
)

__all__ = [
    "HOLD_EPOCH",
    "HOLD_KINDS",
    "MAX_MUTED_RANGES",
    "NO_REFERRAL_ACTION",
    "ORIGINAL",
    "PAST_RETENTION",
    "PLAYBACK",
    "RECORDINGS_PREFIX",
    "RETENTION_ACTOR",
    "SCRUB_PROBLEMS",
    "SUBJECT_ACCESS_HOLD",
    "AdoptedKeys",
    "AnchorInvalid",
    "AnchorLock",
    "AnchorMismatch",
    "AudioFacts",
    "AudioInfo",
    "AuditAnchors",
    "AuditChainBroken",
    "AuditEntry",
    "AuditLog",
    "AuditQuery",
    "AuditRecord",
    "AuditTrail",
    "CallAccess",
    "CallAccessQuery",
    "CallAccesses",
    "CaptureInProgress",
    "CaptureOutcome",
    "CaseClosed",
    "CaseCoverage",
    "CaseExists",
    "CaseMissing",
    "CaseRecording",
    "CaseView",
    "Checkpoint",
    "ClaimedFetch",
    "ClaimedRendition",
    "CopyState",
    "DataKeys",
    "Database",
    "DatabaseNotMigrated",
    "DatabaseUnavailable",
    "DeletionLedger",
    "DueRecording",
    "EncryptedFileReader",
    "EncryptedSpool",
    "EpochKeys",
    "ErasureAlreadyRequested",
    "ErasureRequestDecided",
    "ErasureRequestMissing",
    "ErasureRequestView",
    "ErasureRequests",
    "FetchQueue",
    "FilesystemObjectStore",
    "HoldView",
    "IntegrityFailure",
    "KeyChain",
    "KeyProvider",
    "KeyShare",
    "KeyShareMissing",
    "KeyShares",
    "KeyStatus",
    "KeyWrapper",
    "KeyringError",
    "KmsKeyWrapper",
    "LedgerEntry",
    "LocalKeyring",
    "LockMode",
    "NewRecording",
    "NoReferralDecision",
    "NotInCase",
    "NotStored",
    "NothingToAccept",
    "ObjectExists",
    "ObjectLock",
    "ObjectMissing",
    "ObjectStore",
    "ObjectVersion",
    "OpenAudio",
    "OriginalCopy",
    "PeakReader",
    "Peaks",
    "PlaybackCopy",
    "QueuedFetch",
    "ReceiptInvalid",
    "ReceiptSigner",
    "Reconciliation",
    "RecordingAudio",
    "RecordingCatalog",
    "RecordingDeleter",
    "RecordingHeld",
    "RecordingHolds",
    "RecordingStore",
    "RecordingView",
    "ReferralLinks",
    "RenditionBacklog",
    "RenditionQueue",
    "RenditionStatus",
    "RenditionStore",
    "RetentionFacts",
    "RewrapReport",
    "S3ObjectStore",
    "ScrubReport",
    "Scrubber",
    "SealedFile",
    "SealedFileWriter",
    "SearchQuery",
    "SessionFacts",
    "SessionStore",
    "SharedKeys",
    "SharedSecrets",
    "ShredReport",
    "SignedRecords",
    "SigningKey",
    "SpoolDirectory",
    "SpoolFacts",
    "StorageError",
    "StoreUnavailable",
    "StoredCiphertext",
    "SubjectAccessCases",
    "TriageSettled",
    "Unavailable",
    "UnlinkedCount",
    "UnlinkedQuery",
    "UnlinkedRecording",
    "UnlinkedRecordings",
    "VerifiedObject",
    "as_stored",
    "check_database",
    "compare_with_checkpoint",
    "create_engine",
    "create_sessionmaker",
    "e164",
    "epoch_of",
    "in_force",
    "known_region",
    "load_secret",
    "load_signing_key",
    "open_verified",
    "past_retention",
    "public_key_id",
    "receipt_public_keys",
    "reconcile_with_anchors",
    "retention_deadline",
    "rfc3339",
    "share_key_for",
    "sweep_spool",
    "unmask",
    "upgrade_database",
    "verify_audit_chain",
    "verify_deletion_receipts",
    "verify_receipt",
    "whole_number",
]

if TYPE_CHECKING:
    from storage.objects.s3 import S3ObjectStore


def __getattr__(name: str) -> object:
    # boto3 costs about 10 MB and a tenth of a second at start-up; a service on the
    # filesystem store never pays for it.
    if name == "S3ObjectStore":
        from storage.objects.s3 import S3ObjectStore

        return S3ObjectStore
    raise AttributeError(f"module 'storage' has no attribute {name!r}")
