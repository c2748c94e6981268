"""``GET /api/v1/me/accesses``: a call handler sees who replayed or downloaded their calls.

Transparency for staff, from the audit trail: who (as the trail names them), when, how and
for which purpose. Never the audio, never the grant's free-text reason (it may describe the
case), never the caller's numbers or referrals: the call is named by its id and start time,
which is all a handler needs to recognise it. Reading the list is itself audited, as every
read of the trail is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

from aiohttp import web

from retrieval.access import AuditSink
from retrieval.errors import BadRequest, Forbidden
from retrieval.middleware import principal_of
from retrieval.policy import may_read_own_accesses
from storage import AuditRecord, CallAccess, CallAccessQuery, rfc3339, whole_number

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200
MAX_CURSOR: Final = 2**62
PARAMETERS: Final = ("cursor", "limit")
ACCESS_KINDS: Final = {"recording.play_open": "replayed", "recording.download": "downloaded"}
"""The trail's actions that are an access to a call's audio, as the handler is told them:
a listening session opened (its first range served), or a download of the original."""


class CallAccessReader(Protocol):
    """Where accesses to one agent's calls are read from."""

    async def accesses(self, query: CallAccessQuery) -> list[CallAccess]: ...


class StaffAccessHandlers:
    """The list of accesses to the caller's own calls, newest first, cursor paged."""

    def __init__(self, reader: CallAccessReader, audit: AuditSink) -> None:
        self._reader = reader
        self._audit = audit

    async def listed(self, request: web.Request) -> web.Response:
        """``GET /api/v1/me/accesses?cursor=&limit=``."""
        principal = principal_of(request)
        if not may_read_own_accesses(principal):
            await self._audit.record(
                AuditRecord(
                    actor=principal.actor,
                    action="audit.read",
                    outcome="deny",
                    details={"scope": "own_calls", "reason": "role"},
                )
            )
            raise Forbidden("only call handlers (the staff role) see accesses to their calls")
        before, limit = _page(request.query)
        # The person's subject is the agent id the telephony platform records for them.
        found = await self._reader.accesses(
            CallAccessQuery(
                agent=principal.subject,
                actions=frozenset(ACCESS_KINDS),
                before_seq=before,
                limit=limit + 1,
            )
        )
        page = found[:limit]
        await self._audit.record(
            AuditRecord(
                actor=principal.actor,
                action="audit.read",
                details={
                    "scope": "own_calls",
                    "filters": dict(request.query),
                    "results": len(page),
                },
            )
        )
        return web.json_response(
            {
                "accesses": [_access_json(access) for access in page],
                "next_cursor": str(page[-1].seq) if len(found) > limit else None,
            },
            headers={"Cache-Control": "no-store"},
        )


def _page(params: Mapping[str, str]) -> tuple[int | None, int]:
    unknown = set(params) - set(PARAMETERS)
    if unknown:
        raise BadRequest(f"unknown parameter {sorted(unknown)[0]!r}")
    before = None
    if "cursor" in params:
        before = whole_number(params["cursor"])
        if before is None or not 1 <= before <= MAX_CURSOR:
            raise BadRequest("the cursor is not one this service issued")
    limit = DEFAULT_LIMIT
    if "limit" in params:
        number = whole_number(params["limit"])
        if number is None or not 1 <= number <= MAX_LIMIT:
            raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        limit = number
    return before, limit


def _access_json(access: CallAccess) -> dict[str, Any]:
    return {
        "occurred_at": rfc3339(access.occurred_at),
        "actor": access.actor,
        "kind": ACCESS_KINDS[access.action],
        "purpose": access.purpose,
        "recording_id": str(access.recording_id),
        "call_started_at": rfc3339(access.call_started_at),
    }
