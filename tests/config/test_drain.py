"""SIGTERM to a real `callrec serve`: it drains within CALLREC_SHUTDOWN_GRACE.

An upload whose body is still arriving is either finished and acknowledged or answered
503 with Retry-After (never a 4xx), nothing is left half-stored, /readyz says 503 at
once, no new connection is taken, and the process is gone within the grace period.
"""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from sqlalchemy import func, select

from config.drain import DrainPlan
from config.services import build_services
from config.settings import Settings
from recorder import TwilioSignature
from storage import Database, create_engine
from storage.db.job_models import FetchJob
from storage.db.models import Recording
from tests.audio_factory import BY_NAME, make_audio, slow_to_check_flac
from tests.cli_support import invoke
from tests.provider_fakes import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, serving
from tests.push_support import make_wav
from tests.serve_support import Answer, Served, SlowPush, ask, read_response, start_serve
from tests.service_support import free_port

pytestmark = pytest.mark.long

GRACE_S = 3.0
"""The tests' CALLREC_SHUTDOWN_GRACE: bodies still arriving 2 s after SIGTERM are refused."""


async def stored_rows(data_dir: Path) -> dict[str, int]:
    """Recordings by state, read straight from the database (no start-up clean-up first)."""
    database = Database(create_engine(Settings(data_dir=data_dir).resolved_database_url))
    try:
        async with database.read() as session:
            rows = await session.execute(
                select(Recording.state, func.count()).group_by(Recording.state)
            )
            return {str(state): int(count) for state, count in rows.all()}
    finally:
        await database.dispose()


async def assert_refused_in_time_and_nothing_kept(
    served: Served, answer: Answer, drain_s: float
) -> None:
    """Told 503 shutting_down with Retry-After (never a 4xx), the process gone within its
    grace, and no row, object or spool file left of what was refused."""
    assert answer.status == 503, answer.body
    assert answer.headers["retry-after"].isdigit()
    assert json.loads(answer.body)["error"] == "shutting_down"
    assert served.process.returncode == 0
    assert drain_s < GRACE_S, drain_s
    assert await stored_rows(served.data_dir) == {}
    assert files_under(served.data_dir / "objects") == []
    assert files_under(served.data_dir / "spool") == []


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


async def test_an_upload_arriving_during_the_drain_is_finished_and_acknowledged(
    tmp_path: Path,
) -> None:
    served = await start_serve(tmp_path / "var", tmp_path / "serve.log", grace_s=GRACE_S)
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        # A connection the load balancer keeps open, to ask /readyz on after SIGTERM.
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(reader)).status == 200
        push = SlowPush(served.port, "drained-1", pieces=8, pause_s=0.12)  # about 1 s
        upload = asyncio.create_task(push.send())
        await push.headers_sent.wait()
        await asyncio.sleep(0.3)  # the handler is reading the body
        exited = asyncio.create_task(served.terminate_and_time())
        await asyncio.sleep(0.2)

        writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        ready = await read_response(reader)
        assert ready.status == 503
        assert json.loads(ready.body)["error"] == "draining"
        assert ready.headers.get("connection") == "close"
        assert await ask(served.port, "GET /healthz") is None  # no new connection
        answer = await upload
        drain_s = await exited
    finally:
        writer.close()

    assert answer.status == 201, answer.body
    assert json.loads(answer.body)["status"] == "stored"
    assert served.process.returncode == 0
    assert drain_s < GRACE_S, drain_s
    assert await stored_rows(served.data_dir) == {"stored": 1}
    assert files_under(served.data_dir / "spool") == []
    # Readable: `callrec verify` opens and authenticates every stored object.
    verified = invoke("verify", CALLREC_DATA_DIR=str(served.data_dir))
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_an_upload_the_grace_period_cannot_wait_for_is_told_503_and_nothing_is_kept(
    tmp_path: Path,
) -> None:
    served = await start_serve(tmp_path / "var", tmp_path / "serve.log", grace_s=GRACE_S)
    # About 10 s of body at about 96 KB/s: slow, but above the minimum pace.
    push = SlowPush(served.port, "too-slow-1", pieces=20, pause_s=0.5, audio=make_wav(60))
    upload = asyncio.create_task(push.send())
    await push.headers_sent.wait()
    await asyncio.sleep(0.3)  # the handler is reading the body
    drain_s = await served.terminate_and_time()
    answer = await upload

    await assert_refused_in_time_and_nothing_kept(served, answer, drain_s)
    assert '"drain_s"' in served.log.read_text()


