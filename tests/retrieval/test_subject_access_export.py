"""A subject access request answered end to end: a two-channel call whose channels carry
different voices is exported for its case with the other channel silenced and a stretch
muted; the bundle's signature is checked offline by `callrec sar verify`, the bundle is
decrypted, and the audio is measured: the silenced channel and the muted stretch are
silent and the rest is the original, sample for sample."""

from __future__ import annotations

import asyncio
import io
import json
import os
import tarfile
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyrage
import pytest
from sqlalchemy import select

from storage.db.models import AuditEvent
from tests.cli_support import invoke
from tests.push_support import metadata, push_body, push_headers
from tests.retrieval.document_support import assert_documented
from tests.service_support import RunningService, running_service

RATE = 16_000
SECONDS = 4.0
MUTED = (1.0, 2.0)
REQUESTER = "+442079460000"
REASON = "subject access request from a caller about their own calls"
CASES = "/api/v1/subject-access-requests"


def two_voices() -> npt.NDArray[np.int16]:
    """The requester at 440 Hz on channel 0, the hub's call handler at 1 kHz on channel 1,
    each with a little noise so no stretch of either is silent by chance."""
    count = round(SECONDS * RATE)
    t = np.arange(count) / RATE
    noise = np.random.default_rng(7).standard_normal((2, count)) * 0.01
    tones = np.stack([0.4 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1000 * t)])
    return (np.clip(tones + noise, -1, 1) * 32767).astype(np.int16)


def wav_of(samples: npt.NDArray[np.int16]) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(samples.shape[0])
        writer.setsampwidth(2)
        writer.setframerate(RATE)
        writer.writeframes(samples.T.tobytes())
    return buffer.getvalue()


def channels_of(data: bytes) -> npt.NDArray[np.int16]:
    with wave.open(io.BytesIO(data)) as reader:
        assert reader.getframerate() == RATE
        frames = reader.readframes(reader.getnframes())
        return np.frombuffer(frames, np.int16).reshape(-1, reader.getnchannels()).T


def members_of(plaintext: bytes) -> dict[str, bytes]:
    """Every member of a decrypted bundle, read in memory."""
    found = {}
    with tarfile.open(fileobj=io.BytesIO(plaintext)) as members:
        for info in members:
            content = members.extractfile(info)
            assert content is not None
            found[info.name] = content.read()
    return found


def dominant_hz(samples: npt.NDArray[np.int16]) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / RATE)[int(np.argmax(spectrum))])


@dataclass
class Answered:
    service: RunningService
    recording: str
    case: dict[str, Any]
    original: npt.NDArray[np.int16]
    dpo: dict[str, str]


@pytest.fixture
async def answered(tmp_path: Path, database_url: str) -> AsyncIterator[Answered]:
    """A call of two voices, replayed once by a supervisor, in an open case with its
    redaction chosen: the requester's channel kept, one second muted."""
    async with running_service(tmp_path / "var", database_url) as service:
        original = two_voices()
        started = time.time() - 600
        meta = metadata(
            recording_id="sar-two-voices",
            started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            ended_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started + SECONDS)),
            agent="staff-0421",
            **{"from": REQUESTER},
        )
        body = push_body(meta, wav_of(original))
        pushed = await service.client.post(
            "/webhooks/push/pbx", data=body, headers=push_headers(body)
        )
        assert pushed.status == 201, await pushed.text()
        recording = (await pushed.json())["id"]
        supervisor = {"Authorization": f"Bearer {service.token('supervisor', 'mash-children')}"}
        granted = await service.client.post(
            f"/api/v1/recordings/{recording}/grants",
            headers=supervisor,
            json={"purpose": "quality_review", "reason": "weekly quality review of calls"},
        )
        played = await service.client.get(
            "/" + (await granted.json())["audio_url"].split("/", 3)[3], headers=supervisor
        )
        assert played.status == 200
        await played.read()
        dpo = {"Authorization": f"Bearer {service.token('dpo', subject='dpo-1')}"}
        today = time.strftime("%Y-%m-%d", time.gmtime())
        opened = await service.client.post(
            CASES,
            headers=dpo,
            json={
                "reference": "SAR-2026-0099",
                "received": today,
                "reason": REASON,
                "phone_numbers": [REQUESTER],
            },
        )
        assert opened.status == 201, await opened.text()
        case = await opened.json()
        chosen = await service.client.put(
            f"{CASES}/{case['id']}/recordings/{recording}/redaction",
            headers=dpo,
            json={"keep_channel": 0, "muted": [list(MUTED)]},
        )
        assert chosen.status == 200, await chosen.text()
        yield Answered(service, recording, case, original, dpo)


def check_audio(audio: bytes, original: npt.NDArray[np.int16]) -> None:
    """The silenced channel and the muted stretch are zero; the rest is the original."""
    got = channels_of(audio)
    assert got.shape == original.shape
    start, end = (round(second * RATE) for second in MUTED)
    assert not got[1].any()  # the call handler's voice: gone, every sample
    assert not got[:, start:end].any()  # the muted stretch: silent on both channels
    kept = np.concatenate([got[0, :start], got[0, end:]])
    assert np.array_equal(kept, np.concatenate([original[0, :start], original[0, end:]]))
    assert abs(dominant_hz(got[0, :start]) - 440) < 5
    rms = float(np.sqrt(np.mean(got[0, end:].astype(np.float64) ** 2)))
    assert rms > 0.25 * 32767


