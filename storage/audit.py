"""The hash-chained, append-only audit trail: appending events and verifying the chain.

Each event's leaf hash covers its fields; each chain hash covers the previous chain hash
and the leaf, so editing, deleting or reordering any row breaks every later link. The
details are hashed separately so they can be lawfully redacted without breaking the chain.
"""

from __future__ import annotations

import hashlib
import json
import struct
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db.database import Database
from storage.db.models import AuditEvent, AuditHead
from storage.errors import AuditChainBroken

GENESIS = bytes(32)
_LEAF_PREFIX = b"\x00"
_CHAIN_PREFIX = b"\x01"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What happened, by whom, to which recording and why; never audio, tokens or keys."""

    actor: str
    action: str
    outcome: str = "allow"
    recording_id: uuid.UUID | None = None
    purpose: str | None = None
    details: Mapping[str, Any] | None = field(default=None)


def canonical_details(details: Mapping[str, Any] | None) -> bytes:
    """The exact bytes hashed for ``details``: sorted keys, no whitespace, UTF-8."""
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _field(value: str | None) -> bytes:
    # Length-prefixed with a presence byte, so ("ab", "c") and ("a", "bc") or None and ""
    # can never hash alike.
    if value is None:
        return b"\x00"
    encoded = value.encode()
    return b"\x01" + struct.pack(">I", len(encoded)) + encoded


def leaf_hash(event: AuditEvent) -> bytes:
    """SHA-256 over the event's fields, domain-separated from chain hashes."""
    parts = [
        struct.pack(">Q", event.seq),
        _field(event.occurred_at.astimezone(UTC).isoformat(timespec="microseconds")),
        _field(event.actor),
        _field(event.action),
        _field(str(event.recording_id) if event.recording_id else None),
        _field(event.purpose),
        _field(event.outcome),
        event.details_sha256,
    ]
    return hashlib.sha256(_LEAF_PREFIX + b"".join(parts)).digest()


def chain_hash(previous: bytes, leaf: bytes) -> bytes:
    """The running hash that links each event to everything before it."""
    return hashlib.sha256(_CHAIN_PREFIX + previous + leaf).digest()


