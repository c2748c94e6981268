"""Every part of the service, built from the settings on first use and closed if built.

A command builds only what it touches: ``callrec keys status`` opens the database and
the keys, never the media workers, the identity provider or the platforms' callbacks.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar, overload
from urllib.parse import urlsplit

import storage
from config.adopted_keys import keys_in_data_directory, warn_of_files_not_adopted
from config.auth import build_oidc_sign_in, build_verifier
from config.providers import TELNYX, TWILIO, VONAGE, provider_origins
from config.settings import Settings
from config.siprec_settings import listen_address, stream_listens
from recorder import (
    RENDITION_NICENESS,
    FetchWorkers,
    Intake,
    MediaWorkers,
    PushCapture,
    RedactedCopies,
    RenditionWorkers,
    SafeFetcher,
    SenderAllowList,
    SpooledCapture,
    TelnyxAccount,
    TelnyxCallbacks,
    TelnyxSignature,
    TwilioAccount,
    TwilioCallbacks,
    TwilioSignature,
    VonageAccount,
    VonageCallbacks,
    VonageSignature,
)
from recorder.siprec import AdmissionPolicy, SiprecServer
from recorder.siprec.ports import PortRange
from recorder.siprec.recordings import ExtensionRules, SiprecRecordings
from retention import ErasureDesk, HoldDesk, SubjectAccessOffice
from retrieval import (
    GrantSigner,
    OidcSignIn,
    PlaybackJournal,
    SessionRules,
    TokenVerifier,
    WebSessions,
)
from storage import (
    AnchorLock,
    AuditAnchors,
    AuditLog,
    AuditTrail,
    CaseCoverage,
    Database,
    DeletionLedger,
    EpochKeys,
    ErasureRequests,
    FetchQueue,
    FilesystemObjectStore,
    KeyChain,
    KmsKeyWrapper,
    LocalKeyring,
    ObjectStore,
    ReceiptSigner,
    Reconciliation,
    RecordingAudio,
    RecordingCatalog,
    RecordingDeleter,
    RecordingHolds,
    RecordingStore,
    RenditionQueue,
    RenditionStore,
    SessionStore,
    SharedKeys,
    SharedSecrets,
    SignedRecords,
    SpoolDirectory,
    StorageError,
    SubjectAccessCases,
    UnlinkedRecordings,
    create_engine,
    reconcile_with_anchors,
)

_T = TypeVar("_T")
log = logging.getLogger("callrec")


class part(functools.cached_property[_T]):
    """A part of ``Services``: built on first access, then noted in the owner's ``built``."""

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> _T: ...

    def __get__(self, instance: object | None, owner: type[Any] | None = None) -> _T | Self:
        if instance is None:
            return self
        # Only the first access lands here: the value then lives in the instance's dict.
        value = super().__get__(instance, owner)
        instance.built.append(str(self.attrname))  # type: ignore[attr-defined]
        return value


def utc_now() -> datetime:
    """The service clock: aware UTC."""
    return datetime.now(UTC)


def build_object_store(store_url: str) -> ObjectStore:
    """``file:///path`` or ``s3://bucket/prefix`` to a store; no I/O happens here."""
    parts = urlsplit(store_url)
    if parts.scheme == "file":
        return FilesystemObjectStore(Path(parts.path))
    # Looked up at call time, so boto3 is only loaded by services that use S3.
    return storage.S3ObjectStore.connect(parts.netloc, parts.path.strip("/"))


