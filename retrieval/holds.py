"""``/recordings/{id}/hold``: keeping a recording past its deadline, on the record.

The rules for what a hold may be live in the retention package, reached through a small
protocol; this module checks who is asking and shapes the HTTP exchange. Early erasure
has its own handlers (erasure.py).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from aiohttp import web

from retrieval.access import RecordingAccess
from retrieval.errors import Conflict, Forbidden, Unprocessable
from retrieval.grants import check_reason
from retrieval.middleware import principal_of
from retrieval.parsing import json_object, recording_id_from
from retrieval.policy import may_manage_holds
from retrieval.representations import hold_json
from storage import HoldView, NotStored


class HoldOffice(Protocol):
    """Holds under the hub's retention policy."""

    async def place(
        self, recording_id: uuid.UUID, *, kind: str, reason: str, review_by: datetime, actor: str
    ) -> tuple[HoldView, bool]: ...

    async def release(
        self, recording_id: uuid.UUID, *, kind: str | None, reason: str, actor: str
    ) -> list[str]: ...


_HOLD_SHAPE = '{"type": ..., "reason": ..., "review_by": "2026-12-31"}'
_RELEASE_SHAPE = '{"reason": ...} (and "type" to release one kind only)'


class HoldHandlers:
    """Place, renew and release holds (safety reviewers, DPO)."""

    def __init__(self, access: RecordingAccess, office: HoldOffice) -> None:
        self._access = access
        self._office = office

    async def place(self, request: web.Request) -> web.Response:
        """``POST /recordings/{id}/hold``: 201 placed, 200 renewed (new reason and date)."""
        principal = principal_of(request)
        if not may_manage_holds(principal):
            await self._access.deny(principal, "hold.place", None, "role")
            raise Forbidden("only safety reviewers and the DPO place holds")
        view = await self._access.visible(principal, recording_id_from(request), "hold.place")
        body = await json_object(request, _HOLD_SHAPE)
        kind = body.get("type")
        if not isinstance(kind, str):
            raise Unprocessable(f"send JSON: {_HOLD_SHAPE}")
        reason = _reason(body)
        review_by = _review_by(body.get("review_by"))
        try:
            hold, created = await self._office.place(
                view.id, kind=kind, reason=reason, review_by=review_by, actor=principal.actor
            )
        except NotStored:
            raise Conflict("the recording is being deleted; it cannot be held") from None
        except ValueError as exc:
            raise Unprocessable(str(exc)) from None
        return web.json_response(
            {"id": str(view.id), "hold": hold_json(hold), "renewed": not created},
            status=201 if created else 200,
        )

    async def release(self, request: web.Request) -> web.Response:
        """``DELETE /recordings/{id}/hold``: 200 with the kinds released; 409 if none was."""
        principal = principal_of(request)
        if not may_manage_holds(principal):
            await self._access.deny(principal, "hold.release", None, "role")
            raise Forbidden("only safety reviewers and the DPO release holds")
        view = await self._access.visible(principal, recording_id_from(request), "hold.release")
        body = await json_object(request, _RELEASE_SHAPE)
        kind = body.get("type")
        if kind is not None and not isinstance(kind, str):
            raise Unprocessable(f"send JSON: {_RELEASE_SHAPE}")
        reason = _reason(body)
        try:
            released = await self._office.release(
                view.id, kind=kind, reason=reason, actor=principal.actor
            )
        except ValueError as exc:
            raise Unprocessable(str(exc)) from None
        if not released:
            raise Conflict("no hold of that kind is in force on this recording")
        return web.json_response({"id": str(view.id), "released": released})


def _reason(body: dict[str, Any]) -> str:
    try:
        return check_reason(body.get("reason"))
    except ValueError as exc:
        raise Unprocessable(str(exc)) from None


def _review_by(value: object) -> datetime:
    """An RFC 3339 time with a zone, or a date meaning the end of that day (UTC)."""
    if not isinstance(value, str) or len(value) > 40:
        raise Unprocessable("review_by must be a date (2026-12-31) or an RFC 3339 time")
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Unprocessable("review_by must be a date (2026-12-31) or an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise Unprocessable("review_by must carry a time zone, e.g. 2026-12-31T17:00:00Z")
    return moment.astimezone(UTC)
