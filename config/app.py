"""The web application: the sub-apps mounted, the operations routes, and start and stop.

The parts come from ``config.services`` and the background jobs from ``config.jobs``;
this module only puts them together.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from config.drain import Drain
from config.jobs import JobMetrics, start_jobs, stop_jobs, sweep_horizon
from config.metrics import (
    FetchMetrics,
    HttpMetrics,
    IntegrityMetrics,
    KeyMetrics,
    ReadinessMetrics,
    RenditionMetrics,
    RetentionMetrics,
)
from config.scheduler import SweepSchedule
from config.services import Services
from config.siprec_metrics import SiprecMetrics
from recorder import create_recorder_app
from retention import retention_status
from retrieval import (
    CAPABILITY_PARAMETERS,
    AnswerBrokenOff,
    ExportParts,
    ReviewPages,
    create_api_app,
)
from storage import (
    AnchorInvalid,
    CallAccesses,
    PeakReader,
    ReferralLinks,
    StorageError,
    Unavailable,
    check_database,
    sweep_spool,
)

log = logging.getLogger("callrec")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
RUNNING_JOBS: web.AppKey[list[SweepSchedule]] = web.AppKey("running_jobs")
"""The schedules started for this app, while it runs (empty before start and after stop)."""
JOB_METRICS = web.AppKey("job_metrics", JobMetrics)
REQUEST_ID = web.RequestKey("request_id", str)
"""The id the request middleware gave a request, for the headers of its response."""
ANSWER_BEGUN = web.RequestKey("answer_begun", int)
"""The status of the answer whose headers went out; once set, no other answer may follow."""
DRAIN = web.AppKey("drain", Drain)
"""The app's shutdown state: ``serve`` begins the drain; ``/readyz`` and every response see it."""
BACKGROUND: web.AppKey[BackgroundWork] = web.AppKey("background")


