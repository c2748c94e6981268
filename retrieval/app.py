"""The people-facing API application: routes, middleware and the handlers' dependencies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from retrieval.access import (
    AuditSink,
    DeletionRecords,
    RecordingAccess,
    RecordingQueries,
    ReferralChanges,
)
from retrieval.auth import TokenVerifier
from retrieval.dead_letters import DeadLetterHandlers
from retrieval.erasure import ErasureHandlers, ErasureOffice
from retrieval.grants import GrantSigner
from retrieval.holds import HoldHandlers, HoldOffice
from retrieval.journal import PlaybackJournal
from retrieval.listening import AudioOpener, Listening
from retrieval.middleware import PUBLIC_ROUTE, api_errors, authenticate_with
from retrieval.openapi import OPENAPI
from retrieval.playback import PlaybackHandlers
from retrieval.recordings import PeakSource, RecordingHandlers
from retrieval.retention_status import RetentionHandlers
from retrieval.routes import ROUTES, ApiHandlers
from retrieval.sessions import WebSessions
from retrieval.staff_accesses import CallAccessReader, StaffAccessHandlers
from retrieval.subject_access import SubjectAccessDesk, SubjectAccessHandlers
from retrieval.subject_export import ExportParts
from retrieval.subject_export_http import ExportHandlers
from retrieval.trail import AuditHandlers, AuditReader
from retrieval.triage import TriageDesk, TriageHandlers


def create_api_app(
    *,
    tokens: TokenVerifier,
    queries: RecordingQueries,
    audio: AudioOpener,
    audit: AuditSink,
    trail: AuditReader,
    call_accesses: CallAccessReader,
    triage: TriageDesk,
    unlinked_review_after: timedelta,
    referrals: ReferralChanges,
    peaks: PeakSource,
    holds: HoldOffice,
    erasures: ErasureOffice,
    subject_access: SubjectAccessDesk,
    exports: ExportParts,
    phone_region: str,
    signer: GrantSigner,
    journal: PlaybackJournal,
    retention_report: Callable[[], Awaitable[dict[str, Any]]],
    dead_letters: Callable[[], Awaitable[dict[str, Any]]],
    clock: Callable[[], datetime],
    grant_lifetime: timedelta,
    public_url: str | None,
    sessions: WebSessions | None = None,
    ledger: DeletionRecords | None = None,
) -> web.Application:
    """The API, mounted under ``/api/v1/``; every route needs a bearer token or, from the
    review page, its session cookie."""
    app = web.Application(middlewares=[api_errors, authenticate_with(tokens, sessions)])
    access = RecordingAccess(queries, audit, clock, ledger)

    async def document(_request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)

    handlers = ApiHandlers(
        recordings=RecordingHandlers(access, referrals, peaks),
        holds=HoldHandlers(access, holds),
        erasures=ErasureHandlers(access, erasures),
        playback=PlaybackHandlers(
            access=access,
            listening=Listening(access=access, audio=audio, signer=signer, journal=journal),
            signer=signer,
            grant_lifetime=grant_lifetime,
            public_url=public_url,
        ),
        audit=AuditHandlers(trail, audit),
        retention=RetentionHandlers(access, retention_report),
        dead_letters=DeadLetterHandlers(access, dead_letters),
        staff=StaffAccessHandlers(call_accesses, audit),
        triage=TriageHandlers(access, triage, unlinked_review_after),
        subject_access=SubjectAccessHandlers(access, subject_access, region=phone_region),
        exports=ExportHandlers(access, exports),
        document=document,
    )
    for route in ROUTES:
        handler = route.handler(handlers)
        name = PUBLIC_ROUTE if route.public else None
        if route.method == "GET":
            # HEAD too, as aiohttp does for GET: the document describes both.
            app.router.add_get(route.path, handler, name=name)
        else:
            app.router.add_route(route.method, route.path, handler, name=name)

    async def write_sessions(_app: web.Application) -> AsyncIterator[None]:
        flusher = asyncio.create_task(journal.run())
        yield
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        await journal.flush(idle_only=False)

    app.cleanup_ctx.append(write_sessions)
    return app
