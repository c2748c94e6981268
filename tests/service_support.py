"""Running the real service (real HTTP server, real database and store) inside a test."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from config.app import Services, build_services, create_app
from config.settings import Settings
from retrieval import issue_dev_token
from storage import load_signing_key
from storage.models import AuditEvent, Recording
from tests.push_support import SECRET


@dataclass
class RunningService:
    """A started service and the handles a test needs to look behind its API."""

    client: TestClient[Any, Any]
    services: Services
    data_dir: Path

    def token(self, role: str, *teams: str, subject: str = "staff-1") -> str:
        """A dev-mode bearer token signed with this service's own key."""
        return issue_dev_token(
            load_signing_key(self.data_dir / "dev-signing-key.pem"),
            subject=subject,
            role=role,
            teams=teams,
            ttl=timedelta(minutes=10),
            now=datetime.now(UTC),
        )

    async def counts(self) -> dict[str, int]:
        """How much is stored anywhere: rows, objects, spool files, audit events."""
        async with self.services.database.read() as session:
            recordings = (await session.execute(select(func.count(Recording.id)))).scalar_one()
            # The start-up sweep records itself; that says nothing about what a push stored.
            events = (
                await session.execute(
                    select(func.count(AuditEvent.seq)).where(AuditEvent.action != "retention.sweep")
                )
            ).scalar_one()
        objects = [key async for key in self.services.objects.iter_keys()]
        spool = self.data_dir / "spool"
        spooled = len(list(spool.rglob("*.spool"))) if spool.exists() else 0
        return {
            "recordings": recordings,
            "objects": len(objects),
            "spool": spooled,
            "audit": events,
        }


@asynccontextmanager
async def running_service(
    data_dir: Path, database_url: str, **settings: Any
) -> AsyncIterator[RunningService]:
    """Start the whole app on a free local port with one push source, ``pbx``."""
    options: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "push_secrets": {"pbx": SECRET},
    }
    options.update(settings)
    services = build_services(Settings(**options))
    client = TestClient(TestServer(create_app(services)))
    await client.start_server()
    try:
        yield RunningService(client, services, data_dir)
    finally:
        await client.close()


def wait_until_healthy(
    base_url: str, process: subprocess.Popen[Any], timeout_s: float = 60
) -> bool:
    """Poll ``/healthz`` of a ``callrec serve`` child; False if it died or never answered."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=1):  # noqa: S310
                return True
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.1)
