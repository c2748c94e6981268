"""A push is acknowledged once its original is stored; its browser rendition is queued
work, made afterwards by any replica's workers, resumed after a crash, dead-lettered
visibly, and gone with its recording. Playback before the rendition exists serves an
original browsers play, or says when the copy will be ready."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from storage import RECORDINGS_PREFIX, RenditionQueue
from storage.db.job_models import RenditionJob
from storage.db.models import AuditEvent
from storage.recordings import object_key_for
from tests.audio_factory import BY_NAME, decode, make_audio
from tests.cli_support import run
from tests.push_support import metadata, push_body, push_headers
from tests.service_support import KEYS_PER_RECORDING, RunningService, running_service

REASON = "quality review of a referral call"
SECONDS = 4.0


def call(recording_id: str) -> dict[str, Any]:
    started = time.time() - 600
    return metadata(
        recording_id=recording_id,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        ended_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started + SECONDS)),
    )


async def push(service: RunningService, recording_id: str, audio: bytes) -> str:
    body = push_body(call(recording_id), audio)
    response = await service.client.post(
        "/webhooks/push/pbx", data=io.BytesIO(body), headers=push_headers(body)
    )
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def api(service: RunningService, method: str, path: str, **kwargs: Any) -> Any:
    response = await service.client.request(
        method, path, headers={"Authorization": f"Bearer {service.token('dpo')}"}, **kwargs
    )
    return response


async def shown(service: RunningService, rid: str) -> dict[str, Any]:
    response = await api(service, "GET", f"/api/v1/recordings/{rid}")
    assert response.status == 200
    playback: dict[str, Any] = (await response.json())["playback"]
    return playback


async def play(service: RunningService, rid: str) -> Any:
    """The playback link's answer, through a grant, as the page fetches it."""
    granted = await api(
        service,
        "POST",
        f"/api/v1/recordings/{rid}/grants",
        json={"purpose": "subject_access", "reason": REASON},
    )
    assert granted.status == 201
    url = (await granted.json())["audio_url"]
    return await api(service, "GET", "/" + url.split("/", 3)[3])


async def jobs(service: RunningService) -> list[RenditionJob]:
    async with service.services.database.read() as session:
        return list((await session.execute(select(RenditionJob))).scalars())


async def stored_keys(service: RunningService) -> set[str]:
    return {key async for key in service.services.objects.iter_keys(RECORDINGS_PREFIX)}


async def test_a_push_is_acknowledged_before_its_rendition_which_follows_once_a_worker_runs(
    tmp_path: Path, database_url: str
) -> None:
    pcm, mulaw = make_audio(BY_NAME["pcm-wav"], SECONDS), make_audio(BY_NAME["mulaw-wav"], SECONDS)
    async with running_service(tmp_path / "var", database_url, rendition_workers=0) as service:
        playable = await push(service, "plays-as-it-is", pcm)
        waiting = await push(service, "needs-its-copy", mulaw)
        # Acknowledged with the original stored, its rendition only queued.
        assert {job.state for job in await jobs(service)} == {"queued"}
        assert len(await stored_keys(service)) == 2 * (KEYS_PER_RECORDING - 1)

        # An original every browser plays is served meanwhile, as it is.
        assert await shown(service, playable) == {
            "copy": "preparing",
            "serves": "original",
            "ready_in_s": pytest.approx(2 * SECONDS / 100, abs=0.2),
        }
        answer = await play(service, playable)
        assert (answer.status, answer.content_type) == (200, "audio/wav")
        assert await answer.read() == pcm

        # Any other says when its copy will be ready, and the link asks to come back.
        copy = await shown(service, waiting)
        assert (copy["copy"], copy["serves"]) == ("preparing", None)
        answer = await play(service, waiting)
        assert answer.status == 503
        refusal = await answer.json()
        assert refusal["error"] == "unavailable"
        assert "being prepared" in refusal["detail"]
        assert int(answer.headers["Retry-After"]) == refusal["ready_in_s"] >= 2

    # The same data, a replica (or the same one restarted) with a rendition worker.
    async with running_service(tmp_path / "var", database_url) as service:
        await service.renditions_made()
        assert {job.state for job in await jobs(service)} == {"done"}
        assert len(await stored_keys(service)) == 2 * KEYS_PER_RECORDING
        for rid, original in ((playable, pcm), (waiting, mulaw)):
            assert await shown(service, rid) == {
                "copy": "ready",
                "serves": "rendition",
                "ready_in_s": None,
            }
            answer = await play(service, rid)
            assert (answer.status, answer.content_type) == (200, "audio/webm")
            heard = decode(await answer.read())
            assert heard.codec == "opus"
            assert heard.seconds == pytest.approx(SECONDS, abs=0.1)
            assert await service.stored(rid, "original") == original


