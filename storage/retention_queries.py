"""The rows, counts and events retention's attestation and operator report are made from.

Only the questions and the writing live here; what an attestation says, when one is due
and how the status reads are retention's rules.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import AuditRecord, AuditTrail
from storage.db.database import Database
from storage.db.models import AuditEvent, Recording, RecordingHold, RecordingState
from storage.holds import held_at, hold_in_force
from storage.vocabulary import RETENTION_ACTOR

SWEEP_ACTION = "retention.sweep"
ATTESTATION_ACTION = "retention.attestation"


KEYS_DESTROYED_ACTION = "recording.keys_destroyed"
"""The audit action of a deletion's first step: its data keys destroyed, in one commit."""


@dataclass(frozen=True, slots=True)
class RetentionFacts:
    """Counts and times an operator needs to see that nothing outlives its deadline."""

    stored: int
    due: int
    overdue: int
    deleting: int
    deleted: int
    held: int
    held_past_deadline: int
    holds_by_kind: dict[str, int]
    oldest_deadline: datetime | None
    oldest_unheld_started_at: datetime | None
    last_sweep_at: datetime | None
    last_sweep: dict[str, object] | None
    last_attestation_at: datetime | None
    last_attestation_passed: bool | None
    """Whether the last attestation found nothing unheld past its deadline (None: none yet)."""


class RetentionQueries:
    """Counts and rows about deadlines and deletions, and the retention events' writing."""

    def __init__(self, *, database: Database, audit: AuditTrail) -> None:
        self._database = database
        self._audit = audit

    async def record_sweep(self, details: dict[str, Any]) -> None:
        """Write a sweep's audit event with the ``details`` retention gives it."""
        await self._record(AuditRecord(actor=RETENTION_ACTOR, action=SWEEP_ACTION, details=details))

    async def record_attestation(self, details: dict[str, Any], *, passed: bool) -> None:
        """Write an attestation's audit event: ``details`` as given, outcome fail unless passed."""
        await self._record(
            AuditRecord(
                actor=RETENTION_ACTOR,
                action=ATTESTATION_ACTION,
                outcome="allow" if passed else "fail",
                details=details,
            )
        )

    async def overdue_unheld(self, *, now: datetime) -> int:
        """How many recordings (stored, or captures never finished) are past their deadline
        at ``now`` with no hold in force; see ``overdue``."""
        async with self._database.read() as session:
            count = (await session.execute(select(func.count()).where(overdue(now)))).scalar_one()
        return int(count)

    async def held_past_deadline(
        self, *, now: datetime, limit: int
    ) -> list[tuple[uuid.UUID, str, datetime]]:
        """Up to ``limit`` (recording id, hold kind, review by) of holds in force on overdue
        recordings, in recording and kind order."""
        async with self._database.read() as session:
            rows = await session.execute(
                select(RecordingHold.recording_id, RecordingHold.kind, RecordingHold.review_by)
                .join(Recording, Recording.id == RecordingHold.recording_id)
                .where(_past(now), hold_in_force(now))
                .order_by(RecordingHold.recording_id, RecordingHold.kind)
                .limit(limit)
            )
            return [(rid, kind, review_by) for rid, kind, review_by in rows.all()]

    async def deleted_since(self, since: datetime) -> list[tuple[datetime, datetime]]:
        """(deleted at, deadline) of every recording deleted after ``since``."""
        async with self._database.read() as session:
            rows = await session.execute(
                select(Recording.deleted_at, Recording.retention_deadline).where(
                    Recording.state == RecordingState.DELETED,
                    Recording.deleted_at > since,
                )
            )
            return [(deleted_at, deadline) for deleted_at, deadline in rows.all() if deleted_at]

    async def erasures_since(self, since: datetime) -> list[dict[str, Any]]:
        """The authorisation (who allowed it, under which rule) of each early erasure begun
        after ``since``, oldest first; ``{}`` for one recorded without."""
        async with self._database.read() as session:
            rows = await session.execute(
                select(AuditEvent.details)
                .where(
                    AuditEvent.action == KEYS_DESTROYED_ACTION,
                    AuditEvent.occurred_at > since,
                )
                .order_by(AuditEvent.seq)
            )
            return [
                dict(details.get("authorisation") or {})
                for (details,) in rows.all()
                if details and details.get("reason") == "erasure"
            ]

    async def facts(self, *, now: datetime, cutoff: datetime) -> RetentionFacts:
        """Counts by state, what the next sweep will take, what is already overdue, holds."""
        async with self._database.read() as session:
            counts = dict(
                (
                    await session.execute(
                        select(Recording.state, func.count()).group_by(Recording.state)
                    )
                ).all()
            )
            stored = Recording.state == RecordingState.STORED
            unheld = ~held_at(now)

            async def scalar(statement: Any) -> Any:
                return (await session.execute(statement)).scalar_one()

            due = await scalar(select(func.count()).where(due_unheld(cutoff, now)))
            overdue_count = await scalar(select(func.count()).where(overdue(now)))
            held = await scalar(select(func.count()).where(stored, held_at(now)))
            held_past = await scalar(
                select(func.count()).where(
                    stored, held_at(now), Recording.retention_deadline <= now
                )
            )
            oldest = await scalar(select(func.min(Recording.retention_deadline)).where(stored))
            oldest_unheld = await scalar(
                select(func.min(Recording.started_at)).where(stored, unheld)
            )
            by_kind = dict(
                (
                    await session.execute(
                        select(RecordingHold.kind, func.count())
                        .where(hold_in_force(now))
                        .group_by(RecordingHold.kind)
                    )
                ).all()
            )
            last = await _last_event(session, SWEEP_ACTION)
            attestation = await _last_event(session, ATTESTATION_ACTION)
        return RetentionFacts(
            stored=int(counts.get(RecordingState.STORED, 0)),
            due=int(due),
            overdue=int(overdue_count),
            deleting=int(counts.get(RecordingState.DELETING, 0)),
            deleted=int(counts.get(RecordingState.DELETED, 0)),
            held=int(held),
            held_past_deadline=int(held_past),
            holds_by_kind={str(kind): int(count) for kind, count in by_kind.items()},
            oldest_deadline=_aware(oldest),
            oldest_unheld_started_at=_aware(oldest_unheld),
            last_sweep_at=last.occurred_at if last is not None else None,
            last_sweep=dict(last.details or {}) if last is not None else None,
            last_attestation_at=attestation.occurred_at if attestation is not None else None,
            last_attestation_passed=(
                attestation.outcome == "allow" if attestation is not None else None
            ),
        )

    async def _record(self, event: AuditRecord) -> None:
        async with self._database.transaction() as session:
            await self._audit.append(session, event)


