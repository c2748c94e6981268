"""Reaping captures that will never finish: the pending rows a crash or a failed store
left behind, their objects and their personal data.

A capture claims its source id as a ``pending`` row before it uploads, and a process
that dies (or a store that fails and cannot be cleaned up) leaves that row behind, with
the call's phone numbers on it. Every retention cycle reaps such rows, and so does the
source's next delivery of the same id; each reaping is audited.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from storage.audit import AuditRecord, AuditTrail
from storage.db.database import Database
from storage.db.repository import RecordingRepository
from storage.errors import StoreUnavailable
from storage.keys.key_shares import share_key_for
from storage.objects.store import ObjectStore
from storage.vocabulary import RETENTION_ACTOR, rfc3339

log = logging.getLogger(__name__)
# Between claiming its id and committing, a capture only uploads its objects; one that
# is still pending after this long belongs to a process that died.
ABANDONED_AFTER = timedelta(minutes=15)
ABANDONED_ACTION = "recording.capture_abandoned"


class CaptureReaper:
    """Removes abandoned captures, their objects first; every removal audited."""

    def __init__(
        self,
        *,
        database: Database,
        objects: ObjectStore,
        audit: AuditTrail,
        clock: Callable[[], datetime],
        abandoned_after: timedelta = ABANDONED_AFTER,
    ) -> None:
        self._database = database
        self._objects = objects
        self._audit = audit
        self._clock = clock
        self._abandoned_after = abandoned_after

    async def remove(
        self,
        recording_id: uuid.UUID,
        *,
        received_before: datetime,
        due_before: datetime | None = None,
        actor: str,
    ) -> bool:
        """Remove an abandoned capture's objects, then its row; audited. False if it is not
        (or no longer) abandoned: a capture that committed meanwhile keeps everything.

        The row stays locked while its objects go, so a capture still uploading cannot
        commit onto missing objects (it finds the row gone and releases what it wrote).
        When the store cannot delete them, the row loses its personal data at once and
        stays ``pending`` for the next reaping, and StoreUnavailable is raised.
        """
        failure: StoreUnavailable | None = None
        async with self._database.transaction() as session:
            repository = RecordingRepository(session)
            row = await repository.lock_abandoned(
                recording_id, received_before=received_before, due_before=due_before
            )
            if row is None:
                return False
            past_due = due_before is not None and row.retention_deadline < due_before
            details: dict[str, Any] = {
                "source_recording_id": row.source_recording_id,
                "received_at": rfc3339(row.received_at),
                "deadline": rfc3339(row.retention_deadline),
                "reason": "past_deadline" if past_due else "abandoned",
                "objects": len(row.objects),
            }
            try:
                for stored in row.objects:
                    await self._objects.delete(stored.object_key)
                if row.key_share_digest is not None:
                    await self._objects.delete(share_key_for(row.id))
            except StoreUnavailable as exc:
                failure = exc
                await repository.strip_personal_data([row])
            else:
                await repository.remove_pending(recording_id)
            await self._audit.append(
                session,
                AuditRecord(
                    actor=actor,
                    action=ABANDONED_ACTION,
                    outcome="allow" if failure is None else "error",
                    recording_id=recording_id,
                    details=details | {"objects_removed": failure is None},
                ),
            )
        if failure is not None:
            raise failure
        return True

    async def reap(
        self, *, older_than: timedelta | None = None, due_before: datetime | None = None
    ) -> int:
        """Remove captures that will never finish, and their objects; return how many.

        Pending captures claimed more than ``older_than`` ago (by default ABANDONED_AFTER)
        and, whatever their age, those whose recording is due before ``due_before``, so
        that a retention cycle leaves no pending row to outlive its deadline. One whose
        objects the store cannot delete yet still loses its personal data now; its
        objects go at a later reaping.
        """
        cutoff = self._clock() - (older_than or self._abandoned_after)
        async with self._database.read() as session:
            abandoned = await RecordingRepository(session).abandoned_pending(
                cutoff, due_before=due_before
            )
        reaped = 0
        for recording_id in abandoned:
            try:
                reaped += await self.remove(
                    recording_id,
                    received_before=cutoff,
                    due_before=due_before,
                    actor=RETENTION_ACTOR,
                )
            except StoreUnavailable:
                reaped += 1  # its personal data is gone; its objects at the next reaping
                log.warning("could not delete an abandoned capture's objects", exc_info=True)
        return reaped
