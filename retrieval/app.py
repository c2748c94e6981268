"""The people-facing API application: routes, middleware and the handlers' dependencies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from retrieval.access import AuditSink, RecordingAccess, RecordingQueries, ReferralChanges
from retrieval.auth import TokenVerifier
from retrieval.grants import GrantSigner
from retrieval.handlers import (
    PUBLIC_ROUTE,
    PeakSource,
    RecordingHandlers,
    RetentionHandlers,
    api_errors,
    authenticate_with,
)
from retrieval.holds import HoldHandlers, HoldOffice
from retrieval.journal import PlaybackJournal
from retrieval.openapi import OPENAPI
from retrieval.playback import AudioOpener, PlaybackHandlers
from retrieval.sessions import WebSessions
from retrieval.trail import AuditHandlers, AuditReader


def create_api_app(
    *,
    tokens: TokenVerifier,
    queries: RecordingQueries,
    audio: AudioOpener,
    audit: AuditSink,
    trail: AuditReader,
    referrals: ReferralChanges,
    peaks: PeakSource,
    holds: HoldOffice,
    signer: GrantSigner,
    journal: PlaybackJournal,
    retention_report: Callable[[], Awaitable[dict[str, Any]]],
    clock: Callable[[], datetime],
    grant_lifetime: timedelta,
    public_url: str | None,
    sessions: WebSessions | None = None,
) -> web.Application:
    """The API, mounted under ``/api/v1/``; every route needs a bearer token or, from the
    review page, its session cookie."""
    app = web.Application(middlewares=[api_errors, authenticate_with(tokens, sessions)])
    access = RecordingAccess(queries, audit, clock)
    recordings = RecordingHandlers(access, referrals, peaks)
    keeping = HoldHandlers(access, holds)
    playback = PlaybackHandlers(
        access=access,
        audio=audio,
        signer=signer,
        journal=journal,
        grant_lifetime=grant_lifetime,
        public_url=public_url,
    )

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)

    app.router.add_get("/openapi.json", openapi, name=PUBLIC_ROUTE)
    app.router.add_get("/recordings", recordings.search)
    app.router.add_get("/recordings/{id}", recordings.get)
    app.router.add_delete("/recordings/{id}", keeping.erase)
    app.router.add_post("/recordings/{id}/hold", keeping.place)
    app.router.add_delete("/recordings/{id}/hold", keeping.release)
    app.router.add_get("/recordings/{id}/peaks", recordings.peaks)
    app.router.add_post("/recordings/{id}/referrals/{ref}", recordings.link_referral)
    app.router.add_delete("/recordings/{id}/referrals/{ref}", recordings.unlink_referral)
    app.router.add_post("/recordings/{id}/grants", playback.grant)
    app.router.add_get("/play/{grant}", playback.play)
    app.router.add_get("/audit", AuditHandlers(trail, audit).events)
    app.router.add_get("/retention", RetentionHandlers(access, retention_report).status)

    async def write_sessions(_app: web.Application) -> AsyncIterator[None]:
        flusher = asyncio.create_task(journal.run())
        yield
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        await journal.flush(idle_only=False)

    app.cleanup_ctx.append(write_sessions)
    return app
