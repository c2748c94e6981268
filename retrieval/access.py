"""Looking recordings up on behalf of a person: need to know applied, refusals audited.

Shared by every handler that touches a recording, so the rule and its audit trail are
the same everywhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from retrieval.auth import Principal
from retrieval.errors import Forbidden, Gone, NotFound
from retrieval.policy import may_search, may_see
from storage import AuditRecord, RecordingView, SearchQuery, in_force


class RecordingQueries(Protocol):
    """What the API reads from storage."""

    async def get(self, recording_id: uuid.UUID) -> RecordingView | None: ...

    async def search(self, query: SearchQuery) -> list[RecordingView]: ...


class ReferralChanges(Protocol):
    """What the API changes in storage: referral links, each audited with the change."""

    async def link(self, recording_id: uuid.UUID, reference: str, *, actor: str) -> bool: ...

    async def unlink(self, recording_id: uuid.UUID, reference: str, *, actor: str) -> bool: ...


class DeletionRecords(Protocol):
    """The deletion ledger kept outside the database: it outlives a restored backup."""

    async def deleted_at(self, recording_id: uuid.UUID) -> datetime | None: ...


class AuditSink(Protocol):
    """Where the API writes who looked at what, and who was refused."""

    async def record(self, record: AuditRecord) -> None: ...


class RecordingAccess:
    """Finds a recording for a person, or refuses (and audits the refusal)."""

    def __init__(
        self,
        queries: RecordingQueries,
        audit: AuditSink,
        clock: Callable[[], datetime],
        ledger: DeletionRecords | None = None,
    ) -> None:
        self.queries = queries
        self.audit = audit
        self.clock = clock
        self.ledger = ledger

    async def visible(
        self, principal: Principal, recording_id: uuid.UUID, action: str
    ) -> RecordingView:
        """The recording if this person may see it and it may still be used.

        Forbidden for a role that sees no recordings; NotFound for a missing recording
        and, identically, for one of another team (so ids cannot be probed); Gone once
        deleted or past its deadline.
        """
        if not may_search(principal):
            await self.deny(principal, action, None, "role")
            raise Forbidden("this role does not look recordings up")
        view = await self.queries.get(recording_id)
        if view is None:
            raise NotFound("no such recording")
        if not may_see(principal, view.team):
            await self.deny(principal, action, recording_id, "team")
            raise NotFound("no such recording")
        await self.refuse_if_gone(view)
        return view

    async def refuse_if_gone(self, view: RecordingView) -> None:
        """Gone (410) as ``refuse_if_gone`` says, and also when the deletion ledger records
        the recording's deletion though the database does not (a restored backup whose
        deletions are not yet re-applied). The ledger answers from memory; see
        ``storage.anchors.ledger``."""
        refuse_if_gone(view, self.clock())
        if self.ledger is not None:
            deleted_at = await self.ledger.deleted_at(view.id)
            if deleted_at is not None:
                raise Gone("the recording was deleted", status="deleted", deleted_at=deleted_at)

    async def deny(
        self,
        principal: Principal,
        action: str,
        recording_id: uuid.UUID | None,
        reason: str,
        note: str | None = None,
    ) -> None:
        """Write a refusal to the audit trail."""
        details = {"reason": reason} | ({"note": note} if note else {})
        await self.audit.record(
            AuditRecord(
                actor=principal.actor,
                action=action,
                outcome="deny",
                recording_id=recording_id,
                details=details,
            )
        )


def refuse_if_gone(view: RecordingView, now: datetime) -> None:
    """Gone (410) once deleted or being deleted, and from its retention deadline on, swept
    or not, unless a hold is in force."""
    if view.deleted_at is not None:
        raise Gone("the recording was deleted", status="deleted", deleted_at=view.deleted_at)
    if view.state == "deleting":
        raise Gone("the recording is being deleted", status="deleting", deleted_at=now)
    if view.retention_deadline <= now and not in_force(view.holds, now):
        raise Gone(
            "the recording is past its retention deadline",
            status="deleted",
            deleted_at=view.retention_deadline,
        )
