"""Running the real service (real HTTP server, real database and store) inside a test."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from config.app import create_app
from config.services import Services, build_services
from config.settings import Settings
from recorder import MediaWorkers
from retrieval import issue_dev_token
from storage import (
    RECORDINGS_PREFIX,
    KeyShares,
    SharedKeys,
    StoredCiphertext,
    open_verified,
    unmask,
)
from storage.db.job_models import FetchJob
from storage.db.models import AuditEvent, Recording, StoredObject
from storage.keys.keyring import WrappedKey
from storage.keys.signing import signing_key_from_seed
from tests.push_support import SECRET, make_wav, metadata, push_body, push_headers

OBJECTS_PER_RECORDING = 2
# What a recording puts in the object store: its objects and its key share.
KEYS_PER_RECORDING = OBJECTS_PER_RECORDING + 1
"""What a push stores: the original, byte for byte, and its playback rendition."""
SCHEDULED_ACTIONS = (
    "retention.sweep",
    "retention.attestation",
    "integrity.scrub",
    "keys.epoch_key_created",
    "keys.shared_secret_created",
    "keys.receipt_key_listed",
)
"""Audit events the service writes on its own (on a schedule, a week's first capture, or
its first start on a database)."""


@dataclass
class RunningService:
    """A started service and the handles a test needs to look behind its API."""

    client: TestClient[Any, Any]
    services: Services
    data_dir: Path

    def token(self, role: str, *teams: str, subject: str = "staff-1") -> str:
        """A dev-mode bearer token signed with the key the service shares with its replicas."""
        return issue_dev_token(
            self.services.shared_keys.dev_token_key,
            subject=subject,
            role=role,
            teams=teams,
            ttl=timedelta(minutes=10),
            now=datetime.now(UTC),
        )

    async def push_call(self, source_id: str, started: datetime) -> uuid.UUID:
        """Push a one-second call that started at ``started``; the new recording's id, once
        its rendition is made too (so what a test counts does not depend on timing)."""
        meta = metadata(
            recording_id=source_id,
            started_at=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            ended_at=None,
            notes="caller disclosed an address",
        )
        body = push_body(meta, make_wav(1))
        # Signed at the service's time, which a test may have moved.
        headers = push_headers(body, timestamp=int(self.services.clock().timestamp()))
        response = await self.client.post("/webhooks/push/pbx", data=body, headers=headers)
        assert response.status == 201, await response.text()
        await self.renditions_made()
        return uuid.UUID((await response.json())["id"])

    async def stored(self, recording_id: uuid.UUID | str, kind: str) -> bytes:
        """The plaintext of a recording's stored object of ``kind``, read behind the API
        (the playback rendition once it is made)."""
        if kind == "playback":
            await self.renditions_made()
        async with self.services.database.read() as session:
            stored = (
                await session.execute(
                    select(StoredObject).where(
                        StoredObject.recording_id == uuid.UUID(str(recording_id)),
                        StoredObject.kind == kind,
                    )
                )
            ).scalar_one()
            assert stored.data_key is not None
            wrapped = WrappedKey(stored.data_key.kek_id, stored.data_key.wrapped)
            digest = await session.scalar(
                select(Recording.key_share_digest).where(Recording.id == stored.recording_id)
            )
        share = await KeyShares(self.services.objects).read(stored.recording_id, digest)
        key = unmask(await self.services.keys.unwrap(wrapped, stored.id), stored.id, share)
        ciphertext = StoredCiphertext(
            self.services.objects, stored.object_key, stored.id, stored.ciphertext_size
        )
        return await (await open_verified(ciphertext, key)).read_all()

    async def fetch_job(self, external_id: str) -> FetchJob | None:
        """The provider fetch job for a provider's recording id, if one was queued."""
        async with self.services.database.read() as session:
            return (
                await session.execute(select(FetchJob).where(FetchJob.external_id == external_id))
            ).scalar_one_or_none()

    async def fetch_settled(
        self, external_id: str, state: str = "done", timeout_s: float = 20.0
    ) -> FetchJob:
        """Wait until the fetch job reaches ``state`` (the workers run in the background)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = await self.fetch_job(external_id)
            if job is not None and job.state == state:
                return job
            await asyncio.sleep(0.05)
        raise AssertionError(f"the fetch of {external_id} never became {state}")

    async def renditions_made(self, timeout_s: float = 120.0) -> None:
        """Wait until no rendition is queued or being made: a push is acknowledged before
        its rendition exists, and the rendition workers run in the background. A service
        started without rendition workers makes none: nothing to wait for."""
        if not self.services.settings.rendition_workers:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            backlog = await self.services.rendition_queue.backlog()
            if not backlog.counts["queued"] and not backlog.counts["running"]:
                return
            self.services.rendition_workers.wake()
            await asyncio.sleep(0.05)
        raise AssertionError(f"renditions still waiting after {timeout_s} s: {backlog}")

    async def search_referral(self, referral: str, *teams: str) -> list[dict[str, Any]]:
        """What a supervisor of ``teams`` finds by a referral."""
        token = self.token("supervisor", *teams)
        response = await self.client.get(
            f"/api/v1/recordings?referral={referral}", headers={"Authorization": f"Bearer {token}"}
        )
        found: list[dict[str, Any]] = (await response.json())["recordings"]
        return found

    async def start_up_sweep_done(self, timeout_s: float = 120.0) -> None:
        """Wait for the service's own start-up retention cycle to have recorded its sweep.

        A call pushed while that cycle runs and due before its cutoff may be reaped half
        way (the sender is told 503 and retries); a test that pushes such calls waits.
        Two minutes: on PostgreSQL beside the image build, the first cycle took over 30 s.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            async with self.services.database.read() as session:
                swept = await session.scalar(
                    select(func.count())
                    .select_from(AuditEvent)
                    .where(AuditEvent.action == "retention.sweep")
                )
            if swept:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the start-up retention sweep never finished")

    async def counts(self) -> dict[str, int]:
        """How much is stored anywhere: rows, objects, spool files, audit events; once the
        renditions queued have been made, so the count does not depend on their timing."""
        await self.renditions_made()
        async with self.services.database.read() as session:
            recordings = (await session.execute(select(func.count(Recording.id)))).scalar_one()
            # The start-up sweep records itself and attests; that says nothing about what a
            # push stored.
            events = (
                await session.execute(
                    select(func.count(AuditEvent.seq)).where(
                        AuditEvent.action.not_in(SCHEDULED_ACTIONS)
                    )
                )
            ).scalar_one()
        objects = [key async for key in self.services.objects.iter_keys(RECORDINGS_PREFIX)]
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
    data_dir: Path,
    database_url: str,
    *,
    clock: Callable[[], datetime] | None = None,
    parts: Mapping[str, object] | None = None,
    **settings: Any,
) -> AsyncIterator[RunningService]:
    """Start the whole app on a free local port with one push source, ``pbx``.

    ``clock`` replaces the service's clock (deadlines, sweeps, holds); tokens still use
    the real time. ``parts`` are used instead of building them (``Services.provide``).
    One node unless told otherwise: the local keyring and file stores of
    ``data_dir`` are used on PostgreSQL too.
    """
    options: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "push_secrets": {"pbx": SECRET},
        "single_node": True,
    }
    options.update(settings)
    services = build_services(Settings(**options), **({"clock": clock} if clock else {}))
    services.provide(media=shared_media_workers(services.settings), **(parts or {}))
    port = free_port()
    # Browsers treat http://127.0.0.1 as a secure origin and send the page's Secure
    # session cookie there; the test client's cookie jar is told to do the same.
    jar = CookieJar(unsafe=True, treat_as_secure_origin=[f"http://127.0.0.1:{port}"])
    try:
        await services.load_shared_keys()
        app = create_app(services)
    except BaseException:
        await services.close()
        raise
    client = TestClient(TestServer(app, host="127.0.0.1", port=port), cookie_jar=jar)
    try:
        await client.start_server()
    except BaseException:
        # Start-up refused (fail closed): release what was built before saying so.
        await client.close()
        await services.close()
        raise
    try:
        yield RunningService(client, services, data_dir)
    finally:
        await client.close()


