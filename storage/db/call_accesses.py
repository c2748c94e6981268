"""The audit trail's accesses to the calls one agent handled, for that agent to read.

Reads only: which actions count as an access, and who may ask, is retrieval's rule; this
joins the trail to the recordings' ``agent`` and hands back no more of either than a
person needs to recognise their call (its id and when it started), never its numbers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from storage.db.database import Database
from storage.db.models import AuditEvent, Recording


@dataclass(frozen=True, slots=True)
class CallAccessQuery:
    """One page of allowed accesses of ``actions`` to ``agent``'s calls (or to one
    recording, for a subject access export), newest first, from before ``before_seq``
    (from the latest when it is None)."""

    agent: str | None
    actions: frozenset[str]
    limit: int
    before_seq: int | None = None
    recording_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class CallAccess:
    """One access as the agent is shown it: who (as the trail names them), when, what, why,
    and the call it was to."""

    seq: int
    occurred_at: datetime
    actor: str
    action: str
    purpose: str | None
    recording_id: uuid.UUID
    call_started_at: datetime


class CallAccesses:
    """Reads accesses to one agent's calls from the trail."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def accesses(self, query: CallAccessQuery) -> list[CallAccess]:
        """The page ``query`` asks for. Once a recording is deleted its agent is erased with
        the rest of its personal data, so accesses to it are no longer anyone's to list."""
        statement = (
            select(
                AuditEvent.seq,
                AuditEvent.occurred_at,
                AuditEvent.actor,
                AuditEvent.action,
                AuditEvent.purpose,
                AuditEvent.recording_id,
                Recording.started_at,
            )
            .join(Recording, Recording.id == AuditEvent.recording_id)
            .where(
                AuditEvent.action.in_(sorted(query.actions)),
                AuditEvent.outcome == "allow",
            )
        )
        if query.agent is None and query.recording_id is None:
            raise ValueError("name the agent or the recording whose accesses are read")
        if query.agent is not None:
            statement = statement.where(Recording.agent == query.agent)
        if query.recording_id is not None:
            statement = statement.where(AuditEvent.recording_id == query.recording_id)
        if query.before_seq is not None:
            statement = statement.where(AuditEvent.seq < query.before_seq)
        statement = statement.order_by(AuditEvent.seq.desc()).limit(query.limit)
        async with self._database.read() as session:
            rows = (await session.execute(statement)).all()
        # The join makes recording_id present on every row.
        return [
            CallAccess(seq, at, actor, action, purpose, recording, started)
            for seq, at, actor, action, purpose, recording, started in rows
            if recording is not None
        ]
