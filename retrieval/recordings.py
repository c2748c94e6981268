"""``/api/v1/recordings``: search, metadata, peaks and referral links, within need to know.

Handlers parse, ask the policy, call storage through small protocols, and shape JSON.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from aiohttp import web

from retrieval.access import RecordingAccess, ReferralChanges
from retrieval.auth import Principal
from retrieval.errors import Forbidden, NotFound
from retrieval.middleware import principal_of
from retrieval.parsing import cursor_after, recording_id_from, referral_from, search_query
from retrieval.policy import may_edit_referrals, may_search, visible_teams
from retrieval.representations import peaks_json, recording_json
from storage import AuditRecord, Peaks, RecordingView, SearchQuery


class PeakSource(Protocol):
    """Where the waveform peaks of a stored recording come from."""

    async def peaks(self, recording_id: uuid.UUID) -> Peaks | None: ...


class RecordingHandlers:
    """Search and metadata, within need to know, all audited; referral links."""

    def __init__(
        self, access: RecordingAccess, referrals: ReferralChanges, peaks: PeakSource
    ) -> None:
        self._access = access
        self._queries = access.queries
        self._audit = access.audit
        self._referrals = referrals
        self._peaks = peaks

    async def search(self, request: web.Request) -> web.Response:
        """``GET /api/v1/recordings``: newest first, one page, with a cursor to the next."""
        principal = principal_of(request)
        if not may_search(principal):
            await self._access.deny(principal, "recording.search", None, "role")
            raise Forbidden("this role does not look recordings up")
        query = search_query(request.query, visible_teams(principal))
        now = self._access.clock()
        # One more than a page, to know whether another page follows; nothing past its
        # deadline without a hold is shown, swept or not.
        found = await self._queries.search(
            SearchQuery(**{**_fields(query), "limit": query.limit + 1, "readable_at": now})
        )
        page = found[: query.limit]
        await self._audit.record(
            AuditRecord(
                actor=principal.actor,
                action="recording.search",
                details={
                    "filters": {k: v for k, v in request.query.items() if k != "cursor"},
                    "results": len(page),
                },
            )
        )
        body: dict[str, Any] = {
            "recordings": [recording_json(view, principal, now) for view in page]
        }
        body["next_cursor"] = cursor_after(page[-1]) if len(found) > query.limit else None
        return web.json_response(body)

    async def get(self, request: web.Request) -> web.Response:
        """``GET /api/v1/recordings/{id}``: metadata, 404 if not visible, 410 once deleted."""
        principal = principal_of(request)
        view = await self._access.visible(principal, recording_id_from(request), "recording.view")
        await self._audit.record(
            AuditRecord(actor=principal.actor, action="recording.view", recording_id=view.id)
        )
        return web.json_response(recording_json(view, principal, self._access.clock()))

    async def peaks(self, request: web.Request) -> web.Response:
        """``GET /api/v1/recordings/{id}/peaks``: per channel, min and max per time bucket.

        Values are -127..127 of full scale; bucket ``i`` starts at ``i / per_second``
        seconds. A recording captured before peaks existed answers ``not_computed``.
        """
        principal = principal_of(request)
        view = await self._access.visible(principal, recording_id_from(request), "recording.peaks")
        found = await self._peaks.peaks(view.id)
        await self._audit.record(
            AuditRecord(actor=principal.actor, action="recording.peaks", recording_id=view.id)
        )
        if found is None:
            return web.json_response(peaks_json(view, None))
        return web.json_response(peaks_json(view, found), headers={"Cache-Control": "no-store"})

    async def link_referral(self, request: web.Request) -> web.Response:
        """``POST /api/v1/recordings/{id}/referrals/{ref}``: 201 linked, 200 already was."""
        principal, view, reference = await self._referral_change(request)
        created = await self._referrals.link(view.id, reference, actor=principal.actor)
        body = {"id": str(view.id), "referral": reference, "linked": True}
        return web.json_response(body, status=201 if created else 200)

    async def unlink_referral(self, request: web.Request) -> web.Response:
        """``DELETE /api/v1/recordings/{id}/referrals/{ref}``: 204, or 404 if not linked."""
        principal, view, reference = await self._referral_change(request)
        if not await self._referrals.unlink(view.id, reference, actor=principal.actor):
            raise NotFound("the recording is not linked to that referral")
        return web.Response(status=204)

    async def _referral_change(self, request: web.Request) -> tuple[Principal, RecordingView, str]:
        principal = principal_of(request)
        reference = referral_from(request)
        if not may_edit_referrals(principal):
            await self._access.deny(principal, "referral.change", None, "role")
            raise Forbidden("this role does not link referrals")
        view = await self._access.visible(principal, recording_id_from(request), "referral.change")
        return principal, view, reference


def _fields(query: SearchQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in SearchQuery.__dataclass_fields__}