def keys_read_before_the_database_went() -> dict[str, object]:
    """``parts`` for a service on a database that is unreachable from the start.

    A service reads its shared keys from the database before it serves; these stand in
    for what it would have read there before the database went away.
    """
    return {
        "shared_keys": SharedKeys(
            os.urandom(32),
            signing_key_from_seed(os.urandom(32)),
            signing_key_from_seed(os.urandom(32)),
        )
    }


_MEDIA_POOLS: dict[tuple[int, int, float], MediaWorkers] = {}


def shared_media_workers(settings: Settings) -> MediaWorkers:
    """One pool of media worker processes per shape, shared by every service a test starts.

    A service that starts its own pool pays for new worker processes each time; the pool
    holds nothing of a service's own (renditions go beside each service's spool), so tests
    share one. ``close_shared_media_workers`` stops them at the end of the run.
    """
    shape = (
        settings.media_workers,
        settings.max_audio_channels,
        settings.media_job_deadline.total_seconds(),
    )
    if shape not in _MEDIA_POOLS:
        _MEDIA_POOLS[shape] = MediaWorkers(
            workers=shape[0], max_channels=shape[1], job_deadline_s=shape[2]
        )
    return _MEDIA_POOLS[shape]


def close_shared_media_workers() -> None:
    """Stop every shared pool of media workers."""
    while _MEDIA_POOLS:
        _, pool = _MEDIA_POOLS.popitem()
        pool.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody is listening on (at the moment of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


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
