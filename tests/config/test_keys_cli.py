"""``callrec keys``: rotation and a re-wrap killed half-way.

Three hundred recordings are stored, a rotation is made from the command line, and a re-wrap
run as a real process is SIGKILLed mid-run. At that moment some keys are moved and some
not, and every recording plays; a second run finishes the rest, and every recording still
plays.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from config.services import Services, build_services
from config.settings import Settings
from storage import (
    ORIGINAL,
    RecordingAudio,
    epoch_of,
)
from tests.cli_support import CALLREC, clean_environment, invoke
from tests.key_support import store_recording

RECORDINGS = 300
KILLED_AFTER = 60
"""Keys re-wrapped (in batches of ten) before the first re-wrap is killed."""


@asynccontextmanager
async def parts(data_dir: Path, database_url: str) -> AsyncIterator[Services]:
    services = build_services(
        Settings(data_dir=data_dir, database_url=database_url, single_node=True)
    )
    try:
        yield services
    finally:
        await services.close()


def payload(n: int) -> bytes:
    return hashlib.sha256(str(n).encode()).digest() * 16


async def store_one(services: Services, started: datetime, n: int = 0) -> uuid.UUID:
    return await store_recording(services, f"call-{n}", started, payload(n))


async def store_many(services: Services, count: int) -> dict[uuid.UUID, int]:
    """``count`` recordings an hour apart, so two or three weeks' epoch keys are in play."""
    now = datetime.now(UTC)
    return {await store_one(services, now - timedelta(hours=n), n): n for n in range(count)}


async def unplayable(services: Services, stored: dict[uuid.UUID, int]) -> list[uuid.UUID]:
    """The recordings that do not open and read back exactly, by a reader with no cache."""
    audio = RecordingAudio(services.database, services.objects, services.keys)
    failed = []
    for recording_id, n in stored.items():
        opened = await audio.open(recording_id, ORIGINAL)
        if opened is None or await opened.read(0, opened.info.size) != payload(n):
            failed.append(recording_id)
        audio.forget(recording_id)
    return failed


def kill_part_way(env: dict[str, str], after: int) -> tuple[int, str]:
    """Start ``keys rewrap``; SIGKILL it once it reports ``after`` keys done."""
    seen = []
    with subprocess.Popen(
        [*CALLREC, "keys", "rewrap", "--batch-size", "10"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:
            seen.append(line)
            done = re.match(r"(\d+) data keys of \d+ done so far", line)
            if done and int(done.group(1)) >= after:
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=60)
    return process.returncode, "".join(seen)


async def test_a_rewrap_killed_half_way_leaves_every_recording_playable_and_resumes(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "var"
    where = {
        "CALLREC_DATA_DIR": str(data_dir),
        "CALLREC_DATABASE_URL": database_url,
        "CALLREC_SINGLE_NODE": "true",
    }
    env = clean_environment(**where)
    async with parts(data_dir, database_url) as services:
        stored = await store_many(services, RECORDINGS)
        old_root = services.keyring.current_kek_id

    rotated = invoke("keys", "rotate", **where)
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.startswith("generation 1 is current")
    assert old_root not in rotated.stdout

    returncode, progress = kill_part_way(env, after=KILLED_AFTER)
    assert returncode == -signal.SIGKILL, progress

    async with parts(data_dir, database_url) as services:
        left = await services.keys.stale_count()
        assert 0 < left <= RECORDINGS - KILLED_AFTER
        assert await unplayable(services, stored) == []

    finished = invoke("keys", "rewrap", **where)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith(f"{left} data keys re-wrapped under generation 1")

    status = invoke("keys", "status", **where)
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["generation"] == 1
    assert shown["stale_data_keys"] == 0
    assert sum(key["data_keys"] for key in shown["epoch_keys"]) == RECORDINGS
    assert {key["generation"] for key in shown["epoch_keys"] if key["data_keys"]} == {1}

    async with parts(data_dir, database_url) as services:
        assert await unplayable(services, stored) == []


async def test_a_retention_run_destroys_the_key_of_a_week_it_empties(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "var"
    where = {
        "CALLREC_DATA_DIR": str(data_dir),
        "CALLREC_DATABASE_URL": database_url,
        "CALLREC_SINGLE_NODE": "true",
    }
    started = datetime.now(UTC) - timedelta(days=100)
    services = build_services(
        Settings(data_dir=data_dir, database_url=database_url, single_node=True),
        clock=lambda: started + timedelta(days=1),
    )
    try:
        await store_one(services, started)
    finally:
        await services.close()
    week = epoch_of(started)

    swept = invoke("retention", "run", **where)
    assert swept.returncode == 0, swept.stderr
    assert "1 recording deleted," in swept.stdout
    assert f"epoch {week}: every recording gone, its key destroyed" in swept.stdout
    status = invoke("keys", "status", **where)
    shown = json.loads(status.stdout)
    assert shown["epoch_keys"] == []
    assert shown["epoch_keys_destroyed"] == 1
    again = invoke("retention", "run", **where)
    assert "key destroyed" not in again.stdout