async def test_a_capture_still_storing_at_the_end_is_given_up_told_503_and_removed(
    tmp_path: Path,
) -> None:
    served = await start_serve(tmp_path / "var", tmp_path / "serve.log", grace_s=GRACE_S)
    # All sent at once, and checked frame by frame for seconds longer than the drain's
    # 2.4 s for storing (twenty minutes in FLAC's smallest frames: about 6 s to check).
    long_call = slow_to_check_flac(20 * 60.0)
    push = SlowPush(served.port, "long-1", pieces=1, pause_s=0.0, audio=long_call)
    upload = asyncio.create_task(push.send())
    await push.headers_sent.wait()
    await asyncio.sleep(0.5)  # received; the media worker is checking it
    drain_s = await served.terminate_and_time()
    answer = await upload

    await assert_refused_in_time_and_nothing_kept(served, answer, drain_s)


async def queue_a_twilio_fetch(port: int, fake: FakeTwilio, sid: str) -> None:
    path = "/webhooks/twilio"
    fields = [
        ("AccountSid", ACCOUNT_SID),
        ("RecordingSid", sid),
        ("RecordingUrl", fake.recording_url(sid)),
        ("RecordingStatus", "completed"),
        ("RecordingDuration", "2"),
    ]
    url = f"http://127.0.0.1:{port}{path}"
    signature = TwilioSignature(AUTH_TOKEN).compute(url, fields)
    async with (
        aiohttp.ClientSession() as client,
        client.post(
            url,
            data=io.BytesIO(urlencode(fields).encode()),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        ) as answer,
    ):
        assert answer.status == 200


async def test_a_fetch_in_flight_is_handed_back_at_once_not_left_to_its_lease(
    tmp_path: Path,
) -> None:
    fake = FakeTwilio()
    fake.recordings["REdrain"] = make_audio(BY_NAME["mulaw-wav"], 2.0)
    fake.scripts["REdrain"] = ["stall"]  # the download hangs half-way
    data_dir = tmp_path / "var"
    async with serving(fake.app()) as fake.url:
        port = free_port()
        served = await start_serve(
            data_dir,
            tmp_path / "serve.log",
            grace_s=GRACE_S,
            port=port,
            CALLREC_PUBLIC_URL=f"http://127.0.0.1:{port}",
            CALLREC_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            CALLREC_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            CALLREC_TWILIO_API_BASE=fake.url,
            CALLREC_FETCH_LEASE="PT10M",
        )
        await queue_a_twilio_fetch(port, fake, "REdrain")
        for _ in range(100):
            if fake.seen:
                break
            await asyncio.sleep(0.05)
        assert [seen.method for seen in fake.seen] == ["GET"]  # the download is under way
        drain_s = await served.terminate_and_time()

    assert served.process.returncode == 0
    assert drain_s < GRACE_S, drain_s
    services = build_services(Settings(data_dir=data_dir))
    try:
        async with services.database.read() as session:
            job = (await session.execute(select(FetchJob))).scalar_one()
        assert (job.state, job.attempts, job.lease_until) == ("queued", 1, None)
        assert job.next_attempt_at <= datetime.now(UTC)
        # Claimable now, by any replica: not in ten minutes, when its lease would end.
        claimed = await services.fetch_queue.claim()
        assert claimed is not None
        assert (claimed.external_id, claimed.attempt) == ("REdrain", 2)
    finally:
        await services.close()
    assert await stored_rows(data_dir) == {}
    assert files_under(data_dir / "spool") == []


def test_the_default_grace_leaves_senders_twenty_seconds_and_exits_by_twenty_five() -> None:
    # The timetable docs/reliability.md gives, from the setting's default.
    default = Settings.model_fields["shutdown_grace"].default
    assert DrainPlan.within(default) == DrainPlan(
        bodies_until=20.0, storing_until=22.0, answers_until=23.0, exit_by=25.0
    )
    # A short grace keeps a third in reserve.
    assert DrainPlan.within(timedelta(seconds=3)).bodies_until == 2.0
