"""The audit trail: appends chain, and any edit, deletion, reordering or cut is named."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage import (
    AuditChainBroken,
    AuditRecord,
    AuditTrail,
    create_engine,
    create_sessionmaker,
    verify_audit_chain,
)
from tests.clock import FakeClock


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


async def append_events(sessions: async_sessionmaker[AsyncSession], count: int) -> None:
    trail = AuditTrail(
        FakeClock(datetime(2026, 11, 24, 9, 0, tzinfo=UTC), step=timedelta(seconds=1))
    )
    for index in range(count):
        async with sessions.begin() as session:
            await trail.append(
                session,
                AuditRecord(
                    actor=f"user:{index % 3}",
                    action="recording.captured",
                    recording_id=uuid.uuid4(),
                    purpose="quality_review" if index % 2 else None,
                    details={"n": index, "reason": "weekly review"},
                ),
            )


async def verify(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return await verify_audit_chain(session, batch_size=4)


async def tamper(engine: AsyncEngine, *statements: str) -> None:
    """Edit history the way a database administrator could: guard triggers off first."""
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        else:
            await connection.execute(text("DROP TRIGGER audit_event_no_update"))
            await connection.execute(text("DROP TRIGGER audit_event_no_delete"))
        for statement in statements:
            await connection.execute(text(statement))


async def test_an_untouched_chain_verifies_every_event(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await append_events(sessions, 10)
    assert await verify(sessions) == 10


async def test_an_empty_chain_verifies(sessions: async_sessionmaker[AsyncSession]) -> None:
    assert await verify(sessions) == 0


async def test_the_database_refuses_to_update_or_delete_audit_events(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await append_events(sessions, 2)
    for statement in (
        "UPDATE audit_event SET actor = 'someone else' WHERE seq = 1",
        "DELETE FROM audit_event WHERE seq = 2",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with sessions.begin() as session:
                await session.execute(text(statement))
    assert await verify(sessions) == 2


@pytest.mark.parametrize(
    ("statement", "first_bad", "reason"),
    [
        ("UPDATE audit_event SET actor = 'user:9' WHERE seq = 5", 5, "fields altered"),
        ("UPDATE audit_event SET outcome = 'deny' WHERE seq = 7", 7, "fields altered"),
        ("UPDATE audit_event SET purpose = 'staff_safety' WHERE seq = 3", 3, "fields altered"),
        ("DELETE FROM audit_event WHERE seq = 6", 6, "missing"),
        ("DELETE FROM audit_event WHERE seq >= 9", 9, "head"),
    ],
    ids=["actor", "outcome", "purpose", "deleted-row", "cut-tail"],
)
async def test_tampering_names_the_first_bad_event(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    statement: str,
    first_bad: int,
    reason: str,
) -> None:
    await append_events(sessions, 10)
    await tamper(engine, statement)
    with pytest.raises(AuditChainBroken, match=reason) as broken:
        await verify(sessions)
    assert broken.value.seq == first_bad


async def test_edited_details_are_detected(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await append_events(sessions, 6)
    await tamper(
        engine, """UPDATE audit_event SET details = '{"n": 4, "reason": "other"}' WHERE seq = 4"""
    )
    with pytest.raises(AuditChainBroken, match="details altered") as broken:
        await verify(sessions)
    assert broken.value.seq == 4


async def test_swapping_two_events_is_detected_at_the_first(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await append_events(sessions, 8)
    # Exchange the sequence numbers of events 3 and 4 through a free number.
    await tamper(
        engine,
        "UPDATE audit_event SET seq = 1000 WHERE seq = 3",
        "UPDATE audit_event SET seq = 3 WHERE seq = 4",
        "UPDATE audit_event SET seq = 4 WHERE seq = 1000",
    )
    with pytest.raises(AuditChainBroken) as broken:
        await verify(sessions)
    assert broken.value.seq == 3


async def test_a_recomputed_row_still_breaks_the_next_link(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await append_events(sessions, 5)
    # Replace event 2's leaf and chain with event 3's: internally consistent garbage.
    await tamper(
        engine,
        "UPDATE audit_event SET leaf = (SELECT leaf FROM audit_event WHERE seq = 3) WHERE seq = 2",
    )
    with pytest.raises(AuditChainBroken) as broken:
        await verify(sessions)
    assert broken.value.seq == 2


async def test_concurrent_appends_stay_gapless_and_verify(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await asyncio.gather(*(append_events(sessions, 5) for _ in range(8)))
    assert await verify(sessions) == 40


async def test_the_database_refuses_to_rewind_or_remove_the_head(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await append_events(sessions, 3)
    statements = [
        "UPDATE audit_head SET seq = 0 WHERE id = 1",
        "DELETE FROM audit_head",
    ]
    if engine.dialect.name == "postgresql":
        statements += ["TRUNCATE audit_event", "TRUNCATE audit_head"]
    for statement in statements:
        with pytest.raises(DBAPIError, match=r"append-only|only moves forward"):
            async with sessions.begin() as session:
                await session.execute(text(statement))
    assert await verify(sessions) == 3


@pytest.mark.parametrize(
    ("seq", "first_bad", "reason"),
    [(0, 0, "outside the chain"), (-5, -5, "outside the chain"), (11, 11, "beyond")],
)
async def test_an_event_slipped_in_outside_the_chain_is_detected(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    seq: int,
    first_bad: int,
    reason: str,
) -> None:
    await append_events(sessions, 10)
    copy_last_event_as = (  # the seq comes from the parameter table above, not from input
        "INSERT INTO audit_event (seq, occurred_at, actor, action, outcome, details_sha256, "
        f"leaf, chain) SELECT {seq}, occurred_at, actor, action, outcome, details_sha256, "
        "leaf, chain FROM audit_event WHERE seq = 10"
    )
    await tamper(engine, copy_last_event_as)
    with pytest.raises(AuditChainBroken, match=reason) as broken:
        await verify(sessions)
    assert broken.value.seq == first_bad


async def test_verifying_while_events_are_appended_raises_no_false_alarm(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    verified: list[int] = []

    async def verify_repeatedly() -> None:
        for _ in range(15):
            verified.append(await verify(sessions))
            await asyncio.sleep(0)

    await asyncio.gather(*(append_events(sessions, 10) for _ in range(4)), verify_repeatedly())
    assert verified == sorted(verified)
    assert await verify(sessions) == 40
