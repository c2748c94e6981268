"""``/subject-access-requests`` and ``POST /recordings/search``: the DPO answering a
person's right of access, every step audited.

Only the DPO reaches these (``retrieval.policy.may_handle_subject_access``); the statutory
clock, what a case covers and its holds are the retention package's rules, reached
through the small ``SubjectAccessDesk`` protocol. A rule refused there is a ValueError
with a message for the DPO (422).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from retrieval.access import RecordingAccess
from retrieval.auth import Principal
from retrieval.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from retrieval.middleware import principal_of
from retrieval.parsing import json_object
from retrieval.policy import may_handle_subject_access
from retrieval.representations import recording_json
from retrieval.subject_requests import (
    day_of,
    moment_of,
    numbers_of,
    reason_of,
    redaction_of,
    referrals_of,
    request_reference_of,
)
from storage import (
    AuditRecord,
    CaseClosed,
    CaseExists,
    CaseMissing,
    CaseView,
    NotInCase,
    RecordingView,
    rfc3339,
)

MAX_SEARCH_RESULTS = 200
CASE_STATES = ("open", "closed", "all")


class SubjectAccessDesk(Protocol):
    """The retention package's subject access office."""

    def criteria(
        self,
        *,
        phone_numbers: tuple[str, ...],
        referrals: tuple[str, ...],
        started_after: datetime | None,
        started_before: datetime | None,
    ) -> Any: ...

    async def find(self, criteria: Any, *, limit: int) -> list[RecordingView]: ...

    async def open(
        self, *, reference: str, received: Any, reason: str, criteria: Any, actor: str
    ) -> CaseView: ...

    async def get(self, case_id: uuid.UUID) -> CaseView: ...

    async def listed(self, *, state: str | None) -> list[CaseView]: ...

    async def extend(self, case_id: uuid.UUID, *, reason: str, actor: str) -> CaseView: ...

    async def choose_redaction(
        self,
        case_id: uuid.UUID,
        recording_id: uuid.UUID,
        *,
        redaction: Mapping[str, Any],
        actor: str,
    ) -> CaseView: ...

    async def close(self, case_id: uuid.UUID, *, reason: str, actor: str) -> CaseView: ...


_SEARCH_SHAPE = '{"phone_numbers": [...], "referrals": [...], "reason": ...}'
_OPEN_SHAPE = '{"reference", "received", "reason", "phone_numbers"[, "referrals", ...]}'
_REDACTION_SHAPE = '{"keep_channel": 0|1|null, "muted": [[start, end], ...]}'


