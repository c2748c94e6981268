"""Calls without a referral: a team's supervisors list their calls still linked to no
referral ``CALLREC_UNLINKED_REVIEW_AFTER`` after they started, and settle each one.

A call is settled by linking it (the referral-link endpoint, as anywhere else) or by
marking it as needing none, with a reason: ``POST /recordings/{id}/no-referral``. The list
shows what a supervisor needs to recognise the call (when, team, agent, length, deadline),
never the parties' numbers. Reading the list and every mark are audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from aiohttp import web

from retrieval.access import RecordingAccess
from retrieval.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from retrieval.grants import check_reason
from retrieval.middleware import principal_of
from retrieval.parsing import (
    MAX_LABEL,
    cursor_after,
    cursor_position,
    json_object,
    recording_id_from,
)
from retrieval.policy import may_triage, triage_teams
from storage import (
    NO_REFERRAL_ACTION,
    AuditRecord,
    NoReferralDecision,
    NotStored,
    TriageSettled,
    UnlinkedQuery,
    UnlinkedRecording,
    rfc3339,
    whole_number,
)

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200
PARAMETERS: Final = ("team", "cursor", "limit")
LIST_ACTION: Final = "recording.unlinked_list"
"""The audit action of a read of the list."""
_REASON_SHAPE = '{"reason": ...}'
_SETTLED = {
    "linked": "the recording is linked to a referral: it needs no triage",
    "decided": "the recording is already marked as needing no referral",
}


class TriageDesk(Protocol):
    """Where the calls awaiting triage are read, and "no referral" decisions recorded."""

    async def awaiting(self, query: UnlinkedQuery) -> list[UnlinkedRecording]: ...

    async def mark_no_referral(
        self, recording_id: uuid.UUID, *, reason: str, actor: str
    ) -> NoReferralDecision: ...


class TriageHandlers:
    """The list of a supervisor's calls without a referral, and marking one as needing none."""

    def __init__(self, access: RecordingAccess, desk: TriageDesk, review_after: timedelta) -> None:
        self._access = access
        self._desk = desk
        self._review_after = review_after

    async def listed(self, request: web.Request) -> web.Response:
        """``GET /api/v1/unlinked-recordings?team=&cursor=&limit=``: oldest first."""
        principal = principal_of(request)
        if not may_triage(principal):
            await self._access.deny(principal, LIST_ACTION, None, "role")
            raise Forbidden("only a team's supervisors triage its calls without a referral")
        team, after, limit = _page(request.query)
        found = await self._desk.awaiting(
            UnlinkedQuery(
                teams=triage_teams(principal),
                now=self._access.clock(),
                review_after=self._review_after,
                team=team,
                after=after,
                limit=limit + 1,
            )
        )
        page = found[:limit]
        await self._access.audit.record(
            AuditRecord(
                actor=principal.actor,
                action=LIST_ACTION,
                details={
                    "filters": {k: v for k, v in request.query.items() if k != "cursor"},
                    "results": len(page),
                },
            )
        )
        return web.json_response(
            {
                "review_after_days": self._review_after / timedelta(days=1),
                "recordings": [_unlinked_json(recording) for recording in page],
                "next_cursor": cursor_after(page[-1]) if len(found) > limit else None,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def no_referral(self, request: web.Request) -> web.Response:
        """``POST /api/v1/recordings/{id}/no-referral`` ``{"reason"}``: 201 marked; 409 when
        linked or already marked."""
        principal = principal_of(request)
        if not may_triage(principal):
            await self._access.deny(principal, NO_REFERRAL_ACTION, None, "role")
            raise Forbidden("only a team's supervisors mark its calls as needing no referral")
        view = await self._access.visible(principal, recording_id_from(request), NO_REFERRAL_ACTION)
        # A supervisor who also sees every team (another role) still triages only their own.
        if view.team is None or view.team not in triage_teams(principal):
            await self._access.deny(principal, NO_REFERRAL_ACTION, view.id, "team")
            raise NotFound("no such recording")
        body = await json_object(request, _REASON_SHAPE)
        try:
            reason = check_reason(body.get("reason"))
        except ValueError as exc:
            raise Unprocessable(str(exc)) from None
        try:
            decision = await self._desk.mark_no_referral(
                view.id, reason=reason, actor=principal.actor
            )
        except NotStored:
            raise Conflict("the recording is being deleted") from None
        except TriageSettled as settled:
            raise Conflict(_SETTLED[settled.why]) from None
        return web.json_response(
            {"id": str(view.id), "no_referral": _decision_json(decision)}, status=201
        )


def _page(
    params: Mapping[str, str],
) -> tuple[str | None, tuple[datetime, uuid.UUID] | None, int]:
    unknown = set(params) - set(PARAMETERS)
    if unknown:
        raise BadRequest(f"unknown parameter {sorted(unknown)[0]!r}")
    team = params.get("team")
    if team is not None and not (0 < len(team) <= MAX_LABEL and team.isprintable()):
        raise BadRequest(f"team must be 1 to {MAX_LABEL} printable characters")
    limit = DEFAULT_LIMIT
    if "limit" in params:
        number = whole_number(params["limit"])
        if number is None or not 1 <= number <= MAX_LIMIT:
            raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        limit = number
    return team, cursor_position(params.get("cursor")), limit


def _unlinked_json(recording: UnlinkedRecording) -> dict[str, Any]:
    return {
        "id": str(recording.id),
        "started_at": rfc3339(recording.started_at),
        "ended_at": None if recording.ended_at is None else rfc3339(recording.ended_at),
        "team": recording.team,
        "agent": recording.agent,
        "duration_s": recording.duration_s,
        "retention_deadline": rfc3339(recording.retention_deadline),
    }


def _decision_json(decision: NoReferralDecision) -> dict[str, Any]:
    return {
        "reason": decision.reason,
        "decided_by": decision.decided_by,
        "decided_at": rfc3339(decision.decided_at),
    }
