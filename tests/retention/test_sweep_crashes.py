"""A sweep that dies at any step leaves a state the next sweep completes, exactly once.

Faults are injected in-process at each step of a deletion: inside the commit that
destroys the keys, before and after the objects are deleted, inside the commit that
strips personal data and writes the receipt, and when the sweep records itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from retention import sweep_expired_recordings
from storage import (
    RECORDINGS_PREFIX,
    AuditRecord,
    AuditTrail,
    ObjectStore,
    ObjectVersion,
    RecordingDeleter,
    verify_audit_chain,
    verify_receipt,
)
from storage.db.models import AuditEvent, DataKey, Recording
from tests.service_support import (
    KEYS_PER_RECORDING,
    OBJECTS_PER_RECORDING,
    RunningService,
    running_service,
)

HORIZON = timedelta(minutes=20)


class Crash(Exception):
    """The process dying at this point (nothing after it runs)."""


class CrashingTrail(AuditTrail):
    """The audit trail, dying when asked to append ``action`` (its transaction rolls back)."""

    def __init__(self, inner: AuditTrail, action: str) -> None:
        super().__init__(lambda: datetime.now(UTC))
        self._inner = inner
        self._action = action

    async def append_many(
        self, session: AsyncSession, records: Sequence[AuditRecord]
    ) -> list[AuditEvent]:
        if any(record.action == self._action for record in records):
            raise Crash(self._action)
        return await self._inner.append_many(session, records)


class CrashingStore:
    """An object store dying before, or just after, deleting a batch."""

    def __init__(self, inner: ObjectStore, *, after: bool) -> None:
        self._inner = inner
        self._after = after

    async def delete_many(self, objects: Sequence[ObjectVersion]) -> None:
        if self._after:
            await self._inner.delete_many(objects)
        raise Crash("delete_many")


STEPS = [
    "in the commit destroying the keys",
    "before the objects are deleted",
    "after the objects are deleted",
    "in the commit writing the receipt",
    "when the sweep records itself",
]


def crashing_deleter(service: RunningService, step: str) -> RecordingDeleter:
    services = service.services
    trail: AuditTrail = services.audit
    objects: object = services.objects
    if step == STEPS[0]:
        trail = CrashingTrail(trail, "recording.keys_destroyed")
    elif step in (STEPS[1], STEPS[2]):
        objects = CrashingStore(services.objects, after=step == STEPS[2])
    elif step == STEPS[3]:
        trail = CrashingTrail(trail, "recording.deleted")
    else:
        trail = CrashingTrail(trail, "retention.sweep")
    return RecordingDeleter(
        database=services.database,
        objects=objects,  # type: ignore[arg-type]  # only delete_many is reached
        audit=trail,
        receipts=services.receipt_signer,
        clock=services.clock,
    )


@pytest.mark.parametrize("step", STEPS)
async def test_the_next_sweep_completes_what_a_crash_interrupted(
    tmp_path: Path, database_url: str, step: str
) -> None:
    async with running_service(tmp_path / "var", database_url) as service:
        now = datetime.now(UTC).replace(microsecond=0)
        due = [await service.push_call(f"due-{n}", now - timedelta(hours=n)) for n in (2, 3, 4)]
        kept = await service.push_call("kept", now)
        sweep_at = now - timedelta(hours=2) + timedelta(days=90) + timedelta(minutes=1) - HORIZON

        with pytest.raises(Crash):
            await sweep_expired_recordings(
                crashing_deleter(service, step), now=sweep_at, horizon=HORIZON
            )
        report = await sweep_expired_recordings(
            service.services.deleter, now=sweep_at, horizon=HORIZON
        )

        # A crash after every deletion committed leaves the next sweep nothing to do.
        expected = [] if step == STEPS[4] else sorted(due)
        assert sorted(report.deleted + report.resumed) == expected
        async with service.services.database.read() as session:
            states = dict((await session.execute(select(Recording.id, Recording.state))).all())
            assert {rid: states[rid] for rid in due} == {rid: "deleted" for rid in due}
            assert states[kept] == "stored"
            keys = (await session.execute(select(func.count()).select_from(DataKey))).scalar()
            assert keys == OBJECTS_PER_RECORDING
            events = (
                await session.execute(
                    select(AuditEvent.action, AuditEvent.recording_id, AuditEvent.details).where(
                        AuditEvent.action.in_(["recording.keys_destroyed", "recording.deleted"])
                    )
                )
            ).all()
            assert await verify_audit_chain(session) > 0
        # Exactly one key destruction and one receipt per recording, however it crashed.
        destroyed = sorted(rid for action, rid, _ in events if action == "recording.keys_destroyed")
        receipts = [details for action, _, details in events if action == "recording.deleted"]
        assert destroyed == sorted(due)
        assert sorted(uuid.UUID(r["recording_id"]) for r in receipts) == sorted(due)
        assert all(verify_receipt(r, service.services.receipts.public_pem) for r in receipts)
        left = [key async for key in service.services.objects.iter_keys(RECORDINGS_PREFIX)]
        assert len(left) == KEYS_PER_RECORDING