class BackgroundWork:
    """The scheduled jobs and fetch workers an app runs; stopped early by a drain, or at
    clean-up, whichever comes first (stopping twice does nothing more)."""

    def __init__(self, services: Services, running: list[SweepSchedule]) -> None:
        self._services = services
        self._running = running
        self._started = False

    def start(self, metrics: JobMetrics) -> None:
        """Start every scheduled job and the fetch workers."""
        self._running.extend(start_jobs(self._services, metrics))
        self._services.fetch_workers.start()
        self._services.rendition_workers.start()
        self._started = True

    async def stop(self, *, finish_within: float = 0.0) -> None:
        """Start nothing more; fetches in flight get ``finish_within`` seconds, then go back
        to the queue; renditions in flight go back at once (nobody waits for them, and
        another replica takes them up); a sweep or scrub in progress is waited for."""
        if not self._started:
            return
        self._started = False
        schedules = list(self._running)
        self._running.clear()
        await asyncio.gather(
            self._services.fetch_workers.stop(finish_within=finish_within),
            self._services.rendition_workers.stop(),
            stop_jobs(schedules),
        )


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id (the caller's, if sane), log it once, turn surprises into JSON.

    Except once an answer has begun (audio is streamed: its headers leave before the
    handler returns): a failure then, or an error answer made for it further in, would
    be written into the body already promised, so the connection is dropped instead.
    """
    offered = request.headers.get("X-Request-Id", "")
    request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    status = 500
    broken_off = False
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
        except AnswerBrokenOff as exc:
            log.warning("answer broken off", extra={"reason": str(exc)})
            response = web.Response(status=500)
        except Exception:
            log.exception("unhandled error")
            response = web.json_response(
                {"error": "internal_error", "detail": f"request {request_id} failed; it is logged"},
                status=500,
            )
        begun = request.get(ANSWER_BEGUN)
        if begun is not None and not response.prepared:
            broken_off = True
            status = begun
            _drop_connection(request)
            return response  # never written: the connection is gone
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": loggable_path(request),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            }
            | ({"broken_off": True} if broken_off else {}),
        )
        structlog.contextvars.unbind_contextvars("request_id")


_LONG_SEGMENT = 64
"""A path segment this long is logged as a digest when no route named it: a grant sent to a
path that matches nothing (a trailing slash, a typo) is still a grant. Nothing the API
names in a path (a recording id, a job id, a static file) comes near it."""


def loggable_path(request: web.Request) -> str:
    """The request's path with each capability in it (a grant) replaced by a digest of it.

    The digest tells one grant's requests apart from another's, and is no use to listen.
    """
    path = request.path
    capabilities = CAPABILITY_PARAMETERS & request.match_info.keys()
    for name in capabilities:
        value = request.match_info[name]
        path = path.replace(value, _digest(value))
    if not capabilities:
        path = "/".join(
            _digest(segment) if len(segment) >= _LONG_SEGMENT else segment
            for segment in path.split("/")
        )
    return path


def _digest(value: str) -> str:
    return f"sha256:{hashlib.sha256(value.encode()).hexdigest()[:16]}"


def _drop_connection(request: web.Request) -> None:
    """Abort the connection under an answer that cannot be finished: nothing more is sent,
    and the client sees the body cut short rather than waiting for the rest of it."""
    transport = request.transport
    if transport is not None:
        transport.abort()


async def stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Put the request id on a response as its headers go out, and mark the answer begun:
    a streamed answer (audio) sends them before the middleware sees it, so the middleware
    alone would miss both."""
    request[ANSWER_BEGUN] = response.status
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers["X-Request-Id"] = request_id


def _operations(services: Services, app: web.Application, metrics: HttpMetrics) -> None:
    """/healthz, /readyz and /metrics, with the gauges read from the database at each scrape."""
    retention_metrics = RetentionMetrics(metrics.registry)
    retention_metrics.schedule(services.settings.retention_sweep_interval)
    fetch_metrics = FetchMetrics(metrics.registry)
    rendition_metrics = RenditionMetrics(metrics.registry)
    readiness_metrics = ReadinessMetrics(metrics.registry)
    key_metrics = KeyMetrics(metrics.registry)
    horizon = sweep_horizon(services.settings)

    async def unready_because() -> list[str]:
        """Why this replica should get no traffic; empty when it is ready."""
        if app[DRAIN].draining:
            return ["draining"]
        problems = []
        try:
            await check_database(services.database.engine)
        except StorageError:
            problems.append("database")
        try:
            await services.objects.check()
        except StorageError:
            problems.append("store")
        return problems

    async def refresh_readiness_gauge() -> None:
        readiness_metrics.show(not await unready_because())

    async def refresh_retention_gauges() -> None:
        now = services.clock()
        retention_metrics.show(await services.deleter.facts(now=now, cutoff=now + horizon), now)

    async def refresh_triage_gauge() -> None:
        unlinked = await services.unlinked.count(
            now=services.clock(), review_after=services.settings.unlinked_review_after
        )
        retention_metrics.show_triage(unlinked.total)

    async def refresh_fetch_gauges() -> None:
        fetch_metrics.show(await services.fetch_queue.counts())

    async def refresh_rendition_gauges() -> None:
        rendition_metrics.show(
            await services.rendition_queue.backlog(), services.rendition_workers.tally
        )

    async def refresh_key_gauges() -> None:
        every = services.settings.key_rotation_interval
        key_metrics.show(await services.keys.rotation_due_at(every))

    metrics.refresh_on_scrape(refresh_readiness_gauge)
    metrics.refresh_on_scrape(refresh_retention_gauges)
    metrics.refresh_on_scrape(refresh_triage_gauge)
    metrics.refresh_on_scrape(refresh_fetch_gauges)
    metrics.refresh_on_scrape(refresh_rendition_gauges)
    metrics.refresh_on_scrape(refresh_key_gauges)
    # Served (at 0) when SIPREC is off too, so the alert's series always exists.
    siprec_metrics = SiprecMetrics(metrics.registry)
    if services.settings.siprec_listen is not None:

        async def refresh_siprec_gauges() -> None:
            siprec_metrics.show(services.siprec_server, services.siprec)

        metrics.refresh_on_scrape(refresh_siprec_gauges)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_request: web.Request) -> web.Response:
        problems = await unready_because()
        readiness_metrics.show(not problems)
        if problems == ["draining"]:
            # First of all: a load balancer must stop sending here before anything else.
            return web.json_response(
                {"error": "draining", "detail": "shutting down; finishing work in flight"},
                status=503,
            )
        if problems:
            return web.json_response(
                {"error": "not_ready", "detail": f"unreachable: {', '.join(problems)}"},
                status=503,
            )
        return web.json_response({"status": "ready"})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics.handle)
    app[JOB_METRICS] = JobMetrics(
        retention=retention_metrics, integrity=IntegrityMetrics(metrics.registry)
    )


