"""A real kill: `callrec serve` acknowledges a Twilio callback, starts fetching, and is
killed (SIGKILL) mid-download. The next process takes the job once its lease runs out,
fetches the recording and stores it once."""

from __future__ import annotations

import asyncio
import io
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from sqlalchemy import select

from config.settings import Settings
from recorder import TwilioSignature
from storage import Database, create_engine
from storage.db.job_models import FetchJob
from storage.db.models import Recording
from tests.audio_factory import BY_NAME, make_audio
from tests.provider_fakes import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, serving
from tests.service_support import wait_until_healthy

AUDIO = make_audio(BY_NAME["mulaw-wav"], 2.0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def start_serve(data_dir: Path, fake: FakeTwilio, port: int) -> subprocess.Popen[bytes]:
    env = {
        "PATH": "/usr/bin:/bin",
        "CALLREC_DATA_DIR": str(data_dir),
        "CALLREC_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CALLREC_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "CALLREC_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "CALLREC_TWILIO_API_BASE": fake.url,
        "CALLREC_FETCH_LEASE": "PT2S",
        "CALLREC_FETCH_FIRST_RETRY": "PT0.1S",
        "CALLREC_LOG_LEVEL": "warning",
    }
    # In a thread: the fake Twilio runs on this test's event loop meanwhile.
    return await asyncio.to_thread(_spawn, env, port)


def _spawn(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "config", "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    assert wait_until_healthy(f"http://127.0.0.1:{port}", process)
    return process


async def job_and_recordings(data_dir: Path) -> tuple[FetchJob | None, int]:
    database = Database(create_engine(Settings(data_dir=data_dir).resolved_database_url))
    try:
        async with database.read() as session:
            job = (await session.execute(select(FetchJob))).scalar_one_or_none()
            count = len((await session.execute(select(Recording.id))).all())
            return job, count
    finally:
        await database.dispose()


async def test_a_server_killed_mid_fetch_leaves_the_job_to_the_next_one(tmp_path: Path) -> None:
    fake = FakeTwilio()
    fake.recordings["REkill"] = AUDIO
    fake.scripts["REkill"] = ["stall"]  # the first download hangs half-way
    data_dir = tmp_path / "var"
    async with serving(fake.app()) as fake.url:
        port = free_port()
        first = await start_serve(data_dir, fake, port)
        try:
            path = "/webhooks/twilio?referral=MASH-2026-010001"
            fields = [
                ("AccountSid", ACCOUNT_SID),
                ("RecordingSid", "REkill"),
                ("RecordingUrl", fake.recording_url("REkill")),
                ("RecordingStatus", "completed"),
                ("RecordingDuration", "2"),
            ]
            signature = TwilioSignature(AUTH_TOKEN).compute(
                f"http://127.0.0.1:{port}{path}", fields
            )
            async with (
                aiohttp.ClientSession() as client,
                client.post(
                    f"http://127.0.0.1:{port}{path}",
                    data=io.BytesIO(urlencode(fields).encode()),
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "X-Twilio-Signature": signature,
                    },
                ) as answer,
            ):
                assert answer.status == 200
            for _ in range(200):
                if fake.seen:
                    break
                await asyncio.sleep(0.05)
            assert [seen.method for seen in fake.seen] == ["GET"]  # the download is under way
        finally:
            first.send_signal(signal.SIGKILL)
            # SIGKILL lands once the process leaves the kernel: a loaded disk can hold an
            # fsync for seconds.
            await asyncio.to_thread(first.wait, 120)
        job, stored = await job_and_recordings(data_dir)
        assert job is not None
        assert (job.state, job.attempts, stored) == ("running", 1, 0)

        second = await start_serve(data_dir, fake, free_port())
        try:
            for _ in range(300):
                job, stored = await job_and_recordings(data_dir)
                if job is not None and job.state == "done":
                    break
                await asyncio.sleep(0.1)
        finally:
            second.terminate()
            await asyncio.to_thread(second.wait, 30)
    assert job is not None
    assert (job.state, job.attempts, stored) == ("done", 2, 1)
    assert [seen.method for seen in fake.seen] == ["GET", "GET", "DELETE"]