class AuditTrail:
    """Appends events inside the caller's transaction and verifies the whole chain."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock

    async def append(self, session: AsyncSession, record: AuditRecord) -> AuditEvent:
        """Append one event in the caller's write transaction; durable when it commits.

        Call it inside ``Database.transaction()``: the head row is locked there (``FOR
        UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so concurrent appends queue
        and sequence numbers stay gapless.
        """
        (event,) = await self.append_many(session, [record])
        return event

    async def append_many(
        self, session: AsyncSession, records: Sequence[AuditRecord]
    ) -> list[AuditEvent]:
        """Append several events in order, locking the head once and inserting them together.

        A sweep writes two events per recording; one lock and one bulk insert per batch
        instead of a round trip or three per event is what lets it keep pace with the store.
        """
        if not records:
            return []
        head = (
            await session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update())
        ).scalar_one()
        occurred_at = self._clock()
        events = []
        seq, chain = head.seq, head.chain
        for record in records:
            details = dict(record.details) if record.details is not None else None
            seq += 1
            event = AuditEvent(
                seq=seq,
                occurred_at=occurred_at,
                actor=record.actor,
                action=record.action,
                recording_id=record.recording_id,
                purpose=record.purpose,
                outcome=record.outcome,
                details=details,
                details_sha256=hashlib.sha256(canonical_details(details)).digest(),
            )
            event.leaf = leaf_hash(event)
            chain = event.chain = chain_hash(chain, event.leaf)
            events.append(event)
        head.seq = seq
        head.chain = chain
        session.add_all(events)
        await session.flush()
        return events


async def verify_audit_chain(
    session: AsyncSession,
    *,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Recompute the chain from the first event; return how many events verified.

    Runs on one snapshot (REPEATABLE READ on PostgreSQL when the session is fresh; a
    read transaction is one on SQLite), so appends landing meanwhile are neither
    half-seen nor false alarms. Raises
    AuditChainBroken naming the first event that is missing, altered, out of place,
    numbered outside the chain, or cut off behind the head.
    """
    if session.get_bind().dialect.name == "postgresql" and not session.in_transaction():
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    head = (await session.execute(select(AuditHead).where(AuditHead.id == 1))).scalar_one()
    lowest, highest = (
        await session.execute(select(func.min(AuditEvent.seq), func.max(AuditEvent.seq)))
    ).one()
    if lowest is not None and lowest < 1:
        raise AuditChainBroken(lowest, "numbered outside the chain")
    if highest is not None and highest > head.seq:
        raise AuditChainBroken(head.seq + 1, f"beyond the chain's head at {head.seq}")
    expected_seq = 1
    previous = GENESIS
    while True:
        rows = (
            await session.execute(
                select(AuditEvent)
                .where(AuditEvent.seq >= expected_seq)
                .order_by(AuditEvent.seq)
                .limit(batch_size)
            )
        ).scalars()
        count = 0
        for event in rows:
            count += 1
            if event.seq != expected_seq:
                raise AuditChainBroken(expected_seq, f"missing (the next event is {event.seq})")
            if event.details is not None and (
                hashlib.sha256(canonical_details(event.details)).digest() != event.details_sha256
            ):
                raise AuditChainBroken(event.seq, "details altered")
            if leaf_hash(event) != event.leaf:
                raise AuditChainBroken(event.seq, "fields altered")
            if chain_hash(previous, event.leaf) != event.chain:
                raise AuditChainBroken(event.seq, "chain link broken")
            previous = event.chain
            expected_seq += 1
        if progress is not None and count:
            progress(count)
        if count < batch_size:
            break
    last_seq = expected_seq - 1
    if last_seq != head.seq:
        raise AuditChainBroken(
            last_seq + 1, f"missing: the chain ends at {last_seq}, its head at {head.seq}"
        )
    if head.chain != previous:
        raise AuditChainBroken(last_seq, "the head's hash does not match the chain")
    return last_seq


class AuditLog:
    """Records events that stand on their own (a refusal, a grant) in their own transaction.

    Raises DatabaseUnavailable when the event cannot be written; callers that must audit
    before acting (serving audio) then do not act.
    """

    def __init__(self, database: Database, trail: AuditTrail) -> None:
        self._database = database
        self._trail = trail

    async def record(self, record: AuditRecord) -> None:
        """Append ``record`` and commit it."""
        async with self._database.transaction() as session:
            await self._trail.append(session, record)

    async def events(self, query: AuditQuery) -> list[AuditEntry]:
        """Events matching ``query``, one page, in the order and from the cursor it asks."""
        statement = select(AuditEvent).where(AuditEvent.seq > query.after_seq)
        if query.before_seq is not None:
            statement = statement.where(AuditEvent.seq < query.before_seq)
        if query.recording_id is not None:
            statement = statement.where(AuditEvent.recording_id == query.recording_id)
        if query.actor is not None:
            statement = statement.where(AuditEvent.actor == query.actor)
        if query.action is not None:
            statement = statement.where(AuditEvent.action == query.action)
        async with self._database.read() as session:
            rows = (
                await session.execute(
                    statement.order_by(
                        AuditEvent.seq.desc() if query.newest_first else AuditEvent.seq
                    ).limit(query.limit)
                )
            ).scalars()
            return [
                AuditEntry(
                    seq=row.seq,
                    occurred_at=row.occurred_at,
                    actor=row.actor,
                    action=row.action,
                    recording_id=row.recording_id,
                    purpose=row.purpose,
                    outcome=row.outcome,
                    details=dict(row.details or {}),
                )
                for row in rows
            ]


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which events an auditor asks for: any of recording, actor, action; one page of them.

    Oldest first from after ``after_seq``, or newest first from before ``before_seq``
    (from the latest when it is None): each order pages by its own cursor.
    """

    recording_id: uuid.UUID | None = None
    actor: str | None = None
    action: str | None = None
    after_seq: int = 0
    limit: int = 100
    newest_first: bool = False
    before_seq: int | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One event as the audit view shows it (the chain's hashes stay behind)."""

    seq: int
    occurred_at: datetime
    actor: str
    action: str
    recording_id: uuid.UUID | None
    purpose: str | None
    outcome: str
    details: dict[str, Any]