class SubjectAccessHandlers:
    """Find a person's calls; open, read, extend, redact and close their request's case."""

    def __init__(self, access: RecordingAccess, desk: SubjectAccessDesk, *, region: str) -> None:
        self._access = access
        self._desk = desk
        self._region = region

    async def search(self, request: web.Request) -> web.Response:
        """``POST /recordings/search``: a person's calls by number or referral, every team."""
        principal = await self._dpo(request, "recording.subject_search")
        body = await json_object(request, _SEARCH_SHAPE)
        criteria = self._criteria(body, numbers_required=False)
        reason = reason_of(body)
        try:
            found = await self._desk.find(criteria, limit=MAX_SEARCH_RESULTS + 1)
        except ValueError as exc:
            raise Unprocessable(str(exc)) from None
        page = found[:MAX_SEARCH_RESULTS]
        await self._access.audit.record(
            AuditRecord(
                actor=principal.actor,
                action="recording.subject_search",
                purpose="subject_access",
                details={
                    "reason": reason,
                    "phone_numbers": len(body.get("phone_numbers") or ()),
                    "referrals": list(referrals_of(body)),
                    "results": [str(view.id) for view in page],
                },
            )
        )
        now = self._access.clock()
        return web.json_response(
            {
                "recordings": [recording_json(view, principal, now) for view in page],
                "truncated": len(found) > MAX_SEARCH_RESULTS,
            }
        )

    async def open(self, request: web.Request) -> web.Response:
        """``POST /subject-access-requests``: 201 with the case, its recordings held."""
        principal = await self._dpo(request, "subject_access.open")
        body = await json_object(request, _OPEN_SHAPE)
        reference = request_reference_of(body)
        received = day_of(body, "received")
        reason = reason_of(body)
        criteria = self._criteria(body, numbers_required=True)
        try:
            case = await self._desk.open(
                reference=reference,
                received=received,
                reason=reason,
                criteria=criteria,
                actor=principal.actor,
            )
        except CaseExists:
            raise Conflict(f"a case with reference {reference} is on record already") from None
        except ValueError as exc:
            raise Unprocessable(str(exc)) from None
        return web.json_response(case_json(case, self._access.clock()), status=201)

    async def listed(self, request: web.Request) -> web.Response:
        """``GET /subject-access-requests[?state=open|closed|all]``: nearest deadline first."""
        principal = await self._dpo(request, "subject_access.list")
        state = request.query.get("state", "open")
        if state not in CASE_STATES or set(request.query) - {"state"}:
            raise BadRequest("the only parameter is state: open, closed or all")
        cases = await self._desk.listed(state=None if state == "all" else state)
        await self._access.audit.record(
            AuditRecord(
                actor=principal.actor, action="subject_access.list", details={"state": state}
            )
        )
        now = self._access.clock()
        return web.json_response({"cases": [case_json(case, now) for case in cases]})

    async def get(self, request: web.Request) -> web.Response:
        """``GET /subject-access-requests/{id}``: the case and its recordings."""
        principal = await self._dpo(request, "subject_access.view")
        case = await self._case(_case_id(request))
        await self._access.audit.record(
            AuditRecord(
                actor=principal.actor,
                action="subject_access.view",
                details={"case_id": str(case.id), "reference": case.reference},
            )
        )
        return web.json_response(case_json(case, self._access.clock()))

    async def extend(self, request: web.Request) -> web.Response:
        """``POST /subject-access-requests/{id}/extend`` ``{"reason"}``: +2 months, once."""
        principal = await self._dpo(request, "subject_access.extend")
        case_id = _case_id(request)
        reason = reason_of(await json_object(request, '{"reason": ...}'))
        case = await self._change(self._desk.extend(case_id, reason=reason, actor=principal.actor))
        return web.json_response(case_json(case, self._access.clock()))

    async def close(self, request: web.Request) -> web.Response:
        """``POST /subject-access-requests/{id}/close`` ``{"reason"}``: holds released."""
        principal = await self._dpo(request, "subject_access.close")
        case_id = _case_id(request)
        reason = reason_of(await json_object(request, '{"reason": ...}'))
        case = await self._change(self._desk.close(case_id, reason=reason, actor=principal.actor))
        return web.json_response(case_json(case, self._access.clock()))

    async def redact(self, request: web.Request) -> web.Response:
        """``PUT /subject-access-requests/{id}/recordings/{recording}/redaction``."""
        principal = await self._dpo(request, "subject_access.redaction")
        case = await self._case(_case_id(request))
        item = next(
            (each for each in case.recordings if str(each.recording_id) == _recording(request)),
            None,
        )
        if item is None:
            raise NotFound("the case does not cover that recording")
        body = await json_object(request, _REDACTION_SHAPE)
        redaction = redaction_of(body, channels=item.channels, duration_s=item.duration_s)
        changed = await self._change(
            self._desk.choose_redaction(
                case.id, item.recording_id, redaction=redaction, actor=principal.actor
            )
        )
        return web.json_response(case_json(changed, self._access.clock()))

    async def _dpo(self, request: web.Request, action: str) -> Principal:
        principal = principal_of(request)
        if not may_handle_subject_access(principal):
            await self._access.deny(principal, action, None, "role")
            raise Forbidden("only the DPO handles subject access requests")
        return principal

    def _criteria(self, body: dict[str, Any], *, numbers_required: bool) -> Any:
        numbers = numbers_of(body, self._region, required=numbers_required)
        referrals = referrals_of(body)
        if not (numbers or referrals):
            raise Unprocessable("name at least one phone number or referral")
        after, before = moment_of(body, "started_after"), moment_of(body, "started_before")
        if after is not None and before is not None and before <= after:
            raise Unprocessable("started_before must be after started_after")
        return self._desk.criteria(
            phone_numbers=numbers, referrals=referrals, started_after=after, started_before=before
        )

    async def _case(self, case_id: uuid.UUID) -> CaseView:
        try:
            return await self._desk.get(case_id)
        except CaseMissing:
            raise NotFound("no such subject access request") from None

    async def _change(self, change: Any) -> CaseView:
        try:
            case: CaseView = await change
        except CaseMissing:
            raise NotFound("no such subject access request") from None
        except NotInCase:
            raise NotFound("the case does not cover that recording") from None
        except CaseClosed:
            raise Conflict("the case is closed") from None
        except ValueError as exc:
            raise Unprocessable(str(exc)) from None
        return case


def case_json(case: CaseView, now: datetime) -> dict[str, Any]:
    """A case as the DPO sees it: its clock, its state, and each recording's redaction."""
    overdue = case.state == "open" and case.deadline < now.date()
    return {
        "id": str(case.id),
        "reference": case.reference,
        "received": case.received.isoformat(),
        "deadline": case.deadline.isoformat(),
        "days_left": (case.deadline - now.date()).days,
        "overdue": overdue,
        "state": case.state,
        "reason": case.reason,
        "opened_by": case.opened_by,
        "opened_at": rfc3339(case.opened_at),
        "extension": None
        if case.extended_at is None
        else {
            "by": case.extended_by,
            "at": rfc3339(case.extended_at),
            "reason": case.extension_reason,
        },
        "closed": None
        if case.closed_at is None
        else {"by": case.closed_by, "at": rfc3339(case.closed_at), "reason": case.close_reason},
        "exports": case.exports,
        "recording_count": case.recording_count,
        "recordings": [
            {
                "id": str(item.recording_id),
                "status": item.state,
                "started_at": None if item.started_at is None else rfc3339(item.started_at),
                "duration_s": item.duration_s,
                "channels": item.channels,
                "team": item.team,
                "held": item.held,
                "redaction": None if item.redaction is None else dict(item.redaction),
            }
            for item in case.recordings
        ],
    }


def _case_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("no such subject access request") from None


def _recording(request: web.Request) -> str:
    try:
        return str(uuid.UUID(request.match_info["recording"]))
    except ValueError:
        raise NotFound("the case does not cover that recording") from None
