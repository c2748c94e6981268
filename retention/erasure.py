"""Early erasure under the four-eyes rule: one DPO asks, a different DPO approves.

``CALLREC_ERASURE_APPROVALS`` says how many DPOs an early erasure needs: 2 (the default)
makes a DPO's erasure a request that another DPO approves or rejects; 1, for a hub with
a single DPO, erases at once, and the audit trail and attestations say it was so.
Storage keeps the requests and destroys keys; who may approve what is decided here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from storage import ErasureRequestView, NotStored, Unavailable

ERASURE_REASON = "erasure"
ERASURE_APPROVALS_SETTING = "CALLREC_ERASURE_APPROVALS"
SINGLE_DPO_RULE = f"authorised by a single DPO under {ERASURE_APPROVALS_SETTING}=1"
FOUR_EYES_RULE = f"requested and approved by two different DPOs ({ERASURE_APPROVALS_SETTING}=2)"


def erasure_rule(approvals: int) -> str:
    """How early erasures are authorised under ``approvals``, in words for the record."""
    return SINGLE_DPO_RULE if approvals == 1 else FOUR_EYES_RULE


class ErasureRecords(Protocol):
    """What the desk needs from storage: the requests, and the deleter for one DPO."""

    async def open(
        self, recording_id: uuid.UUID, *, reason: str, actor: str
    ) -> ErasureRequestView: ...

    async def get(self, request_id: uuid.UUID) -> ErasureRequestView: ...

    async def pending(
        self, *, recording_id: uuid.UUID | None = None
    ) -> list[ErasureRequestView]: ...

    async def approve(
        self, request_id: uuid.UUID, *, actor: str, authorisation: Mapping[str, Any]
    ) -> ErasureRequestView: ...

    async def reject(
        self, request_id: uuid.UUID, *, actor: str, reason: str
    ) -> ErasureRequestView: ...

    async def finish(self, recording_id: uuid.UUID) -> None: ...


class SingleEraser(Protocol):
    """What an erasure by one DPO needs from storage's deleter."""

    async def begin_one(
        self,
        recording_id: uuid.UUID,
        *,
        actor: str,
        reason: str,
        note: str | None = None,
        authorisation: Mapping[str, Any] | None = None,
    ) -> bool: ...


class SelfApproval(PermissionError):
    """A DPO tried to approve their own erasure request: a second, different DPO must."""


@dataclass(frozen=True, slots=True)
class Erasure:
    """An erasure begun: ``finished`` False when the objects go at the next sweep;
    ``request`` the approved request, when there was one."""

    recording_id: uuid.UUID
    finished: bool
    request: ErasureRequestView | None = None


def authorisation_of(approvals: int, *, by: str, requested_by: str | None = None) -> dict[str, Any]:
    """What the audit event of the keys' destruction says about who allowed the erasure."""
    if approvals == 1:
        return {"approvals": 1, "authorised_by": by, "rule": erasure_rule(1)}
    return {
        "approvals": 2,
        "requested_by": requested_by,
        "approved_by": by,
        "rule": erasure_rule(2),
    }


class ErasureDesk:
    """Erases early, or asks for and decides erasures, as ``approvals`` requires."""

    def __init__(self, records: ErasureRecords, eraser: SingleEraser, *, approvals: int) -> None:
        if approvals not in (1, 2):
            raise ValueError("approvals must be 1 or 2")
        self._records = records
        self._eraser = eraser
        self.approvals = approvals

    async def erase(
        self, recording_id: uuid.UUID, *, reason: str, actor: str
    ) -> Erasure | ErasureRequestView:
        """A DPO's erasure: begun now with one approval, a pending request with two.

        Raises RecordingHeld while a hold is in force and NotStored when the recording
        is not stored; with two approvals, ErasureAlreadyRequested when one is pending.
        """
        if self.approvals == 2:
            return await self._records.open(recording_id, reason=reason, actor=actor)
        if not await self._eraser.begin_one(
            recording_id,
            actor=actor,
            reason=ERASURE_REASON,
            note=reason,
            authorisation=authorisation_of(1, by=actor),
        ):
            raise NotStored(str(recording_id))
        return await self._finish(recording_id, None)

    async def pending(self, *, recording_id: uuid.UUID | None = None) -> list[ErasureRequestView]:
        """The requests awaiting a second DPO, oldest first."""
        return await self._records.pending(recording_id=recording_id)

    async def approve(self, request_id: uuid.UUID, *, actor: str) -> Erasure:
        """A second DPO approves: the erasure happens as a single DPO's would.

        Raises SelfApproval for the DPO who asked, and what ErasureRequests.approve raises.
        """
        request = await self._records.get(request_id)
        if request.requested_by == actor:
            raise SelfApproval("a different DPO must approve this erasure")
        approved = await self._records.approve(
            request_id,
            actor=actor,
            authorisation=authorisation_of(2, by=actor, requested_by=request.requested_by),
        )
        return await self._finish(approved.recording_id, approved)

    async def reject(self, request_id: uuid.UUID, *, actor: str, reason: str) -> ErasureRequestView:
        """A DPO rejects a pending request with a reason (the one who asked may withdraw it
        this way too: nothing is destroyed by a rejection)."""
        return await self._records.reject(request_id, actor=actor, reason=reason)

    async def _finish(self, recording_id: uuid.UUID, request: ErasureRequestView | None) -> Erasure:
        try:
            await self._records.finish(recording_id)
        except Unavailable:
            return Erasure(recording_id, finished=False, request=request)
        return Erasure(recording_id, finished=True, request=request)
