"""What can go wrong in storage, as facts callers can act on; no HTTP statuses here.

StorageError
├── Unavailable                  a backend (database, object store) cannot be reached: retry later
│   ├── DatabaseUnavailable
│   └── StoreUnavailable
├── ObjectMissing                an object that should exist does not
├── ObjectExists                 a create-only write found the key taken
├── RecordingHeld                a deletion was asked of a recording under a hold
├── NotStored                    the recording is not (or no longer) stored
├── ErasureAlreadyRequested      an erasure request for the recording is pending already
├── ErasureRequestMissing        no erasure request has that id
├── ErasureRequestDecided        the erasure request was approved or rejected already
├── IntegrityFailure             stored bytes or metadata fail authentication or checks
│   └── AuditChainBroken         the audit trail was edited, deleted from or reordered
└── KeyringError                 a key-encryption key is missing, unsafe or wrong
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error raised by the storage package."""


class Unavailable(StorageError):
    """A backend cannot be reached now; the operation may succeed if retried."""


class DatabaseUnavailable(Unavailable):
    """The metadata database cannot be reached."""


class DatabaseNotMigrated(StorageError):
    """The database answers but lacks callrec's tables (or this release's newest ones)."""

    def __init__(self) -> None:
        super().__init__(
            "the database has no callrec tables, or not this release's: "
            "run `callrec db upgrade` first"
        )


class StoreUnavailable(Unavailable):
    """The object store cannot be reached."""


class ObjectMissing(StorageError):
    """The object store holds no object under this key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object under key {key!r}")
        self.key = key


class ObjectExists(StorageError):
    """A create-only write found the key already taken; nothing was overwritten."""

    def __init__(self, key: str) -> None:
        super().__init__(f"an object already exists under key {key!r}")
        self.key = key


class RecordingHeld(StorageError):
    """The recording is under a hold, which must be released before it can be erased."""

    def __init__(self, kinds: list[str]) -> None:
        super().__init__(f"the recording is held ({', '.join(kinds)})")
        self.kinds = kinds


class NotStored(StorageError):
    """The recording is not stored (being deleted, deleted, or never completed)."""


class TriageSettled(StorageError):
    """The recording needs no triage: ``why`` is ``linked`` (it has a referral) or
    ``decided`` (someone already marked it as having none)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"the recording needs no triage ({why})")
        self.why = why


class ErasureAlreadyRequested(StorageError):
    """The recording has an erasure request pending already; it is decided, not repeated."""


class ErasureRequestMissing(StorageError):
    """No erasure request has that id."""


class ErasureRequestDecided(StorageError):
    """The erasure request was approved or rejected already; ``state`` says which."""

    def __init__(self, state: str) -> None:
        super().__init__(f"the request was {state} already")
        self.state = state


class CaseMissing(StorageError):
    """No subject access case has that id."""


class CaseExists(StorageError):
    """A subject access case with that reference is on record already."""


class CaseClosed(StorageError):
    """The subject access case is closed: it is a record now, not work."""


class NotInCase(StorageError):
    """The recording is not one the subject access case covers."""


class IntegrityFailure(StorageError):
    """Stored bytes failed authentication: tampered, truncated, spliced or wrong key."""


class KeyShareMissing(IntegrityFailure):
    """A recording's key share is not in the object store, so its data keys cannot open.

    Its own class so that the scrub can report the share as missing, not as corrupt.
    """


class AuditChainBroken(IntegrityFailure):
    """The audit chain does not verify; ``seq`` names the first bad event."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"audit event {seq}: {reason}")
        self.seq = seq
        self.reason = reason


class ReceiptInvalid(IntegrityFailure):
    """A deletion receipt does not verify; ``seq`` names its audit event."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"receipt at audit event {seq}: {reason}")
        self.seq = seq
        self.reason = reason


class KeyringError(StorageError):
    """A key-encryption key is missing, readable by others, malformed or not the right one."""


class AnchorMismatch(IntegrityFailure):
    """The database's audit chain disagrees with a signed checkpoint kept outside it.

    The message is the one line an operator reads: which checkpoint, and what the
    database lacks or holds differently (a cut tail, a rewritten event, a restore).
    """


class NothingToAccept(StorageError):
    """An operator asked to accept a restore, but the database holds the latest checkpoint."""


class AnchorInvalid(IntegrityFailure):
    """An anchor record (checkpoint or deletion ledger entry) is malformed or not signed
    by a listed key: it proves nothing and is never acted on."""
