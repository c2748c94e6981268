"""``callrec retention run`` runs the service's cycle: it forgets old fetch details too."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from config.settings import Settings
from storage import AuditTrail, Database, FetchQueue, create_engine
from storage.db.job_models import FetchJob
from tests.cli_support import invoke


async def _queue_fetch(data_dir: Path, external_id: str, at: datetime) -> object:
    """Queue a provider fetch as if its callback arrived ``at``; the job's id."""
    database = Database(create_engine(Settings(data_dir=data_dir).resolved_database_url))
    clock = lambda: at  # noqa: E731
    queue = FetchQueue(database=database, audit=AuditTrail(clock), clock=clock)
    try:
        queued = await queue.enqueue(
            provider="twilio",
            external_id=external_id,
            url=f"https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/{external_id}",
            details={"referral": external_id},
            actor="source:twilio",
        )
        return queued.id
    finally:
        await database.dispose()


async def _details(data_dir: Path, job_id: object) -> object:
    database = Database(create_engine(Settings(data_dir=data_dir).resolved_database_url))
    try:
        async with database.read() as session:
            row = await session.get(FetchJob, job_id)
            assert row is not None
            return row.details
    finally:
        await database.dispose()


def test_retention_run_forgets_fetch_details_older_than_the_period(tmp_path: Path) -> None:
    env = {"CALLREC_DATA_DIR": str(tmp_path / "var")}
    assert invoke("db", "upgrade", **env).returncode == 0
    now = datetime.now(UTC)
    old = asyncio.run(_queue_fetch(tmp_path / "var", "RE-old", now - timedelta(days=91)))
    young = asyncio.run(_queue_fetch(tmp_path / "var", "RE-young", now - timedelta(days=89)))

    dry = invoke("retention", "run", "--dry-run", **env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("0 recordings would be deleted (cutoff ")
    assert asyncio.run(_details(tmp_path / "var", old)) is not None  # a dry run changes nothing

    result = invoke("retention", "run", "--batch-size", "10", **env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("0 recordings deleted, 0 interrupted deletions finished (cutoff ")
    assert lines[-1] == "attestation written: 0 unheld recordings past the deadline"
    assert asyncio.run(_details(tmp_path / "var", old)) is None
    assert asyncio.run(_details(tmp_path / "var", young)) == {"referral": "RE-young"}