async def test_the_requester_gets_their_channel_with_the_stretch_muted_signed_and_verified(
    answered: Answered, tmp_path: Path
) -> None:
    service = answered.service
    identity = pyrage.x25519.Identity.generate()
    path = f"{CASES}/{answered.case['id']}/export"
    response = await service.client.post(
        path, headers=answered.dpo, json={"recipients": [str(identity.to_public())]}
    )
    ciphertext = await response.read()
    assert_documented("POST", path, response.status, response.content_type, ciphertext)
    assert response.status == 200
    assert b"RIFF" not in ciphertext

    # Offline, with nothing but the bundle, the identity and the receipt public key.
    delivered = tmp_path / "delivered"
    delivered.mkdir()
    (delivered / "case.age").write_bytes(ciphertext)
    (delivered / "identity.txt").write_text(f"{identity}\n")
    (delivered / "receipts.pem").write_bytes(service.services.receipts.public_pem)
    checked = invoke(
        "sar",
        "verify",
        str(delivered / "case.age"),
        "--identity",
        str(delivered / "identity.txt"),
        "--public-key",
        str(delivered / "receipts.pem"),
    )
    assert checked.returncode == 0, checked.stderr
    assert "intact: case SAR-2026-0099" in checked.stdout

    read = members_of(pyrage.decrypt(ciphertext, [identity]))
    folder = f"recordings/{answered.recording}"
    assert set(read) == {
        "case.json",
        f"{folder}/metadata.json",
        f"{folder}/accesses.json",
        f"{folder}/audio.wav",
        "manifest.json",
    }
    check_audio(read[f"{folder}/audio.wav"], answered.original)

    # No other person's details: the hub's number and the handler's name are withheld.
    details = json.loads(read[f"{folder}/metadata.json"])
    assert details["from"] == REQUESTER
    assert details["to"] == "other party (withheld)"
    assert details["answered_by"] == "a call handler of the hub"
    assert "staff-0421" not in read[f"{folder}/metadata.json"].decode()
    [access] = json.loads(read[f"{folder}/accesses.json"])
    assert access["what"] == "replayed"
    assert access["purpose"] == "quality_review"
    assert access["by"].startswith("a supervisor")

    # The export is on the record with the manifest's hash, never the audio.
    async with service.services.database.read() as session:
        [event] = (
            await session.execute(
                select(AuditEvent.details).where(AuditEvent.action == "subject_access.exported")
            )
        ).scalars()
    manifest = json.loads(read["manifest.json"])
    listed = {item["name"]: item["sha256"] for item in manifest["files"]}
    assert {item["name"]: item["sha256"] for item in event["files"]} == listed
    assert event["encrypted_to"] == [str(identity.to_public())]


async def test_the_command_writes_the_same_bundle_to_a_file(
    answered: Answered, tmp_path: Path
) -> None:
    settings = answered.service.services.settings
    assert settings.database_url is not None
    identity = pyrage.x25519.Identity.generate()
    out = tmp_path / "out" / "sar.age"
    out.parent.mkdir()
    env = {
        "CALLREC_DATA_DIR": str(settings.data_dir),
        "CALLREC_DATABASE_URL": settings.database_url.get_secret_value(),
        "CALLREC_SINGLE_NODE": "true",
    }
    result = await asyncio.to_thread(
        invoke,
        "sar",
        "export",
        "SAR-2026-0099",
        "--out",
        str(out),
        "--recipient",
        str(identity.to_public()),
        **env,
    )
    assert result.returncode == 0, result.stderr
    assert "case SAR-2026-0099" in result.stdout
    read = members_of(pyrage.decrypt(out.read_bytes(), [identity]))
    check_audio(read[f"recordings/{answered.recording}/audio.wav"], answered.original)
    assert out.stat().st_mode & 0o077 == 0
    # Refused, one line, exit 2, nothing left behind: a file that exists, no key, no case.
    for args in (
        ("SAR-2026-0099", "--out", str(out), "--recipient", str(identity.to_public())),
        ("SAR-2026-0099", "--out", str(tmp_path / "none.age")),
        ("SAR-NOPE", "--out", str(tmp_path / "nope.age"), "--recipient", str(identity.to_public())),
    ):
        refused = await asyncio.to_thread(invoke, "sar", "export", *args, **env)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert len(refused.stderr.strip().splitlines()) == 1
    assert [name for name in os.listdir(tmp_path) if ".age" in name] == []


async def test_an_undecided_recording_holds_the_export_back(answered: Answered) -> None:
    service = answered.service
    other = await service.client.post(
        CASES,
        headers=answered.dpo,
        json={
            "reference": "SAR-2026-0100",
            "received": time.strftime("%Y-%m-%d", time.gmtime()),
            "reason": REASON,
            "phone_numbers": [REQUESTER],
        },
    )
    case = await other.json()
    path = f"{CASES}/{case['id']}/export"
    response = await service.client.post(
        path, headers=answered.dpo, json={"passphrase": "a long passphrase for the requester"}
    )
    body = await response.read()
    assert_documented("POST", path, response.status, response.content_type, body)
    assert response.status == 409
    assert "no redaction chosen" in json.loads(body)["detail"]
    for bad in (
        {},
        {"passphrase": "short"},
        {"recipients": ["age1nope"]},
        {"recipients": [], "passphrase": "x" * 20},
    ):
        refused = await service.client.post(path, headers=answered.dpo, json=bad)
        assert refused.status == 422, bad
