"""Retention benchmark: sweeping N due recordings on PostgreSQL, with S3 (moto) and files.

Recordings are seeded straight into the database and the store (pushing 100,000 calls
would measure ingest, not deletion); then ``callrec retention run`` deletes them in a
child process, which reports its own peak RSS. Baselines, same run, same store: deleting
the same number of objects directly (boto3 DeleteObjects in batches of 1,000; os.unlink
plus one directory fsync per directory), with no database, keys or audit trail.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import insert

from storage import create_engine, upgrade_database
from storage.db.models import DataKey, Recording, StoredObject
from storage.durable_files import fsync_directory
from storage.recordings import object_key_for

ADMIN_DSN = os.environ.get(  # noqa: TID251 - the benchmark's own database server
    "CALLREC_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
OBJECT = os.urandom(1024)  # each recording's object; deletion cost does not depend on size
_SEED_CHUNK = 5000
_RUNNER = textwrap.dedent(
    """
    import asyncio, json, time
    from pathlib import Path
    from config.services import build_services, utc_now
    from config.settings import load_settings
    from retention import sweep_expired_recordings

    async def main():
        services = build_services(load_settings())
        started = time.perf_counter()
        report = await sweep_expired_recordings(
            services.deleter,
            now=utc_now(),
            horizon=services.settings.retention_sweep_interval,
            on_batch=lambda kind, ids: None,
        )
        seconds = time.perf_counter() - started
        await services.close()
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
        print(json.dumps({"deleted": report.deleted_count, "seconds": seconds, "peak_mb": peak}))

    asyncio.run(main())
    """
)


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(ADMIN_DSN, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def fresh_database() -> tuple[str, str]:
    """A new, migrated PostgreSQL database; its name and SQLAlchemy URL."""
    name = f"callrec_bench_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"
    engine = create_engine(url)
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()
    return name, url


async def drop_database(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Who was on the call: deletion removes these with the rest of the personal data.
PARTIES = {
    "from_number": "+441632960000",
    "to_number": "+441632960001",
    "agent": "agent-1",
    "team": "mash-children",
}


def stored_rows(
    n: int, started: datetime, recording_id: uuid.UUID, object_id: uuid.UUID, size: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rows of one stored recording and its original object, for bulk seeding."""
    recording = {
        "id": recording_id,
        "source": "bench",
        "source_recording_id": f"bench-{n}",
        "state": "stored",
        "started_at": started,
        "retention_deadline": started + timedelta(days=90),
        "received_at": started,
        "stored_at": started,
    }
    stored = {
        "id": object_id,
        "recording_id": recording_id,
        "kind": "original",
        "object_key": object_key_for(object_id),
        "content_type": "audio/wav",
        "plaintext_size": size,
        "plaintext_sha256": os.urandom(32).hex(),
        "ciphertext_size": size,
        "created_at": started,
    }
    return recording, stored


async def seed_rows(url: str, count: int) -> list[str]:
    """``count`` stored recordings a day past their deadline; their object keys."""
    now = datetime.now(UTC)
    started = now - timedelta(days=91)
    keys: list[str] = []
    engine = create_engine(url)
    try:
        for first in range(0, count, _SEED_CHUNK):
            recordings, objects, data_keys = [], [], []
            for n in range(first, min(first + _SEED_CHUNK, count)):
                recording_id, object_id = uuid.uuid4(), uuid.uuid4()
                key = object_key_for(object_id)
                keys.append(key)
                recording, stored = stored_rows(n, started, recording_id, object_id, len(OBJECT))
                recordings.append(recording | PARTIES)
                objects.append(stored)
                data_keys.append(
                    {
                        "object_id": object_id,
                        "kek_id": "bench",
                        "wrapped": os.urandom(60),
                        "created_at": started,
                    }
                )
            async with engine.begin() as connection:
                await connection.execute(insert(Recording), recordings)
                await connection.execute(insert(StoredObject), objects)
                await connection.execute(insert(DataKey), data_keys)
    finally:
        await engine.dispose()
    return keys


def seed_files(root: Path, keys: list[str]) -> None:
    for key in keys:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(OBJECT)


