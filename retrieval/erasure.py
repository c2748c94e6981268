"""``DELETE /recordings/{id}`` and ``/erasure-requests``: early erasure by the DPO, on the record.

How many DPOs an erasure needs is the retention package's rule, reached through a small
protocol; this module checks who is asking and shapes the HTTP exchange.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from retrieval.access import RecordingAccess
from retrieval.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from retrieval.grants import check_reason
from retrieval.middleware import principal_of
from retrieval.parsing import json_object, recording_id_from
from retrieval.policy import may_erase
from storage import (
    ErasureAlreadyRequested,
    ErasureRequestDecided,
    ErasureRequestMissing,
    ErasureRequestView,
    NotStored,
    RecordingHeld,
    rfc3339,
)


class ErasureOutcome(Protocol):
    """What an erasure reports: whether the objects are gone already, and its request."""

    @property
    def finished(self) -> bool: ...

    @property
    def request(self) -> ErasureRequestView | None: ...


class ErasureOffice(Protocol):
    """Early erasure under the hub's approval rule."""

    @property
    def approvals(self) -> int: ...

    async def erase(
        self, recording_id: uuid.UUID, *, reason: str, actor: str
    ) -> ErasureOutcome | ErasureRequestView: ...

    async def pending(
        self, *, recording_id: uuid.UUID | None = None
    ) -> list[ErasureRequestView]: ...

    async def approve(self, request_id: uuid.UUID, *, actor: str) -> ErasureOutcome: ...

    async def reject(
        self, request_id: uuid.UUID, *, actor: str, reason: str
    ) -> ErasureRequestView: ...


_REASON_SHAPE = '{"reason": ...}'


class ErasureHandlers:
    """Erase early or ask to (DPO); list, approve and reject the requests (another DPO)."""

    def __init__(self, access: RecordingAccess, office: ErasureOffice) -> None:
        self._access = access
        self._office = office

    async def erase(self, request: web.Request) -> web.Response:
        """``DELETE /recordings/{id}``: with one approval the keys go now (200 deleted, 202
        deleting); with two, 202 with the pending request and nothing destroyed."""
        principal = principal_of(request)
        if not may_erase(principal):
            await self._access.deny(principal, "recording.erase", None, "role")
            raise Forbidden("only the DPO erases recordings early")
        view = await self._access.visible(principal, recording_id_from(request), "recording.erase")
        reason = _reason(await json_object(request, _REASON_SHAPE))
        try:
            outcome = await self._office.erase(view.id, reason=reason, actor=principal.actor)
        except RecordingHeld as exc:
            raise Conflict(
                f"the recording is held ({', '.join(exc.kinds)}); release the hold first"
            ) from None
        except ErasureAlreadyRequested:
            raise Conflict(
                "an erasure of this recording is awaiting approval already; "
                "another DPO approves or rejects it"
            ) from None
        except NotStored:
            raise Conflict("the recording is already being deleted") from None
        if isinstance(outcome, ErasureRequestView):
            body = {
                "id": str(view.id),
                "status": "approval_required",
                "request": erasure_request_json(outcome),
            }
            return web.json_response(body, status=202)
        return _erasure_answer(view.id, outcome)

    async def listed(self, request: web.Request) -> web.Response:
        """``GET /erasure-requests[?recording=]``: the requests awaiting a second DPO,
        oldest first (of one recording, if named)."""
        principal = principal_of(request)
        if not may_erase(principal):
            await self._access.deny(principal, "erasure.list", None, "role")
            raise Forbidden("only the DPO sees erasure requests")
        pending = await self._office.pending(recording_id=_recording_filter(request))
        return web.json_response(
            {
                "approvals_required": self._office.approvals,
                "requests": [erasure_request_json(item) for item in pending],
            }
        )

    async def approve(self, request: web.Request) -> web.Response:
        """``POST /erasure-requests/{id}/approve``: a different DPO approves; the erasure
        happens (200 deleted, 202 deleting). 403 for the DPO who asked."""
        principal = principal_of(request)
        if not may_erase(principal):
            await self._access.deny(principal, "erasure.approve", None, "role")
            raise Forbidden("only a DPO approves an erasure")
        request_id = _request_id_from(request)
        try:
            outcome = await self._office.approve(request_id, actor=principal.actor)
        except PermissionError:  # the retention rule's SelfApproval: one DPO may not be two
            await self._access.deny(principal, "erasure.approve", None, "self_approval")
            raise Forbidden("you asked for this erasure; a different DPO must approve it") from None
        except ErasureRequestMissing:
            raise NotFound("no such erasure request") from None
        except ErasureRequestDecided as exc:
            raise Conflict(f"the erasure request was {exc.state} already") from None
        except RecordingHeld as exc:
            raise Conflict(
                f"the recording is held ({', '.join(exc.kinds)}); release the hold first"
            ) from None
        except NotStored:
            raise Conflict("the recording is no longer stored; reject this request") from None
        assert outcome.request is not None  # an approval always carries its request
        return _erasure_answer(outcome.request.recording_id, outcome)

    async def reject(self, request: web.Request) -> web.Response:
        """``POST /erasure-requests/{id}/reject`` ``{"reason"}``: nothing is destroyed."""
        principal = principal_of(request)
        if not may_erase(principal):
            await self._access.deny(principal, "erasure.reject", None, "role")
            raise Forbidden("only a DPO rejects an erasure")
        request_id = _request_id_from(request)
        reason = _reason(await json_object(request, _REASON_SHAPE))
        try:
            rejected = await self._office.reject(request_id, actor=principal.actor, reason=reason)
        except ErasureRequestMissing:
            raise NotFound("no such erasure request") from None
        except ErasureRequestDecided as exc:
            raise Conflict(f"the erasure request was {exc.state} already") from None
        return web.json_response({"request": erasure_request_json(rejected)})


def erasure_request_json(item: ErasureRequestView) -> dict[str, Any]:
    """An erasure request as DPOs see it."""
    return {
        "id": str(item.id),
        "recording_id": str(item.recording_id),
        "state": item.state,
        "reason": item.reason,
        "requested_by": item.requested_by,
        "requested_at": rfc3339(item.requested_at),
        "decided_by": item.decided_by,
        "decided_at": _moment(item.decided_at),
        "decision_reason": item.decision_reason,
    }


def _erasure_answer(recording_id: uuid.UUID, outcome: ErasureOutcome) -> web.Response:
    body: dict[str, Any] = {
        "id": str(recording_id),
        "status": "deleted" if outcome.finished else "deleting",
    }
    if outcome.request is not None:
        body["request"] = erasure_request_json(outcome.request)
    return web.json_response(body, status=200 if outcome.finished else 202)


def _recording_filter(request: web.Request) -> uuid.UUID | None:
    text = request.query.get("recording")
    if text is None:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        raise BadRequest("recording must be a recording id (a UUID)") from None


def _request_id_from(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("no such erasure request") from None


def _reason(body: dict[str, Any]) -> str:
    try:
        return check_reason(body.get("reason"))
    except ValueError as exc:
        raise Unprocessable(str(exc)) from None


def _moment(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)
