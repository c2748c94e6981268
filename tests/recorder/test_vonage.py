"""Vonage end to end against a fake media API: a signed record event (HS256 JWT with the
body's hash) is answered once queued; the recording is fetched with a fresh application
JWT (RS256) and stored. Unsigned, stale or tampered events queue nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.audio_factory import BY_NAME, make_audio
from tests.provider_fakes import FakeVonage, serving
from tests.service_support import RunningService, running_service

AUDIO = make_audio(BY_NAME["mp3"], 2.0)
SECRET = "vonage-signature-secret-0123456789abcdef"
APPLICATION = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = _KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
).decode()
PUBLIC_PEM = (
    _KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


@pytest.fixture
async def vonage() -> AsyncIterator[FakeVonage]:
    fake = FakeVonage(public_key_pem=PUBLIC_PEM, application_id=APPLICATION)
    async with serving(fake.app()) as fake.url:
        yield fake


def settings_for(fake: FakeVonage) -> dict[str, Any]:
    return {
        "vonage_signature_secret": SECRET,
        "vonage_application_id": APPLICATION,
        "vonage_private_key": PRIVATE_PEM,
        "vonage_api_base": fake.url,
        "vonage_delete_recordings": True,
    }


def record_event(recording_uuid: str, url: str) -> bytes:
    started = datetime.now(UTC) - timedelta(minutes=2)
    return json.dumps(
        {
            "start_time": started.isoformat().replace("+00:00", "Z"),
            "recording_url": url,
            "size": len(AUDIO),
            "recording_uuid": recording_uuid,
            "end_time": (started + timedelta(seconds=2)).isoformat().replace("+00:00", "Z"),
            "conversation_uuid": "CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
            "timestamp": datetime.now(UTC).isoformat(),
        },
        separators=(",", ":"),
    ).encode()


def signed(body: bytes, **changes: Any) -> str:
    claims: dict[str, Any] = {
        "iat": int(time.time()),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        "api_key": "a1b2c3d",
        "application_id": APPLICATION,
    } | changes
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def send(service: RunningService, body: bytes, token: str) -> tuple[int, Any]:
    response = await service.client.post(
        "/webhooks/vonage?referral=MASH-2026-009001&team=mash-children",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    return response.status, await response.json()


async def test_a_signed_record_event_is_fetched_with_an_application_jwt_and_stored(
    tmp_path: Path, database_url: str, vonage: FakeVonage
) -> None:
    rid = "aaaaaaaa-bbbb-cccc-dddd-000000000001"
    vonage.files[rid] = AUDIO
    body = record_event(rid, f"{vonage.url}/v1/files/{rid}")
    async with running_service(tmp_path / "var", database_url, **settings_for(vonage)) as service:
        status, answer = await send(service, body, signed(body))
        assert (status, answer.get("status")) == (200, "queued"), answer
        job = await service.fetch_settled(rid)
        assert await service.stored(str(job.recording_id), "original") == AUDIO
        (recording,) = await service.search_referral("MASH-2026-009001", "mash-children")
        assert (recording["source"], recording["source_recording_id"]) == ("vonage", rid)
        for _ in range(100):
            if vonage.deleted:
                break
            await asyncio.sleep(0.05)
        assert vonage.deleted == [rid]
        download, delete = vonage.tokens  # a fresh application JWT for each request
        assert download["jti"] != delete["jti"]
        assert download["application_id"] == APPLICATION
        assert 0 < int(download["exp"]) - int(download["iat"]) <= 900  # type: ignore[call-overload]
        assert vonage.refused == 0


@pytest.mark.parametrize("fault", ["body", "stale", "secret", "alg-none", "no-token"])
async def test_an_unsigned_stale_or_tampered_event_is_401_and_queues_nothing(
    tmp_path: Path, database_url: str, vonage: FakeVonage, fault: str
) -> None:
    rid = "aaaaaaaa-bbbb-cccc-dddd-000000000002"
    body = record_event(rid, f"{vonage.url}/v1/files/{rid}")
    token = signed(body)
    if fault == "body":
        body = body.replace(b"CON-", b"CON_")
    elif fault == "stale":
        token = signed(body, iat=int(time.time()) - 600)
    elif fault == "secret":
        token = jwt.encode(jwt.decode(token, SECRET, algorithms=["HS256"]), "x" * 40)
    elif fault == "alg-none":
        token = jwt.encode(jwt.decode(token, SECRET, algorithms=["HS256"]), None, "none")  # type: ignore[arg-type]
    else:
        token = ""
    async with running_service(tmp_path / "var", database_url, **settings_for(vonage)) as service:
        status, answer = await send(service, body, token)
        assert (status, answer["error"]) == (401, "unauthenticated")
        assert "Authorization bearer JWT" in answer["detail"]
        assert "X-Callrec" not in answer["detail"]
        assert await service.fetch_job(rid) is None
    assert vonage.tokens == []


async def test_a_recording_url_off_vonages_hosts_is_refused(
    tmp_path: Path, database_url: str, vonage: FakeVonage
) -> None:
    rid = "aaaaaaaa-bbbb-cccc-dddd-000000000003"
    body = record_event(rid, "http://169.254.169.254/latest/meta-data/")
    async with running_service(tmp_path / "var", database_url, **settings_for(vonage)) as service:
        status, answer = await send(service, body, signed(body))
        assert (status, answer["error"]) == (422, "invalid_metadata")
        assert await service.fetch_job(rid) is None


async def test_a_signed_event_nested_30000_deep_is_422_and_queues_nothing(
    tmp_path: Path, database_url: str, vonage: FakeVonage
) -> None:
    body = b'{"recording_uuid":' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    async with running_service(tmp_path / "var", database_url, **settings_for(vonage)) as service:
        status, answer = await send(service, body, signed(body))
        assert (status, answer["error"]) == (422, "invalid_metadata")
        assert "deeper than" in answer["detail"]
        assert (await service.counts())["recordings"] == 0