def due_unheld(before: datetime, now: datetime) -> ColumnElement[bool]:
    """What a sweep takes, in one place so the dry run, the sweep and the status agree:
    stored, deadline before ``before``, no hold in force at ``now``."""
    return and_(
        Recording.state == RecordingState.STORED,
        Recording.retention_deadline < before,
        ~held_at(now),
    )


def overdue(now: datetime) -> ColumnElement[bool]:
    """What must never exist, in one place so the attestation, the status and the metric
    agree: a recording past its deadline at ``now`` with no hold in force, whether stored
    or a capture that never finished (a ``pending`` row still carries the call's phone
    numbers, and the retention cycle reaps it by its deadline)."""
    return and_(
        Recording.state.in_((RecordingState.STORED, RecordingState.PENDING)),
        Recording.retention_deadline <= now,
        ~held_at(now),
    )


def _past(now: datetime) -> ColumnElement[bool]:
    """Stored with its deadline at or before ``now``, held or not."""
    return and_(Recording.state == RecordingState.STORED, Recording.retention_deadline <= now)


async def _last_event(session: AsyncSession, action: str) -> AuditEvent | None:
    return (
        await session.execute(
            select(AuditEvent)
            .where(AuditEvent.action == action)
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


def _aware(moment: datetime | None) -> datetime | None:
    # Deadlines are stored in UTC; a backend that drops the zone on an aggregate means UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