async def test_a_worker_that_died_mid_rendition_leaves_its_job_to_the_next_and_no_object(
    tmp_path: Path, database_url: str
) -> None:
    audio = make_audio(BY_NAME["pcm-wav"], SECONDS)
    async with running_service(tmp_path / "var", database_url, rendition_workers=0) as service:
        rid = await push(service, "worker-dies", audio)
        # A worker elsewhere claims the job with a short lease, puts what it made so far,
        # and dies before storing it.
        dying = RenditionQueue(
            database=service.services.database,
            audit=service.services.audit,
            clock=service.services.clock,
            lease=timedelta(seconds=0.5),
        )
        claimed = await dying.claim()
        assert claimed is not None
        assert str(claimed.recording_id) == rid
        left = tmp_path / "half-made"
        left.write_bytes(os.urandom(4096))
        await service.services.objects.put_file(object_key_for(claimed.object_id), left, tags={})
        assert await dying.claim() is None  # held until its lease runs out

    async with running_service(tmp_path / "var", database_url) as service:
        await service.renditions_made()
        (job,) = await jobs(service)
        assert (job.state, job.attempts) == ("done", 2)
        keys = await stored_keys(service)
        assert object_key_for(claimed.object_id) not in keys
        assert len(keys) == KEYS_PER_RECORDING
        answer = await play(service, rid)
        assert (answer.status, answer.content_type) == (200, "audio/webm")


async def test_deleting_a_recording_takes_its_unfinished_rendition_with_it(
    tmp_path: Path, database_url: str
) -> None:
    audio = make_audio(BY_NAME["mulaw-wav"], SECONDS)
    async with running_service(
        tmp_path / "var", database_url, rendition_workers=0, erasure_approvals=1
    ) as service:
        rid = await push(service, "erased-early", audio)
        claimed = await service.services.rendition_queue.claim()
        assert claimed is not None
        left = tmp_path / "in-flight"
        left.write_bytes(os.urandom(4096))
        await service.services.objects.put_file(object_key_for(claimed.object_id), left, tags={})

        erased = await api(service, "DELETE", f"/api/v1/recordings/{rid}", json={"reason": REASON})
        assert erased.status == 200, await erased.text()
        assert await jobs(service) == []
        assert await stored_keys(service) == set()
        # The worker that held the job finds nothing to store, and stores nothing.
        assert await service.services.rendition_queue.renew(claimed) is None


async def test_a_rendition_given_up_is_on_the_record_counted_and_retried_by_an_operator(
    tmp_path: Path, database_url: str
) -> None:
    audio = make_audio(BY_NAME["pcm-wav"], SECONDS)
    async with running_service(tmp_path / "var", database_url, rendition_workers=0) as service:
        rid = await push(service, "given-up", audio)
        queue = RenditionQueue(
            database=service.services.database,
            audit=service.services.audit,
            clock=service.services.clock,
            max_attempts=1,
        )
        claimed = await queue.claim()
        assert claimed is not None
        assert await queue.retry(claimed, "MediaWorkerLost") is False
        assert await shown(service, rid) == {
            "copy": "failed",
            "serves": "original",
            "ready_in_s": None,
        }
        async with service.services.database.read() as session:
            (event,) = (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.action == "rendition.dead_lettered")
                )
            ).scalars()
        assert str(event.recording_id) == rid
        assert (event.details or {})["error"].startswith("MediaWorkerLost")
        scraped = await (await service.client.get("/metrics")).text()
        assert 'callrec_rendition_jobs{state="dead"} 1.0' in scraped

        # What an operator runs: the queue's state (exit 1 while any is given up), then retry.
        settings = {
            "CALLREC_DATA_DIR": str(tmp_path / "var"),
            "CALLREC_DATABASE_URL": database_url,
            "CALLREC_SINGLE_NODE": "true",
        }
        status = run("renditions", **settings)
        assert status.returncode == 1, status.stderr
        assert status.stdout.splitlines()[3] == "dead: 1"
        retried = run("renditions", "retry", **settings)
        assert (retried.returncode, retried.stdout) == (0, "1 rendition queued again\n")
        assert await shown(service, rid) == {
            "copy": "preparing",
            "serves": "original",
            "ready_in_s": pytest.approx(SECONDS / 100, abs=0.2),
        }


async def test_renditions_run_at_a_lower_cpu_priority_than_capture_checks(
    tmp_path: Path, database_url: str
) -> None:
    async with running_service(tmp_path / "var", database_url) as service:
        await push(service, "priority", make_audio(BY_NAME["pcm-wav"], SECONDS))
        await service.renditions_made()
        rendering = service.services.rendition_media.worker_pids()
        checking = service.services.media.worker_pids()
        assert rendering
        assert checking
        assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in rendering} == {10}
        assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in checking} == {0}
        scraped = await (await service.client.get("/metrics")).text()
        assert "callrec_renditions_total 1.0" in scraped
        assert f"callrec_renditions_audio_seconds_total {SECONDS}" in scraped
        assert "callrec_rendition_backlog_audio_seconds 0.0" in scraped
        samples = {
            sample.name: sample.value
            for family in text_string_to_metric_families(scraped)
            for sample in family.samples
        }
        # The worker's own CPU for the encode: some, and no more than the job's wall time
        # (one thread decodes and encodes), which also counts the copy and the store.
        cpu_s = samples["callrec_renditions_cpu_seconds_total"]
        assert 0 < cpu_s <= samples["callrec_renditions_busy_seconds_total"]
