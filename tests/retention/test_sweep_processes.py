"""Two service processes sweeping one PostgreSQL database share the work and never collide."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from storage.db.models import AuditEvent, Recording
from tests.cli_support import CALLREC, clean_environment
from tests.service_support import RunningService, running_service

DUE = 240
DELETION_EVENTS = ("recording.keys_destroyed", "recording.deleted")


async def push_due_calls(service: RunningService, started: datetime) -> set[uuid.UUID]:
    found: set[uuid.UUID] = set()
    for first in range(0, DUE, 16):  # within the service's limit on concurrent pushes
        found |= set(
            await asyncio.gather(
                *(
                    service.push_call(f"due-{n}", started - timedelta(seconds=n))
                    for n in range(first, min(first + 16, DUE))
                )
            )
        )
    return found


async def sweep_in_a_process(env: dict[str, str]) -> set[uuid.UUID]:
    # Small batches, so the two processes take turns claiming rather than one taking all.
    process = await asyncio.create_subprocess_exec(
        *CALLREC,
        "retention",
        "run",
        "--batch-size",
        "8",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode == 0, stderr.decode()
    # Each deletion is reported by the process that finished it: usually the one that
    # began it, but a sweep starting while the other's batch is half-done finishes it.
    return {
        uuid.UUID(line.split()[-1])
        for line in stdout.decode().splitlines()
        if line.startswith(("deleted ", "finished interrupted deletion of "))
    }


@pytest.mark.postgres
async def test_two_sweeping_processes_delete_each_recording_exactly_once(
    tmp_path: Path, postgres_url: str
) -> None:
    data_dir = tmp_path / "var"
    # Renditions have no part in deletion's counts: none are made, to keep the pushes quick.
    async with running_service(data_dir, postgres_url, rendition_workers=0) as service:
        await service.start_up_sweep_done()
        now = datetime.now(UTC).replace(microsecond=0)
        # Due in ten minutes: inside the default horizon, so either sweep takes them.
        due = await push_due_calls(service, now - timedelta(days=90) + timedelta(minutes=10))
        kept = await service.push_call("kept", now)
    # Every process on one data directory: one node, many sweepers.
    env = clean_environment(
        CALLREC_DATA_DIR=str(data_dir),
        CALLREC_DATABASE_URL=postgres_url,
        CALLREC_SINGLE_NODE="true",
    )

    first, second = await asyncio.gather(sweep_in_a_process(env), sweep_in_a_process(env))

    assert first | second == due
    assert not first & second
    assert first
    assert second
    # Renditions have no part in deletion's counts: none are made, to keep the pushes quick.
    async with running_service(data_dir, postgres_url, rendition_workers=0) as service:
        database = service.services.database
        async with database.read() as session:
            by_state = select(Recording.state, func.count()).group_by(Recording.state)
            states = dict((await session.execute(by_state)).all())
            by_action = (
                select(AuditEvent.action, AuditEvent.recording_id, func.count())
                .where(AuditEvent.action.in_(DELETION_EVENTS))
                .group_by(AuditEvent.action, AuditEvent.recording_id)
            )
            events = (await session.execute(by_action)).all()
            row = await session.get(Recording, kept)
    assert states == {"deleted": DUE, "stored": 1}
    # Each recording's keys destroyed once and one receipt each: never twice.
    assert {count for _, _, count in events} == {1}
    for action in DELETION_EVENTS:
        assert {rid for name, rid, _ in events if name == action} == due
    assert row is not None
    assert row.state == "stored"
