"""The table of background jobs: the service starts exactly the jobs it lists."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from aiohttp.test_utils import TestServer

from config.app import RUNNING_JOBS
from config.jobs import JOBS, KEY_UPKEEP_INTERVAL, LEDGER_REFRESH_INTERVAL
from config.settings import Settings
from tests.service_support import running_service


def test_the_table_names_each_job_once_with_its_interval_and_start_up_rule() -> None:
    settings = Settings(
        retention_sweep_interval=timedelta(minutes=7),
        integrity_scrub_interval=timedelta(hours=5),
    )
    table = {job.name: (job.interval(settings), job.run_at_start) for job in JOBS}
    assert len(table) == len(JOBS)
    assert table == {
        # The sweep catches up at once after downtime; the others wait one interval.
        "retention sweep": (timedelta(minutes=7), True),
        "integrity scrub": (timedelta(hours=5), False),
        "key upkeep": (KEY_UPKEEP_INTERVAL, False),
        "audit checkpoint": (settings.audit_checkpoint_interval, True),
        "deletion ledger": (LEDGER_REFRESH_INTERVAL, False),
    }


async def test_the_running_service_starts_exactly_the_jobs_of_the_table_and_stops_them(
    tmp_path: Path, database_url: str
) -> None:
    async with running_service(tmp_path / "var", database_url) as service:
        server = service.client.server
        assert isinstance(server, TestServer)
        app = server.app
        running = app[RUNNING_JOBS]
        assert [schedule.name for schedule in running] == [job.name for job in JOBS]
    assert app[RUNNING_JOBS] == []
