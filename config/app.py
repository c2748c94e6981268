"""The composition root: builds every part from the settings and mounts the aiohttp app."""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

import storage
from config.metrics import FetchMetrics, HttpMetrics, IntegrityMetrics, RetentionMetrics
from config.scheduler import SweepSchedule
from config.settings import Settings
from recorder import (
    FetchWorkers,
    Intake,
    MediaWorkers,
    ProviderOrigin,
    PushCapture,
    SafeFetcher,
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
    application_token,
    create_recorder_app,
)
from retention import HoldDesk, attest_if_due, retention_status, sweep_expired_recordings
from retrieval import (
    DevTokenVerifier,
    GrantSigner,
    OidcClient,
    OidcSettings,
    OidcSignIn,
    OidcTokenVerifier,
    PlaybackJournal,
    ReviewPages,
    SessionRules,
    TokenVerifier,
    WebSessions,
    create_api_app,
)
from storage import (
    AuditLog,
    AuditTrail,
    Database,
    EpochKeys,
    FetchQueue,
    FilesystemObjectStore,
    KeyChain,
    KmsKeyWrapper,
    LocalKeyring,
    ObjectStore,
    PeakReader,
    ReceiptSigner,
    RecordingAudio,
    RecordingCatalog,
    RecordingDeleter,
    RecordingHolds,
    RecordingStore,
    ReferralLinks,
    Scrubber,
    SessionStore,
    SpoolDirectory,
    StorageError,
    check_database,
    create_engine,
    load_secret,
    load_signing_key,
    sweep_spool,
)

log = logging.getLogger("callrec")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
DEV_SIGNING_KEY = "dev-signing-key.pem"
RECEIPT_KEY = "receipt-signing-key.pem"
GRANT_KEY = "grant-signing.secret"


def utc_now() -> datetime:
    """The service clock: aware UTC."""
    return datetime.now(UTC)


@dataclass
class Services:
    """Everything built from the settings, handed to the app and to CLI commands."""

    settings: Settings
    database: Database
    objects: ObjectStore
    keyring: KeyChain
    keys: EpochKeys
    audit: AuditTrail
    recordings: RecordingStore
    capture: PushCapture
    media: MediaWorkers
    fetch_queue: FetchQueue
    fetch_workers: FetchWorkers
    twilio: TwilioCallbacks | None
    telnyx: TelnyxCallbacks | None
    vonage: VonageCallbacks | None
    spool: SpoolDirectory
    tokens: TokenVerifier
    sessions: WebSessions
    oidc_sign_in: OidcSignIn | None
    catalog: RecordingCatalog
    audio: RecordingAudio
    grants: GrantSigner
    audit_log: AuditLog
    journal: PlaybackJournal
    deleter: RecordingDeleter
    holds: HoldDesk
    receipts: ReceiptSigner
    clock: Callable[[], datetime]

    async def close(self) -> None:
        """Release connections, clients and worker processes."""
        await asyncio.to_thread(self.media.close)
        self.spool.release()
        await self.objects.close()
        await self.database.dispose()


def build_object_store(store_url: str) -> ObjectStore:
    """``file:///path`` or ``s3://bucket/prefix`` to a store; no I/O happens here."""
    parts = urlsplit(store_url)
    if parts.scheme == "file":
        return FilesystemObjectStore(Path(parts.path))
    # Looked up at call time, so boto3 is only loaded by services that use S3.
    return storage.S3ObjectStore.connect(parts.netloc, parts.path.strip("/"))