def _lifecycle(services: Services) -> Callable[[web.Application], AsyncIterator[None]]:
    """Start-up checks and clean-ups, the background jobs and the fetch workers; then stop."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
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
        await _reconcile_with_anchors(services)
        background = app[BACKGROUND]
        background.start(app[JOB_METRICS])
        siprec = services.settings.siprec_listen is not None
        if siprec:
            # After the start-up checks, like the webhooks: an SBC's call is stored as a push.
            await services.siprec_server.start()
        yield
        if siprec:
            # Every call still being recorded is ended (BYE to its SBC) and stored first.
            await services.siprec_server.stop()
        await background.stop()

    return lifecycle


async def _reconcile_with_anchors(services: Services) -> None:
    """Re-apply every deletion a restored database lacks before the first request, or do
    not start: a service that cannot read the ledger cannot tell what it must not serve.
    Every start-up, not only after a known restore (docs/operations.md, "Restoring a
    backup")."""
    try:
        report = await services.reconcile_with_anchors()
    except AnchorInvalid as exc:
        raise StorageError(f"cannot start: an anchor record is not genuine: {exc}") from exc
    except Unavailable:
        # Nothing can be served while the database is down (/readyz says so), and no
        # audio while the store is: the deletion ledger's job runs it once they are back.
        log.warning("could not compare the database with the anchors at start-up", exc_info=True)
        return
    if report.reapplied or report.finished:
        log.warning(
            "re-applied deletions the restored database lacked",
            extra={"reapplied": len(report.reapplied), "finished": len(report.finished)},
        )


def create_app(services: Services) -> web.Application:
    """The whole service: webhooks, API, review page, operations endpoints, background jobs."""
    metrics = HttpMetrics()
    drain = Drain()
    # The drain's first: it counts every request, whatever becomes of it further in.
    app = web.Application(middlewares=[drain.middleware, request_context, metrics.middleware])
    app.on_response_prepare.append(stamp_request_id)
    app[DRAIN] = drain
    app[RUNNING_JOBS] = []
    app[BACKGROUND] = BackgroundWork(services, app[RUNNING_JOBS])
    _operations(services, app, metrics)
    app.add_subapp(
        "/webhooks/",
        create_recorder_app(
            services.capture,
            twilio=services.twilio,
            telnyx=services.telnyx,
            vonage=services.vonage,
            stop_receiving=drain.stop_receiving,
            stop_storing=drain.stop_storing,
            senders=services.senders,
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
            call_accesses=CallAccesses(services.database),
            triage=services.unlinked,
            unlinked_review_after=services.settings.unlinked_review_after,
            referrals=ReferralLinks(services.database, services.audit, services.clock),
            peaks=PeakReader(services.database),
            holds=services.holds,
            erasures=services.erasures,
            subject_access=services.subject_access,
            exports=ExportParts(
                cases=services.subject_access,
                recordings=services.catalog,
                accesses=CallAccesses(services.database),
                redactor=services.redacted_copies,
                signer=services.receipts,
                clock=services.clock,
            ),
            phone_region=services.settings.phone_region,
            signer=services.grants,
            journal=services.journal,
            retention_report=lambda: retention_status(
                services.deleter,
                now=services.clock(),
                interval=services.settings.retention_sweep_interval,
                margin=services.settings.retention_margin,
                period=services.settings.retention_period,
                erasure_approvals=services.settings.erasure_approvals,
                triage=services.unlinked,
                review_after=services.settings.unlinked_review_after,
            ),
            dead_letters=lambda: services.fetch_queue.dead.summary(50),
            clock=services.clock,
            grant_lifetime=services.settings.grant_lifetime,
            public_url=services.settings.public_url,
            sessions=services.sessions,
            ledger=services.ledger,
        ),
    )
    ReviewPages(
        sessions=services.sessions,
        tokens=services.tokens,
        auth_mode=services.settings.auth_mode,
        audit=services.audit_log,
        oidc=services.oidc_sign_in,
        phone_region=services.settings.phone_region,
    ).add_routes(app)
    app.cleanup_ctx.append(_lifecycle(services))

    async def close_services(_app: web.Application) -> None:
        await services.close()

    # Last of all: the sub-applications' clean-ups (the playback journal's final flush)
    # run after this app's own clean-up context, and still need the database.
    app.on_cleanup.append(close_services)
    return app
