"""Signed push, end to end over HTTP: stored encrypted, audited, idempotent, nothing half-done."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from storage import RECORDINGS_PREFIX, KeyShares, unmask, verify_audit_chain
from storage.crypto.file_reader import EncryptedFileReader
from storage.db.models import AuditEvent, Recording, RecordingState
from storage.keys.keyring import WrappedKey
from tests.push_support import make_wav, metadata, push_body, push_headers
from tests.service_support import (
    KEYS_PER_RECORDING,
    SCHEDULED_ACTIONS,
    RunningService,
    running_service,
)

not_scheduled = AuditEvent.action.not_in(SCHEDULED_ACTIONS)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

URL = "/webhooks/push/pbx"


@pytest.fixture
async def service(tmp_path: Path, database_url: str) -> AsyncIterator[RunningService]:
    async with running_service(tmp_path / "var", database_url) as running:
        yield running


async def push(service: RunningService, body: bytes, **headers: str) -> tuple[int, dict[str, str]]:
    response = await service.client.post(URL, data=body, headers=push_headers(body) | headers)
    return response.status, await response.json()


async def test_a_signed_push_of_a_real_wav_is_stored_encrypted_and_audited(
    service: RunningService,
) -> None:
    audio = make_wav(3)
    status, body = await push(service, push_body(metadata(), audio))

    assert status == 201, body
    assert body["status"] == "stored"
    recording_id = uuid.UUID(body["id"])
    deadline = datetime.fromisoformat(body["retention_deadline"])
    started = datetime.fromisoformat(metadata()["started_at"])
    assert abs(deadline - (started + timedelta(days=90))) < timedelta(seconds=5)
    await service.renditions_made()

    async with service.services.database.read() as session:
        row = await session.get(Recording, recording_id)
        assert row is not None
        assert row.state == RecordingState.STORED
        assert (row.codec, row.sample_rate, row.channels) == ("pcm_s16le", 8000, 1)
        assert row.duration_s == pytest.approx(3.0, abs=0.01)
        assert [referral.reference for referral in row.referrals] == ["MASH-2026-004211"]
        assert row.from_number == "+441384000001"
        objects = {stored.kind: stored for stored in row.objects}
        assert set(objects) == {"original", "playback"}
        stored, rendition = objects["original"], objects["playback"]
        assert stored.data_key is not None
        assert rendition.data_key is not None
        assert stored.plaintext_size == len(audio)
        # The evidential copy's hash is taken at capture, over exactly what was pushed.
        assert stored.plaintext_sha256 == hashlib.sha256(audio).hexdigest()
        # Each object under its own data key, in its own object.
        assert stored.object_key != rendition.object_key
        assert stored.data_key.wrapped != rendition.data_key.wrapped
        assert rendition.content_type == "audio/webm"
        events = (
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.action.not_in(SCHEDULED_ACTIONS))
                )
            )
            .scalars()
            .all()
        )
        assert [(e.action, e.recording_id) for e in events] == [
            ("recording.captured", recording_id)
        ]
        assert await verify_audit_chain(session) >= 1

    ciphertext = await service.services.objects.read_range(stored.object_key, 0, 1 << 30)
    assert len(ciphertext) == stored.ciphertext_size
    # No run of the audio survives in the object: not the header, not any sample block.
    assert b"RIFF" not in ciphertext
    assert b"WAVE" not in ciphertext
    assert audio[1000:1064] not in ciphertext
    # ...and yet the stored key opens it to exactly the bytes that were pushed.
    share = await KeyShares(service.services.objects).read(recording_id, row.key_share_digest)
    data_key = unmask(
        await service.services.keys.unwrap(
            WrappedKey(stored.data_key.kek_id, stored.data_key.wrapped), stored.id
        ),
        stored.id,
        share,
    )
    path = service.data_dir / "objects" / stored.object_key
    with EncryptedFileReader(path, data_key, stored.id, stored.ciphertext_size) as plaintext:
        assert plaintext.read() == audio
    assert (await service.counts())["spool"] == 0


async def test_a_repeated_push_returns_the_same_answer_and_stores_nothing_new(
    service: RunningService,
) -> None:
    body = push_body(metadata(), make_wav(1))
    first_status, first = await push(service, body)
    again_status, again = await push(service, body)
    assert (first_status, again_status) == (201, 200)
    assert again == first
    assert await service.counts() == {
        "recordings": 1,
        "objects": KEYS_PER_RECORDING,
        "spool": 0,
        "audit": 1,
    }


async def test_concurrent_duplicate_deliveries_store_one_recording(
    service: RunningService,
) -> None:
    body = push_body(metadata(recording_id="dup-1"), make_wav(2))
    answers = await asyncio.gather(*(push(service, body) for _ in range(6)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200, 200, 200, 200, 200, 201]
    assert len({answer["id"] for _, answer in answers}) == 1
    assert await service.counts() == {
        "recordings": 1,
        "objects": KEYS_PER_RECORDING,
        "spool": 0,
        "audit": 1,
    }


async def test_a_recording_already_past_retention_is_discarded_and_audited(
    service: RunningService,
) -> None:
    old = (datetime.now(UTC) - timedelta(days=91)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, body = await push(
        service, push_body(metadata(started_at=old, ended_at=old), make_wav(1))
    )
    assert (status, body) == (200, {"status": "discarded", "reason": "past_retention"})
    counts = await service.counts()
    assert counts == {"recordings": 0, "objects": 0, "spool": 0, "audit": 1}
    async with service.services.database.read() as session:
        (event,) = (
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.action.not_in(SCHEDULED_ACTIONS))
                )
            )
            .scalars()
            .all()
        )
    assert (event.action, event.outcome) == ("recording.discarded", "deny")
    assert event.details == {"source_recording_id": "1732501234.5678", "reason": "past_retention"}


async def test_a_shorter_retention_period_moves_the_deadline(
    tmp_path: Path, database_url: str
) -> None:
    async with running_service(
        tmp_path / "var", database_url, retention_period=timedelta(days=30)
    ) as service:
        meta = metadata()
        status, body = await push(service, push_body(meta, make_wav(1)))
    assert status == 201
    started = datetime.fromisoformat(meta["started_at"])
    assert datetime.fromisoformat(body["retention_deadline"]) == started + timedelta(days=30)


async def test_unknown_metadata_keys_are_kept_as_extra_metadata(service: RunningService) -> None:
    meta = metadata(queue="children-front-door", priority=2)
    status, body = await push(service, push_body(meta, make_wav(1)))
    assert status == 201
    async with service.services.database.read() as session:
        row = await session.get(Recording, uuid.UUID(body["id"]))
    assert row is not None
    assert row.extra == {"queue": "children-front-door", "priority": 2}


@pytest.mark.s3
async def test_the_production_backends_store_a_push_in_the_bucket_encrypted(
    tmp_path: Path,
    database_url: str,
    s3_endpoint: str,
    s3_bucket: str,
    s3_client: S3Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The endpoint comes from the standard AWS variable, as in production.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    audio = make_wav(2)
    body = push_body(metadata(), audio)
    async with running_service(
        tmp_path / "var", database_url, store_url=f"s3://{s3_bucket}/hub-a"
    ) as service:
        first = await service.client.post(URL, data=body, headers=push_headers(body))
        again = await service.client.post(URL, data=body, headers=push_headers(body))
        assert (first.status, again.status) == (201, 200)
        assert await first.json() == await again.json()
        assert await service.counts() == {
            "recordings": 1,
            "objects": KEYS_PER_RECORDING,
            "spool": 0,
            "audit": 1,
        }

    listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=f"hub-a/{RECORDINGS_PREFIX}")[
        "Contents"
    ]
    assert len(listed) == KEYS_PER_RECORDING  # the original, its rendition, its key share
    for entry in listed:
        assert entry["Key"].startswith("hub-a/recordings/")
        if entry["Key"].endswith(".share"):
            continue
        stored = s3_client.get_object(Bucket=s3_bucket, Key=entry["Key"])["Body"].read()
        assert stored.startswith(b"SGRC")
        assert b"RIFF" not in stored
        assert b"\x1a\x45\xdf\xa3" not in stored  # no WebM header either
        assert audio[2000:2064] not in stored
    assert not (tmp_path / "var" / "objects").exists()


async def test_a_duplicate_answers_exactly_like_the_first_whatever_the_time_zone(
    service: RunningService,
) -> None:
    started = (datetime.now(UTC) - timedelta(hours=2)).astimezone(timezone(timedelta(hours=1)))
    meta = metadata(started_at=started.isoformat(timespec="seconds"), ended_at=None)
    body = push_body(meta, make_wav(1))
    first_status, first = await push(service, body)
    again_status, again = await push(service, body)
    assert (first_status, again_status) == (201, 200)
    assert again == first
    assert first["retention_deadline"].endswith("Z")
