"""Every telephony format through the capture endpoint, as a PBX would push it: stored byte
for byte, probed, a browser rendition played back through a grant, peaks served. Files with
no usable audio are refused with their reason and leave nothing; damaged ones are kept,
flagged and play for the part that decodes."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from storage import ORIGINAL
from tests.audio_factory import (
    BY_NAME,
    DECODER,
    FORMATS,
    decode,
    make_audio,
    slow_to_check_flac,
)
from tests.push_support import metadata, push_body, push_headers
from tests.recorder.test_media import DAMAGED, NO_AUDIO
from tests.service_support import RunningService, running_service

pytestmark = pytest.mark.long

SECONDS = 8.0
REASON = "quality review of a referral call"


@pytest.fixture
async def service(tmp_path: Path, database_url: str) -> AsyncIterator[RunningService]:
    async with running_service(tmp_path / "var", database_url) as running:
        yield running


def call_of(seconds: float, recording_id: str) -> dict[str, Any]:
    """Metadata of a call that really lasted ``seconds``."""
    started = time.time() - 3600
    return metadata(
        recording_id=recording_id,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        ended_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started + seconds)),
    )


async def push(service: RunningService, meta: dict[str, Any], audio: bytes) -> tuple[int, Any]:
    body = push_body(meta, audio)
    response = await service.client.post(
        "/webhooks/push/pbx", data=io.BytesIO(body), headers=push_headers(body)
    )
    return response.status, await response.json()


async def api(service: RunningService, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    token = service.token("dpo")
    response = await service.client.request(
        method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs
    )
    body = await response.read()
    if response.content_type == "application/json":
        return response.status, await response.json()
    return response.status, body


async def played(service: RunningService, recording_id: str) -> bytes:
    """The playback URL's bytes, through a grant, as a browser would fetch them, once the
    rendition is made."""
    await service.renditions_made()
    status, grant = await api(
        service,
        "POST",
        f"/api/v1/recordings/{recording_id}/grants",
        json={"purpose": "subject_access", "reason": REASON},
    )
    assert status == 201, grant
    status, audio = await api(service, "GET", "/" + grant["audio_url"].split("/", 3)[3])
    assert status == 200
    assert isinstance(audio, bytes)
    return audio


async def test_every_format_is_stored_probed_rendered_and_drawn(service: RunningService) -> None:
    for spec in FORMATS:
        for channels in (1,) if spec.codec == "gsm_ms" else (1, 2):
            label = f"{spec.name}, {channels} channel(s)"
            audio = make_audio(spec, SECONDS, channels)
            status, body = await push(service, call_of(SECONDS, f"{spec.name}-{channels}"), audio)
            assert status == 201, (label, body)
            rid = body["id"]
            await service.renditions_made()

            # The evidential copy, byte for byte, with its hash taken at capture.
            assert await service.stored(rid, ORIGINAL) == audio, label

            status, shown = await api(service, "GET", f"/api/v1/recordings/{rid}")
            facts = shown["audio"]
            assert facts["codec"].startswith(DECODER.get(spec.codec, spec.codec)), label
            assert (facts["sample_rate"], facts["channels"]) == (spec.rate, channels), label
            assert facts["duration_s"] == pytest.approx(SECONDS, rel=0.01), label
            assert (facts["complete"], facts["problems"]) == (True, []), label

            rendition = decode(await played(service, rid))
            assert (rendition.container, rendition.codec) == ("matroska,webm", "opus"), label
            assert rendition.channels == channels, label
            assert rendition.seconds == pytest.approx(SECONDS, rel=0.01), label

            status, peaks = await api(service, "GET", f"/api/v1/recordings/{rid}/peaks")
            assert (status, peaks["status"]) == (200, "ready"), label
            assert len(peaks["peaks"]) == channels, label
            assert peaks["buckets"] == pytest.approx(SECONDS * 20, abs=1), label
            assert max(peaks["peaks"][0]["max"]) > 40, label  # the tone is there


@pytest.mark.parametrize(("data", "reason"), NO_AUDIO.values(), ids=NO_AUDIO.keys())
async def test_a_file_with_no_usable_audio_is_refused_and_leaves_nothing(
    service: RunningService, data: bytes, reason: str
) -> None:
    status, body = await push(service, call_of(2.0, "refused"), data)
    assert (status, body["error"]) == (422, "undecodable_audio")
    assert reason in body["detail"]
    assert await service.counts() == {"recordings": 0, "objects": 0, "spool": 0, "audit": 0}
    # ...and the service goes on taking good recordings.
    good = make_audio(BY_NAME["pcm-wav"], 1.0)
    assert (await push(service, call_of(1.0, "after"), good))[0] == 201


@pytest.mark.parametrize(("data", "playable", "codes"), DAMAGED.values(), ids=DAMAGED.keys())
async def test_a_damaged_file_is_kept_flagged_and_plays_what_decodes(
    service: RunningService, data: bytes, playable: float, codes: set[str]
) -> None:
    status, body = await push(service, call_of(playable, "damaged"), data)
    assert status == 201, body
    rid = body["id"]
    assert await service.stored(rid, ORIGINAL) == data  # kept exactly as it came
    _, shown = await api(service, "GET", f"/api/v1/recordings/{rid}")
    assert shown["audio"]["complete"] is False
    assert {problem["code"] for problem in shown["audio"]["problems"]} == codes
    assert shown["audio"]["duration_s"] == pytest.approx(playable, abs=0.3)
    assert decode(await played(service, rid)).seconds == pytest.approx(playable, abs=0.3)


async def test_audio_far_from_the_calls_length_is_kept_and_flagged(
    service: RunningService,
) -> None:
    audio = make_audio(BY_NAME["alaw-wav"], 4.0)
    status, body = await push(service, call_of(300.0, "short"), audio)
    assert status == 201
    _, shown = await api(service, "GET", f"/api/v1/recordings/{body['id']}")
    (problem,) = shown["audio"]["problems"]
    assert problem == {
        "code": "duration_mismatch",
        "detail": "the call lasted 300 s by its metadata; the audio lasts 4 s",
    }


async def test_a_worker_that_died_between_jobs_is_replaced_and_the_push_is_served(
    service: RunningService,
) -> None:
    good = make_audio(BY_NAME["pcm-wav"], 1.0)
    assert (await push(service, call_of(1.0, "before-death"), good))[0] == 201
    media = service.services.media
    idle = media.worker_pids()
    assert idle
    for pid in idle:
        os.kill(pid, signal.SIGKILL)
    for _ in range(100):  # the pool notices its worker is gone
        if not set(idle) & set(media.worker_pids()):
            break
        await asyncio.sleep(0.05)
    assert (await push(service, call_of(1.0, "after-death"), good))[0] == 201


async def test_a_worker_killed_mid_job_is_a_503_and_the_next_push_is_served(
    service: RunningService,
) -> None:
    # Checked frame by frame, this keeps a worker busy for seconds: long enough to kill it.
    body = push_body(call_of(450.0, "killed"), slow_to_check_flac(450))
    pushing = asyncio.ensure_future(
        service.client.post("/webhooks/push/pbx", data=io.BytesIO(body), headers=push_headers(body))
    )
    media = service.services.media
    for _ in range(200):
        if media.worker_pids():
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    for pid in media.worker_pids():
        os.kill(pid, signal.SIGKILL)
    response = await pushing
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert (await response.json())["error"] == "busy"
    assert await service.counts() == {"recordings": 0, "objects": 0, "spool": 0, "audit": 0}

    good = make_audio(BY_NAME["pcm-wav"], 1.0)
    assert (await push(service, call_of(1.0, "after-kill"), good))[0] == 201
