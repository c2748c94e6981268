"""Decompression bombs: small files that decode to hours. Each is refused 422 without
holding a media worker for long, stores nothing, and an ordinary push behind it is stored.
A capture that still overruns its deadline is killed and refused, and the worker replaced.
Timing is not asserted here: how long the bombs take is measured in the benchmark."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.audio_factory import BY_NAME, make_audio, silence_repeated, slow_to_check_flac
from tests.push_support import metadata, push_body, push_headers
from tests.service_support import RunningService, running_service

NOTHING = {"recordings": 0, "objects": 0, "spool": 0, "audit": 0}


@pytest.fixture(scope="session")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Ten hours of silence in FLAC (about 5 MB) and 25 hours and 12 minutes of it in
    Ogg Opus (about 25 MB), as in the report that found them; made once per session."""
    directory = tmp_path_factory.mktemp("bombs")
    made = {
        "flac-10h-silence": silence_repeated("flac", "flac", 8000, 10 * 3600),
        "opus-25h-silence": silence_repeated(
            "ogg", "libopus", 48000, 25.2 * 3600, frame_duration="60"
        ),
    }
    for name, data in made.items():
        (directory / name).write_bytes(data)
    return {name: directory / name for name in made}


async def push(service: RunningService, recording_id: str, audio: bytes) -> tuple[int, Any]:
    body = push_body(metadata(recording_id=recording_id), audio)
    response = await service.client.post(
        "/webhooks/push/pbx", data=io.BytesIO(body), headers=push_headers(body)
    )
    return response.status, await response.json()


@pytest.fixture
async def service(tmp_path: Path, sqlite_url: str) -> AsyncIterator[RunningService]:
    # One database: a bomb is refused in the media worker, before the database is asked
    # anything, and "nothing stored" reads the same on either backend.
    async with running_service(tmp_path / "var", sqlite_url, media_workers=1) as running:
        yield running


@pytest.mark.parametrize("name", ["flac-10h-silence", "opus-25h-silence"])
async def test_a_bomb_is_refused_and_an_ordinary_push_behind_it_is_stored(
    service: RunningService, bombs: dict[str, Path], name: str
) -> None:
    refusing = asyncio.ensure_future(push(service, "bomb", bombs[name].read_bytes()))
    await asyncio.sleep(0.5)  # the bomb reaches the one media worker first
    ordinary = await push(service, "ordinary", make_audio(BY_NAME["pcm-wav"], 2.0))
    status, refused = await refusing
    assert (status, refused["error"]) == (422, "undecodable_audio")
    assert "hours" in refused["detail"] or "bomb" in refused["detail"]
    assert ordinary[0] == 201, ordinary[1]
    assert (await service.counts())["recordings"] == 1


async def test_a_capture_past_its_deadline_is_refused_and_its_worker_replaced(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running_service(
        tmp_path / "var",
        sqlite_url,
        media_workers=1,
        media_job_deadline=timedelta(seconds=1),
    ) as service:
        # Checked frame by frame, this takes seconds: longer than this deadline.
        status, refused = await push(service, "slow", slow_to_check_flac(450))
        assert (status, refused.get("error")) == (422, "undecodable_audio"), refused
        assert "to process" in refused["detail"]
        assert await service.counts() == NOTHING
        status, _ = await push(service, "next", make_audio(BY_NAME["pcm-wav"], 0.5))
        assert status == 201