def build_services(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Services:
    """Wire the parts; constructors are lazy, nothing connects until first use."""
    database = Database(create_engine(settings.resolved_database_url))
    objects = build_object_store(settings.resolved_store_url)
    local_keys = LocalKeyring.open(settings.data_dir / "keyring")
    keyring = (
        KeyChain(KmsKeyWrapper.connect(settings.kms_key_id), [local_keys])
        if settings.kms_key_id
        else KeyChain(local_keys)
    )
    audit = AuditTrail(clock)
    keys = EpochKeys(
        database=database,
        material=build_object_store(settings.resolved_epoch_key_store_url),
        root=keyring,
        audit=audit,
        clock=clock,
        retention_period=settings.retention_period,
    )
    recordings = RecordingStore(
        database=database,
        objects=objects,
        keys=keys,
        audit=audit,
        clock=clock,
    )
    spool = SpoolDirectory(settings.data_dir / "spool")
    media = MediaWorkers(
        spool_dir=spool.path,
        workers=settings.media_workers,
        max_channels=settings.max_audio_channels,
    )
    capture = PushCapture(
        recordings=recordings,
        media=media,
        secrets=settings.push_secret_bytes(),
        spool_dir=spool.path,
        retention_period=settings.retention_period,
        clock=clock,
        max_body_bytes=settings.max_upload_bytes,
        max_concurrent=settings.max_concurrent_pushes,
    )
    audit_log = AuditLog(database, audit)
    fetch_queue = FetchQueue(
        database=database,
        audit=audit,
        clock=clock,
        max_attempts=settings.fetch_max_attempts,
        first_delay=settings.fetch_first_retry,
        lease=settings.fetch_lease,
    )
    fetcher = SafeFetcher(provider_origins(settings), max_bytes=settings.max_upload_bytes)
    fetch_workers = FetchWorkers(
        queue=fetch_queue,
        fetcher=fetcher,
        storing=SpooledCapture(recordings, media),
        recordings=recordings,
        audit=audit_log,
        spool_dir=spool.path,
        retention_period=settings.retention_period,
        clock=clock,
        workers=settings.fetch_workers,
    )

    def intake(provider: str) -> Intake:
        return Intake(
            provider=provider,
            jobs=fetch_queue,
            audit=audit_log,
            url_allowed=functools.partial(fetcher.allowed, provider),
            clock=clock,
            wake=fetch_workers.wake,
        )

    twilio = None
    if settings.twilio_account_sid and settings.twilio_auth_token:
        twilio = TwilioCallbacks(
            account=TwilioAccount(
                account_sid=settings.twilio_account_sid,
                signature=TwilioSignature(settings.twilio_auth_token.get_secret_value()),
                media_format=settings.twilio_media_format,
                delete_after_store=settings.twilio_delete_recordings,
            ),
            intake=intake(TWILIO),
            public_url=settings.public_url,
        )
    telnyx = None
    if settings.telnyx_public_key:
        telnyx = TelnyxCallbacks(
            account=TelnyxAccount(
                signature=TelnyxSignature(settings.telnyx_public_key),
                media_format=settings.telnyx_media_format,
                delete_base=settings.telnyx_api_base if settings.telnyx_api_key else None,
            ),
            intake=intake(TELNYX),
        )
    vonage = None
    if settings.vonage_signature_secret:
        vonage = VonageCallbacks(
            account=VonageAccount(
                VonageSignature(settings.vonage_signature_secret.get_secret_value()),
                delete_after_store=settings.vonage_delete_recordings,
            ),
            intake=intake(VONAGE),
        )
    receipts = ReceiptSigner(load_signing_key(settings.data_dir / "keyring" / RECEIPT_KEY))
    grant_secret = load_secret(settings.data_dir / "keyring" / GRANT_KEY)
    tokens = build_verifier(settings)
    deleter = RecordingDeleter(
        database=database, objects=objects, audit=audit, receipts=receipts, clock=clock
    )
    holds = HoldDesk(
        RecordingHolds(database=database, objects=objects, audit=audit, clock=clock),
        deleter,
        clock=clock,
        max_review=settings.hold_max_review,
    )
    return Services(
        settings=settings,
        database=database,
        objects=objects,
        keyring=keyring,
        keys=keys,
        audit=audit,
        recordings=recordings,
        capture=capture,
        media=media,
        fetch_queue=fetch_queue,
        fetch_workers=fetch_workers,
        twilio=twilio,
        telnyx=telnyx,
        vonage=vonage,
        spool=spool,
        tokens=tokens,
        sessions=WebSessions(
            SessionStore(database, clock),
            SessionRules(idle=settings.session_idle_timeout, lifetime=settings.session_max_age),
        ),
        catalog=RecordingCatalog(database),
        audio=RecordingAudio(database, objects, keys),
        grants=GrantSigner(grant_secret),
        oidc_sign_in=build_oidc_sign_in(settings, tokens, grant_secret),
        audit_log=audit_log,
        journal=PlaybackJournal(audit_log, idle_s=settings.playback_summary_after.total_seconds()),
        deleter=deleter,
        holds=holds,
        receipts=receipts,
        clock=clock,
    )


TWILIO = "twilio"
KEYS_ACTOR = "keys"
# How often the service looks whether a rotation is due and whether anything is left to
# re-wrap or retire; the rotation itself follows CALLREC_KEY_ROTATION_INTERVAL.
KEY_UPKEEP_INTERVAL = timedelta(hours=1)
TELNYX = "telnyx"
VONAGE = "vonage"


def provider_origins(settings: Settings) -> dict[str, ProviderOrigin]:
    """Where each configured provider's recordings may be fetched from, with credentials."""
    origins = {}
    if settings.twilio_account_sid and settings.twilio_auth_token:
        pair = f"{settings.twilio_account_sid}:{settings.twilio_auth_token.get_secret_value()}"
        origins[TWILIO] = ProviderOrigin(
            settings.twilio_api_base,
            authorization="Basic " + base64.b64encode(pair.encode()).decode(),
            redirect_hosts=settings.twilio_storage_hosts,
        )
    if settings.telnyx_public_key:
        key = settings.telnyx_api_key
        origins[TELNYX] = ProviderOrigin(
            settings.telnyx_api_base,
            authorization=None if key is None else f"Bearer {key.get_secret_value()}",
            redirect_hosts=settings.telnyx_storage_hosts,
            storage_urls=True,
        )
    if (
        settings.vonage_signature_secret
        and settings.vonage_application_id
        and settings.vonage_private_key
    ):
        origins[VONAGE] = ProviderOrigin(
            settings.vonage_api_base,
            authorization=application_token(
                settings.vonage_application_id, settings.vonage_private_key.get_secret_value()
            ),
            credential_hosts=settings.vonage_hosts,
        )
    return origins


def build_verifier(settings: Settings) -> TokenVerifier:
    """The bearer-token verifier of the configured auth mode."""
    if settings.auth_mode == "dev":
        return DevTokenVerifier(
            load_signing_key(settings.data_dir / DEV_SIGNING_KEY).public_pem,
            leeway=settings.token_leeway,
        )
    if not (settings.oidc_issuer and settings.oidc_audience and settings.oidc_jwks_url):
        raise ValueError("oidc mode needs an issuer, an audience and a JWKS URL")
    return OidcTokenVerifier(
        OidcSettings(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url,
            algorithms=settings.oidc_algorithms,
            role_claim=settings.oidc_role_claim,
            team_claim=settings.oidc_team_claim,
            leeway=settings.token_leeway,
        )
    )


def build_oidc_sign_in(
    settings: Settings, tokens: TokenVerifier, signing_key: bytes
) -> OidcSignIn | None:
    """The page's sign-in through the IdP, when oidc mode has a client configured."""
    if settings.auth_mode != "oidc" or not (
        settings.oidc_client_id
        and settings.oidc_authorization_url
        and settings.oidc_token_url
        and settings.oidc_issuer
        and settings.oidc_jwks_url
    ):
        return None
    secret = settings.oidc_client_secret
    return OidcSignIn(
        OidcClient(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            authorization_url=settings.oidc_authorization_url,
            token_url=settings.oidc_token_url,
            jwks_url=settings.oidc_jwks_url,
            public_url=settings.public_url,
            scopes=settings.oidc_scopes,
            client_secret=None if secret is None else secret.get_secret_value(),
            algorithms=settings.oidc_algorithms,
        ),
        tokens,
        signing_key,
    )


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id (the caller's, if sane), log it once, turn surprises into JSON."""
    offered = request.headers.get("X-Request-Id", "")
    request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        try:
            response = await handler(request)
        except asyncio.CancelledError:
            # The client went away mid-request: not a server error. 499, as proxies say.
            status = 499
            raise
        except web.HTTPException as exc:
            # Routing errors (404, 405) in the API's one error shape.
            response = web.json_response(
                {"error": exc.reason.lower().replace(" ", "_"), "detail": exc.reason},
                status=exc.status,
                headers={k: v for k, v in exc.headers.items() if k == "Allow"},
            )
        except Exception:
            log.exception("unhandled error")
            response = web.json_response(
                {"error": "internal_error", "detail": f"request {request_id} failed; it is logged"},
                status=500,
            )
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        structlog.contextvars.unbind_contextvars("request_id")


def create_app(services: Services) -> web.Application:
    """The whole service: webhooks, operations endpoints, and later the API and page."""
    metrics = HttpMetrics()
    retention_metrics = RetentionMetrics(metrics.registry)
    app = web.Application(middlewares=[request_context, metrics.middleware])
    settings = services.settings
    horizon = settings.retention_sweep_interval + settings.retention_margin

    async def refresh_retention_gauges() -> None:
        now = services.clock()
        retention_metrics.show(await services.deleter.facts(now=now, cutoff=now + horizon), now)

    metrics.refresh_on_scrape(refresh_retention_gauges)
    fetch_metrics = FetchMetrics(metrics.registry)
    integrity_metrics = IntegrityMetrics(metrics.registry)

    async def refresh_fetch_gauges() -> None:
        fetch_metrics.show(await services.fetch_queue.counts())

    metrics.refresh_on_scrape(refresh_fetch_gauges)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_request: web.Request) -> web.Response:
        problems = []
        try:
            await check_database(services.database.engine)
        except StorageError:
            problems.append("database")
        try:
            await services.objects.check()
        except StorageError:
            problems.append("store")
        if problems:
            return web.json_response(
                {"error": "not_ready", "detail": f"unreachable: {', '.join(problems)}"},
                status=503,
            )
        return web.json_response({"status": "ready"})

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        # Fail closed: a key-encryption key that cannot wrap and unwrap, or an epoch-key
        # store that does not answer, stops start-up rather than the first capture.
        await services.keys.check()
        # Off the event loop: starting the fork server imports PyAV, about a second.
        await asyncio.to_thread(services.media.start)
        swept = sweep_spool(services.settings.data_dir / "spool")
        if swept:
            log.warning("removed spool files left by an earlier process", extra={"count": swept})
        try:
            reaped = await services.recordings.reap_abandoned_captures()
            if reaped:
                log.warning("removed abandoned captures", extra={"count": reaped})
        except StorageError:
            log.warning("could not look for abandoned captures at start-up", exc_info=True)

        async def sweep() -> None:
            started = time.perf_counter()
            try:
                report = await sweep_expired_recordings(
                    services.deleter,
                    now=services.clock(),
                    horizon=horizon,
                    on_batch=lambda _kind, _ids: None,  # counts only: memory stays flat
                )
                attestation = await attest_if_due(services.deleter, now=services.clock())
                # A dead letter keeps the callback's labels for an operator, but not
                # past the retention period.
                await services.fetch_queue.forget_details(
                    before=services.clock() - settings.retention_period
                )
            except BaseException:
                retention_metrics.sweep_failed(time.perf_counter() - started)
                raise
            retention_metrics.sweep_finished(
                deleted=report.deleted_count + report.resumed_count,
                seconds=time.perf_counter() - started,
                at=services.clock(),
            )
            log.info(
                "retention sweep",
                extra={"deleted": report.deleted_count, "resumed": report.resumed_count},
            )
            # A week whose recordings are all gone loses its key, in every backup too. Its
            # own failure (a KMS out of reach) is not the sweep's: it is tried again next time.
            try:
                shredded = await services.keys.shred_spent_epochs()
            except StorageError:
                log.error("could not destroy the keys of spent weeks", exc_info=True)
            else:
                if shredded.destroyed or shredded.moved_to_hold:
                    log.info(
                        "epoch keys destroyed",
                        extra={
                            "epochs": shredded.destroyed,
                            "moved_to_hold": shredded.moved_to_hold,
                        },
                    )
            if attestation is not None and attestation["overdue_unheld"]:
                log.error(
                    "retention attestation failed: recordings outlive their deadline",
                    extra={"overdue_unheld": attestation["overdue_unheld"]},
                )

        schedule = SweepSchedule(sweep, settings.retention_sweep_interval)
        schedule.start()

        async def scrub() -> None:
            report = await Scrubber(
                database=services.database,
                objects=services.objects,
                keys=services.keys,
                audit=services.audit,
            ).run(sample=settings.integrity_scrub_sample)
            problems = report.problems()
            integrity_metrics.show(report.objects, problems, time.time())
            if not report.ok:
                log.error("integrity scrub found damage", extra={"problems": problems})

        scrubs = SweepSchedule(
            scrub, settings.integrity_scrub_interval, name="integrity scrub", run_at_start=False
        )
        scrubs.start()

        async def maintain_keys() -> None:
            rotated = await services.keys.rotate_if_due(
                settings.key_rotation_interval, actor=KEYS_ACTOR
            )
            if rotated is not None:
                log.info("keys rotated", extra={"generation": rotated})
            # Re-wraps what an earlier rotation left (a run cut short, a process that
            # wrapped under the old generation), then retires what nothing uses.
            report = await services.keys.rewrap(actor=KEYS_ACTOR)
            if report.rewrapped or report.retired:
                log.info(
                    "keys re-wrapped",
                    extra={"data_keys": report.rewrapped, "retired": len(report.retired)},
                )

        key_upkeep = SweepSchedule(
            maintain_keys, KEY_UPKEEP_INTERVAL, name="key upkeep", run_at_start=False
        )
        key_upkeep.start()
        services.fetch_workers.start()
        yield
        await services.fetch_workers.stop()
        await key_upkeep.stop()
        await scrubs.stop()
        await schedule.stop()

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics.handle)
    app.add_subapp(
        "/webhooks/",
        create_recorder_app(
            services.capture,
            twilio=services.twilio,
            telnyx=services.telnyx,
            vonage=services.vonage,
        ),
    )
    app.add_subapp(
        "/api/v1/",
        create_api_app(
            tokens=services.tokens,
            queries=services.catalog,
            audio=services.audio,
            audit=services.audit_log,
            trail=services.audit_log,
            referrals=ReferralLinks(services.database, services.audit, services.clock),
            peaks=PeakReader(services.database),
            holds=services.holds,
            signer=services.grants,
            journal=services.journal,
            retention_report=lambda: retention_status(
                services.deleter,
                now=services.clock(),
                interval=services.settings.retention_sweep_interval,
                margin=services.settings.retention_margin,
                period=services.settings.retention_period,
            ),
            clock=services.clock,
            grant_lifetime=services.settings.grant_lifetime,
            public_url=services.settings.public_url,
            sessions=services.sessions,
        ),
    )
    ReviewPages(
        sessions=services.sessions,
        tokens=services.tokens,
        auth_mode=services.settings.auth_mode,
        audit=services.audit_log,
        oidc=services.oidc_sign_in,
    ).add_routes(app)
    app.cleanup_ctx.append(lifecycle)

    async def close_services(_app: web.Application) -> None:
        await services.close()

    # Last of all: the sub-applications' clean-ups (the playback journal's final flush)
    # run after this app's own clean-up context, and still need the database.
    app.on_cleanup.append(close_services)
    return app
