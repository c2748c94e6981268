"""Telnyx end to end against fakes: a signed call.recording.saved event is answered once
its fetch is queued; the pre-signed URL is fetched without credentials, the recording
stored and searchable, Telnyx's copy deleted through its API."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from storage.db.models import AuditEvent
from tests.audio_factory import BY_NAME, make_audio
from tests.provider_fakes import TELNYX_API_KEY, FakeStorage, FakeTelnyx, serving
from tests.service_support import RunningService, running_service

AUDIO = make_audio(BY_NAME["pcm-wav"], 2.0)
KEY = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(KEY.public_key().public_bytes_raw()).decode()
QUERY = "?referral=MASH-2026-008001&team=mash-adults"


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTelnyx, FakeStorage]]:
    api, storage = FakeTelnyx(), FakeStorage(body=AUDIO)
    async with serving(api.app()) as api.url, serving(storage.app()) as storage.url:
        yield api, storage


def settings_for(api: FakeTelnyx, storage: FakeStorage) -> dict[str, Any]:
    return {
        "telnyx_public_key": PUBLIC,
        "telnyx_api_key": TELNYX_API_KEY,
        "telnyx_api_base": api.url,
        "telnyx_storage_hosts": (storage.url,),
        "fetch_first_retry": timedelta(milliseconds=50),
    }


def event(recording_id: str, url: str, kind: str = "call.recording.saved") -> bytes:
    started = datetime.now(UTC) - timedelta(minutes=3)
    document = {
        "data": {
            "record_type": "event",
            "event_type": kind,
            "id": f"evt-{recording_id}",
            "occurred_at": datetime.now(UTC).isoformat(),
            "payload": {
                "call_session_id": "428c31b6-7af4-4bcb-b7f5-5013ef9657c1",
                "recording_id": recording_id,
                "recording_started_at": started.isoformat().replace("+00:00", "Z"),
                "recording_ended_at": (started + timedelta(seconds=2)).isoformat(),
                "channels": "single",
                "recording_urls": {"wav": url},
                "reason": "Internal server error",
            },
        }
    }
    return json.dumps(document, separators=(",", ":")).encode()


async def send(
    service: RunningService, body: bytes, *, timestamp: int | None = None, key: Any = KEY
) -> tuple[int, Any]:
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = base64.b64encode(key.sign(stamp.encode() + b"|" + body)).decode()
    response = await service.client.post(
        "/webhooks/telnyx" + QUERY,
        data=body,
        headers={
            "Content-Type": "application/json",
            "telnyx-timestamp": stamp,
            "telnyx-signature-ed25519": signature,
        },
    )
    return response.status, await response.json()


async def test_a_signed_event_is_fetched_stored_and_deleted_at_telnyx(
    tmp_path: Path, database_url: str, fakes: tuple[FakeTelnyx, FakeStorage]
) -> None:
    api, storage = fakes
    url = f"{storage.url}/recordings/rec-1.wav?X-Amz-Signature=abc"
    async with running_service(
        tmp_path / "var", database_url, **settings_for(api, storage)
    ) as service:
        status, body = await send(service, event("rec-1", url))
        assert (status, body["status"]) == (200, "queued")
        job = await service.fetch_settled("rec-1")
        assert await service.stored(str(job.recording_id), "original") == AUDIO
        # The pre-signed URL is fetched as it is: the API key never goes to storage.
        assert [seen.authorization for seen in storage.seen] == [None]
        for _ in range(100):
            if api.deleted:
                break
            await asyncio.sleep(0.05)
        assert api.deleted == ["rec-1"]
        (recording,) = await service.search_referral("MASH-2026-008001", "mash-adults")
        assert (recording["source"], recording["team"]) == ("telnyx", "mash-adults")


@pytest.mark.parametrize("fault", ["stale", "future", "body", "key"])
async def test_an_unsigned_stale_or_tampered_event_is_401_and_queues_nothing(
    tmp_path: Path, database_url: str, fakes: tuple[FakeTelnyx, FakeStorage], fault: str
) -> None:
    api, storage = fakes
    async with running_service(
        tmp_path / "var", database_url, **settings_for(api, storage)
    ) as service:
        body = event("rec-2", f"{storage.url}/recordings/rec-2.wav")
        now = int(time.time())
        if fault == "stale":
            status, answer = await send(service, body, timestamp=now - 301)
        elif fault == "future":
            status, answer = await send(service, body, timestamp=now + 301)
        elif fault == "key":
            status, answer = await send(service, body, key=Ed25519PrivateKey.generate())
        else:
            stamp = str(now)
            signature = base64.b64encode(KEY.sign(stamp.encode() + b"|" + body)).decode()
            response = await service.client.post(
                "/webhooks/telnyx",
                data=body.replace(b"rec-2", b"rec-3"),
                headers={
                    "Content-Type": "application/json",
                    "telnyx-timestamp": stamp,
                    "telnyx-signature-ed25519": signature,
                },
            )
            status, answer = response.status, await response.json()
        assert (status, answer["error"]) == (401, "unauthenticated")
        assert "telnyx-signature-ed25519" in answer["detail"]
        assert "X-Callrec" not in answer["detail"]
        assert await service.fetch_job("rec-2") is None
        assert await service.fetch_job("rec-3") is None
    assert storage.seen == []


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data/", "https://evil.example/recording.wav"],
)
async def test_a_recording_url_off_the_configured_storage_is_refused_before_queueing(
    tmp_path: Path, database_url: str, fakes: tuple[FakeTelnyx, FakeStorage], url: str
) -> None:
    api, storage = fakes
    async with running_service(
        tmp_path / "var", database_url, **settings_for(api, storage)
    ) as service:
        status, answer = await send(service, event("rec-4", url))
        assert (status, answer["error"]) == (422, "invalid_metadata")
        assert await service.fetch_job("rec-4") is None


async def test_a_recording_error_is_recorded_and_a_repeat_queues_one_fetch(
    tmp_path: Path, database_url: str, fakes: tuple[FakeTelnyx, FakeStorage]
) -> None:
    api, storage = fakes
    url = f"{storage.url}/recordings/rec-5.wav"
    async with running_service(
        tmp_path / "var",
        database_url,
        **settings_for(
            api,
            storage,
        ),
    ) as service:
        status, answer = await send(service, event("rec-x", url, kind="call.recording.error"))
        assert (status, answer["status"]) == (200, "error")
        answers = await asyncio.gather(*(send(service, event("rec-5", url)) for _ in range(4)))
        assert len({body["job"] for _, body in answers}) == 1
        await service.fetch_settled("rec-5")
        async with service.services.database.read() as session:
            recorded = (
                await session.execute(
                    select(AuditEvent.action).where(AuditEvent.action.like("recording.%"))
                )
            ).scalars()
            assert list(recorded).count("recording.not_recorded") == 1
        assert len(storage.seen) == 1


async def test_a_signed_event_nested_30000_deep_is_422_and_queues_nothing(
    tmp_path: Path, database_url: str, fakes: tuple[FakeTelnyx, FakeStorage]
) -> None:
    body = b'{"data":' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    async with running_service(tmp_path / "var", database_url, **settings_for(*fakes)) as service:
        status, answer = await send(service, body)
        assert (status, answer["error"]) == (422, "invalid_metadata")
        assert "deeper than" in answer["detail"]
        assert (await service.counts())["recordings"] == 0
