"""`callrec serve` takes its socket before any work: a port it cannot have stops it first."""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from config.settings import Settings
from storage import Database, create_engine
from storage.db.models import AuditEvent, Recording
from tests.cli_support import invoke, run
from tests.service_support import running_service


async def state_and_sweeps(data_dir: Path, recording_id: uuid.UUID) -> tuple[str, int]:
    """The recording's state and how many sweeps the audit trail records."""
    database = Database(create_engine(Settings(data_dir=data_dir).resolved_database_url))
    try:
        async with database.read() as session:
            state = (
                await session.execute(select(Recording.state).where(Recording.id == recording_id))
            ).scalar_one()
            sweeps = (
                await session.execute(
                    select(func.count()).where(AuditEvent.action == "retention.sweep")
                )
            ).scalar_one()
            return str(state), int(sweeps)
    finally:
        await database.dispose()


async def test_serve_on_a_port_in_use_says_so_in_one_line_and_sweeps_nothing(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "var"
    assert invoke("db", "upgrade", CALLREC_DATA_DIR=str(data_dir)).returncode == 0
    now = datetime.now(UTC).replace(microsecond=0)
    # Stored by a service running a day behind, so its own start-up sweep keeps it; by the
    # real clock it falls due in ten minutes, well inside the next sweep's horizon.
    async with running_service(
        data_dir,
        Settings(data_dir=data_dir).resolved_database_url,
        clock=lambda: now - timedelta(days=1),
    ) as service:
        due = await service.push_call("due-1", now - timedelta(days=90) + timedelta(minutes=10))
    state, sweeps = await state_and_sweeps(data_dir, due)
    assert state == "stored"

    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        result = await asyncio.to_thread(
            run, "serve", "--port", str(port), CALLREC_DATA_DIR=str(data_dir)
        )

    assert result.returncode == 2
    assert result.stderr == f"callrec: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert await state_and_sweeps(data_dir, due) == ("stored", sweeps)

    # And the same data directory on a free port: the sweep the refused start did not run.
    served = await asyncio.to_thread(invoke, "retention", "run", CALLREC_DATA_DIR=str(data_dir))
    assert served.returncode == 0, served.stderr
    assert await state_and_sweeps(data_dir, due) == ("deleted", sweeps + 1)


def test_serve_on_an_unknown_host_says_so_in_one_line(tmp_path: Path) -> None:
    result = run("serve", "--host", "no-such-host.invalid", CALLREC_DATA_DIR=str(tmp_path / "v"))
    assert result.returncode == 2
    assert result.stderr.startswith("callrec: cannot listen on no-such-host.invalid:8080: ")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "v").exists()  # nothing made, nothing migrated