def seed_s3(client: Any, bucket: str, prefix: str, keys: list[str]) -> None:
    def put(key: str) -> None:
        client.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=OBJECT)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, keys))


def baseline_files(root: Path, keys: list[str]) -> float:
    """os.unlink every file, then fsync each directory once: what a sweep must at least do."""
    started = time.perf_counter()
    directories = set()
    for key in keys:
        path = root / key
        path.unlink()
        directories.add(path.parent)
    for directory in directories:
        fsync_directory(directory)
    return time.perf_counter() - started


def baseline_s3(client: Any, bucket: str, prefix: str, keys: list[str]) -> float:
    """DeleteObjects, 1,000 keys a request, one request after another."""
    started = time.perf_counter()
    for first in range(0, len(keys), 1000):
        batch = [{"Key": f"{prefix}/{key}"} for key in keys[first : first + 1000]]
        client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    return time.perf_counter() - started


def run_sweep(env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the sweep failed: {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _environment(data_dir: Path, url: str, store_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLREC_")}  # noqa: TID251
    env |= {
        "CALLREC_DATA_DIR": str(data_dir),
        "CALLREC_DATABASE_URL": url,
        "CALLREC_LOG_LEVEL": "warning",
        "CALLREC_SINGLE_NODE": "true",
    }
    if store_url is not None:
        env["CALLREC_STORE_URL"] = store_url
    return env


async def measure_sweep(
    root: Path, count: int, backend: str, s3_endpoint: str | None = None
) -> dict[str, float]:
    """Seed ``count`` due recordings, sweep them in a child process, and time a baseline."""
    name, url = await fresh_database()
    data_dir = root / f"retention-{backend}-{count}"
    try:
        keys = await seed_rows(url, count)
        if backend == "filesystem":
            objects = data_dir / "objects"
            await asyncio.to_thread(seed_files, objects, keys)
            baseline_root = data_dir / "baseline"
            await asyncio.to_thread(seed_files, baseline_root, keys)
            baseline_s = await asyncio.to_thread(baseline_files, baseline_root, keys)
            result = await asyncio.to_thread(run_sweep, _environment(data_dir, url, None))
            left = sum(1 for path in objects.rglob("*") if path.is_file())
        else:
            import boto3

            client = boto3.client("s3", endpoint_url=s3_endpoint)
            bucket = f"retention-{uuid.uuid4().hex[:8]}"
            client.create_bucket(Bucket=bucket)
            await asyncio.to_thread(seed_s3, client, bucket, "hub", keys)
            await asyncio.to_thread(seed_s3, client, bucket, "baseline", keys)
            baseline_s = await asyncio.to_thread(baseline_s3, client, bucket, "baseline", keys)
            env = _environment(data_dir, url, f"s3://{bucket}/hub")
            env["AWS_ENDPOINT_URL_S3"] = s3_endpoint or ""
            result = await asyncio.to_thread(run_sweep, env)
            listed = client.list_objects_v2(Bucket=bucket, Prefix="hub/")
            left = listed.get("KeyCount", 0)
        if result["deleted"] != count or left:
            raise RuntimeError(f"the sweep deleted {result['deleted']} of {count}, left {left}")
        return result | {"baseline_s": baseline_s, "count": count}
    finally:
        await drop_database(name)


def retention_rows(results: list[tuple[str, dict[str, float]]]) -> list[list[str]]:
    """Table rows: deletions per second against the baseline, and the sweep's peak RSS."""
    rows = []
    for backend, result in results:
        count = int(result["count"])
        rate = count / result["seconds"]
        base = count / result["baseline_s"]
        rows.append(
            [
                f"sweep of {count:,} due recordings, PostgreSQL + {backend}",
                f"{rate:,.0f} deletions/s",
                f"{backend} deletes alone: {base:,.0f}/s",
                f"{rate / base:.2f}x",
                ">= 500/s" if backend.startswith("S3") else "measured",
            ]
        )
        rows.append(
            [
                f"sweep process peak RSS, {count:,} due ({backend})",
                f"{result['peak_mb']:.0f} MB",
                "-",
                "-",
                "flat in the number due",
            ]
        )
    return rows