class Services:
    """Every part the app and the commands use, each built on first access.

    ``built`` names the parts built so far, in order; ``close`` releases only those, so
    a command that never touched the media workers never starts or stops them.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self.built: list[str] = []
        self.reconciled = False
        """Whether the database was compared with the anchors since start (see below)."""

    def provide(self, **parts: object) -> None:
        """Use these ready-made parts instead of building them; whoever made them closes them.

        For a process that runs several services over one pool of worker processes (the
        test suite does, rather than start a pool per service).
        """
        for name, value in parts.items():
            if not isinstance(getattr(type(self), name, None), part):
                raise AttributeError(f"Services has no part named {name!r}")
            if name in self.__dict__:
                raise ValueError(f"the part {name!r} is already in use")
            self.__dict__[name] = value

    @part
    def database(self) -> Database:
        return Database(create_engine(self.settings.resolved_database_url))

    @part
    def objects(self) -> ObjectStore:
        return build_object_store(self.settings.resolved_store_url)

    @part
    def keyring(self) -> KeyChain:
        directory = self.settings.data_dir / "keyring"
        if self.settings.kms_key_id:
            # What a local keyring wrapped before the KMS stays readable; none is made.
            had_keys = directory.is_dir() and any(directory.glob("*.key"))
            older = [LocalKeyring.open(directory, create=False)] if had_keys else []
            return KeyChain(KmsKeyWrapper.connect(self.settings.kms_key_id), older)
        return KeyChain(LocalKeyring.open(directory))

    @part
    def audit(self) -> AuditTrail:
        return AuditTrail(self.clock)

    @part
    def keys(self) -> EpochKeys:
        return EpochKeys(
            database=self.database,
            material=build_object_store(self.settings.resolved_epoch_key_store_url),
            root=self.keyring,
            audit=self.audit,
            clock=self.clock,
            retention_period=self.settings.retention_period,
        )

    @part
    def recordings(self) -> RecordingStore:
        return RecordingStore(
            database=self.database,
            objects=self.objects,
            keys=self.keys,
            audit=self.audit,
            clock=self.clock,
            phone_region=self.settings.phone_region,
        )

    @part
    def spool(self) -> SpoolDirectory:
        return SpoolDirectory(self.settings.data_dir / "spool")

    @part
    def media(self) -> MediaWorkers:
        return MediaWorkers(
            workers=self.settings.media_workers,
            max_channels=self.settings.max_audio_channels,
            job_deadline_s=self.settings.media_job_deadline.total_seconds(),
        )

    @part
    def rendition_media(self) -> MediaWorkers:
        """The renditions' own pool, at a lower CPU priority than the captures' checks."""
        return MediaWorkers(
            workers=self.settings.rendition_workers,
            max_channels=self.settings.max_audio_channels,
            job_deadline_s=self.settings.media_job_deadline.total_seconds(),
            niceness=RENDITION_NICENESS,
        )

    @part
    def storing(self) -> SpooledCapture:
        return SpooledCapture(
            self.recordings, self.media, rendition_queued=self.rendition_workers.wake
        )

    @part
    def rendition_queue(self) -> RenditionQueue:
        return RenditionQueue(database=self.database, audit=self.audit, clock=self.clock)

    @part
    def renditions(self) -> RenditionStore:
        return RenditionStore(
            database=self.database,
            objects=self.objects,
            keys=self.keys,
            queue=self.rendition_queue,
            clock=self.clock,
        )

    @part
    def rendition_workers(self) -> RenditionWorkers:
        return RenditionWorkers(
            queue=self.rendition_queue,
            store=self.renditions,
            media=self.rendition_media,
            scratch_dir=self.spool.path,
            clock=self.clock,
            workers=self.settings.rendition_workers,
        )

    @part
    def capture(self) -> PushCapture:
        settings = self.settings
        return PushCapture(
            recordings=self.recordings,
            storing=self.storing,
            secrets=settings.push_secret_bytes(),
            spool_dir=self.spool.path,
            retention_period=settings.retention_period,
            clock=self.clock,
            max_body_bytes=settings.max_upload_bytes,
            max_concurrent=settings.max_concurrent_pushes,
            max_unauthenticated=settings.max_unauthenticated_pushes,
        )

    @part
    def senders(self) -> SenderAllowList:
        settings = self.settings
        return SenderAllowList(
            push=settings.push_allowed_senders,
            providers=settings.provider_allowed_senders,
            trusted_proxies=settings.trusted_proxies,
            push_sources=settings.push_secrets,
        )

    @part
    def audit_log(self) -> AuditLog:
        return AuditLog(self.database, self.audit)

    @part
    def fetch_queue(self) -> FetchQueue:
        return FetchQueue(
            database=self.database,
            audit=self.audit,
            clock=self.clock,
            max_attempts=self.settings.fetch_max_attempts,
            first_delay=self.settings.fetch_first_retry,
            lease=self.settings.fetch_lease,
        )

    @part
    def fetcher(self) -> SafeFetcher:
        return SafeFetcher(
            provider_origins(self.settings), max_bytes=self.settings.max_upload_bytes
        )

    @part
    def fetch_workers(self) -> FetchWorkers:
        return FetchWorkers(
            queue=self.fetch_queue,
            fetcher=self.fetcher,
            storing=self.storing,
            recordings=self.recordings,
            audit=self.audit_log,
            spool_dir=self.spool.path,
            retention_period=self.settings.retention_period,
            clock=self.clock,
            workers=self.settings.fetch_workers,
        )

    def _intake(self, provider: str) -> Intake:
        return Intake(
            provider=provider,
            jobs=self.fetch_queue,
            audit=self.audit_log,
            url_allowed=functools.partial(self.fetcher.allowed, provider),
            clock=self.clock,
            wake=self.fetch_workers.wake,
        )

    @part
    def twilio(self) -> TwilioCallbacks | None:
        settings = self.settings
        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            return None
        return TwilioCallbacks(
            account=TwilioAccount(
                account_sid=settings.twilio_account_sid,
                signature=TwilioSignature(settings.twilio_auth_token.get_secret_value()),
                media_format=settings.twilio_media_format,
                delete_after_store=settings.twilio_delete_recordings,
            ),
            intake=self._intake(TWILIO),
            public_url=settings.public_url,
        )

    @part
    def telnyx(self) -> TelnyxCallbacks | None:
        settings = self.settings
        if not settings.telnyx_public_key:
            return None
        return TelnyxCallbacks(
            account=TelnyxAccount(
                signature=TelnyxSignature(settings.telnyx_public_key),
                media_format=settings.telnyx_media_format,
                delete_base=settings.telnyx_api_base if settings.telnyx_api_key else None,
            ),
            intake=self._intake(TELNYX),
        )

    @part
    def vonage(self) -> VonageCallbacks | None:
        settings = self.settings
        if not settings.vonage_signature_secret:
            return None
        return VonageCallbacks(
            account=VonageAccount(
                VonageSignature(settings.vonage_signature_secret.get_secret_value()),
                delete_after_store=settings.vonage_delete_recordings,
            ),
            intake=self._intake(VONAGE),
        )

    async def load_shared_keys(self) -> SharedKeys:
        """The secrets every replica shares, from the database (created there on first use).

        Called before building the app or signing receipts: the parts that sign and check
        grants, tokens and receipts are built from what this returns.
        """
        if "shared_keys" not in self.__dict__:
            # An existing data directory's files are adopted where the database has none.
            adopted = keys_in_data_directory(self.settings.data_dir)
            secrets = SharedSecrets(self.database, self.keyring, self.audit, self.clock)
            shared = await secrets.open(adopted)
            warn_of_files_not_adopted(adopted, shared)
            self.__dict__["shared_keys"] = shared
            self.built.append("shared_keys")
        loaded: SharedKeys = self.__dict__["shared_keys"]
        return loaded

    @part
    def shared_keys(self) -> SharedKeys:
        raise RuntimeError("the shared keys come from the database: await load_shared_keys()")

    async def receipt_signer(self) -> ReceiptSigner:
        """The receipt signer, loading the shared keys first if need be."""
        await self.load_shared_keys()
        return self.receipts

    @part
    def receipts(self) -> ReceiptSigner:
        return ReceiptSigner(self.shared_keys.receipt_key)

    @part
    def grant_secret(self) -> bytes:
        return self.shared_keys.grant_secret

    @part
    def tokens(self) -> TokenVerifier:
        if self.settings.auth_mode == "dev":
            return build_verifier(self.settings, self.shared_keys.dev_token_key.public_pem)
        return build_verifier(self.settings)

    @part
    def sessions(self) -> WebSessions:
        return WebSessions(
            SessionStore(self.database, self.clock),
            SessionRules(
                idle=self.settings.session_idle_timeout, lifetime=self.settings.session_max_age
            ),
        )

    @part
    def catalog(self) -> RecordingCatalog:
        return RecordingCatalog(self.database)

    @part
    def audio(self) -> RecordingAudio:
        return RecordingAudio(self.database, self.objects, self.keys)

    @part
    def grants(self) -> GrantSigner:
        return GrantSigner(self.grant_secret)

    @part
    def oidc_sign_in(self) -> OidcSignIn | None:
        return build_oidc_sign_in(self.settings, self.tokens, self.grant_secret)

    @part
    def journal(self) -> PlaybackJournal:
        return PlaybackJournal(
            self.audit_log, idle_s=self.settings.playback_summary_after.total_seconds()
        )

    @part
    def anchor_objects(self) -> ObjectStore:
        if self.settings.resolved_anchor_store_url == self.settings.resolved_store_url:
            return self.objects
        return build_object_store(self.settings.resolved_anchor_store_url)

    @part
    def anchor_records(self) -> SignedRecords:
        return SignedRecords(
            self.anchor_objects,
            self.receipt_signer,
            clock=self.clock,
            lock=AnchorLock(self.settings.anchor_lock_mode, self.settings.anchor_lock_period),
        )

    @part
    def anchors(self) -> AuditAnchors:
        return AuditAnchors(
            database=self.database,
            records=self.anchor_records,
            clock=self.clock,
            replica=socket.gethostname(),
        )

    async def checkpoint_after_deletions(self) -> None:
        """Anchor the head once a deletion batch is on the record.

        A failure here takes nothing back: the deletions stand, and the scheduled
        checkpoint anchors them within its interval; so it is logged, not raised.
        """
        try:
            await self.anchors.checkpoint()
        except StorageError:
            log.error("could not write the audit checkpoint after deletions", exc_info=True)

    @part
    def deleter(self) -> RecordingDeleter:
        return RecordingDeleter(
            database=self.database,
            objects=self.objects,
            audit=self.audit,
            receipts=self.receipt_signer,
            clock=self.clock,
            after_batch=self.checkpoint_after_deletions,
            ledger=self.ledger,
        )

    @part
    def ledger(self) -> DeletionLedger:
        return DeletionLedger(self.anchor_records, self.anchors.trusted_keys)

    async def reconcile_with_anchors(self) -> Reconciliation:
        """Re-apply the deletions a restored database lacks, before anything is served.

        Remembers that it finished: when the database or the store was unreachable at
        start-up, the deletion ledger's job runs it again until it does.
        """
        report = await reconcile_with_anchors(
            database=self.database, anchors=self.anchors, ledger=self.ledger, deleter=self.deleter
        )
        self.reconciled = True
        return report

    @part
    def holds(self) -> HoldDesk:
        return HoldDesk(
            RecordingHolds(
                database=self.database, objects=self.objects, audit=self.audit, clock=self.clock
            ),
            clock=self.clock,
            max_review=self.settings.hold_max_review,
        )

    @part
    def erasures(self) -> ErasureDesk:
        return ErasureDesk(
            ErasureRequests(
                database=self.database, audit=self.audit, deleter=self.deleter, clock=self.clock
            ),
            self.deleter,
            approvals=self.settings.erasure_approvals,
        )

    @part
    def unlinked(self) -> UnlinkedRecordings:
        return UnlinkedRecordings(self.database, self.audit, self.clock)

    @part
    def siprec(self) -> SiprecRecordings:
        settings = self.settings
        assert settings.siprec_media_address is not None  # checked with the settings
        return SiprecRecordings(
            self.storing,
            spool_dir=self.spool.path,
            host=settings.siprec_media_address,
            retention_period=settings.retention_period,
            rules=ExtensionRules.from_mapping(settings.siprec_extension_fields),
            rtp_timeout_s=settings.siprec_rtp_timeout.total_seconds(),
            ports=PortRange.parse(settings.siprec_rtp_ports),
        )

    @part
    def siprec_server(self) -> SiprecServer:
        settings = self.settings
        assert settings.siprec_listen is not None
        assert settings.siprec_media_address
        listen = listen_address(settings.siprec_listen)
        server = SiprecServer(
            self.siprec,
            host=listen.host,
            port=listen.port,
            media_address=settings.siprec_media_address,
            policy=AdmissionPolicy.from_cidrs(
                settings.siprec_allowed_sources, max_sessions=settings.siprec_max_sessions
            ),
            streams=stream_listens(settings.siprec_streams),
        )
        self.siprec.when_media_ends(server.end_session)
        return server

    @part
    def redacted_copies(self) -> RedactedCopies:
        # The capture pool: a redaction is rare and fast (10 minutes of stereo in 0.4 s of
        # CPU), and that pool always has a worker, where the rendition pool may have none.
        return RedactedCopies(
            originals=self.renditions, media=self.media, scratch_dir=self.spool.path
        )

    @part
    def subject_access(self) -> SubjectAccessOffice:
        return SubjectAccessOffice(
            SubjectAccessCases(database=self.database, audit=self.audit, clock=self.clock),
            CaseCoverage(database=self.database, clock=self.clock),
            self.catalog,
            RecordingHolds(
                database=self.database, objects=self.objects, audit=self.audit, clock=self.clock
            ),
            clock=self.clock,
        )

    async def close(self) -> None:
        """Release the connections, clients and worker processes that were built.

        Closed parts are forgotten from ``built``, so a second ``close`` does nothing.
        """
        built = set(self.built)
        self.built.clear()
        if "media" in built:
            await asyncio.to_thread(self.media.close)
        if "rendition_media" in built:
            await asyncio.to_thread(self.rendition_media.close)
        if "spool" in built:
            self.spool.release()
        if "anchor_objects" in built and self.anchor_objects is not self.__dict__.get("objects"):
            await self.anchor_objects.close()
        if "objects" in built:
            await self.objects.close()
        if "database" in built:
            await self.database.dispose()


def build_services(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Services:
    """The parts for ``settings``; nothing is built, opened or connected until first use."""
    return Services(settings, clock=clock)
