"""Playback benchmark: a 64 KiB range from the middle of an hour, and concurrent 1x players.

Baseline: the same plaintext served from a plain file by aiohttp's FileResponse in
another process, measured in the same run.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from tests.service_support import wait_until_healthy

RANGE = 64 * 1024
_PLAIN_SERVER = textwrap.dedent(
    """
    import sys
    from aiohttp import web
    path = sys.argv[1]
    async def audio(request):
        return web.FileResponse(path)
    app = web.Application()
    app.router.add_get("/audio", audio)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), print=None, access_log=None)
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def plain_file_server(path: Path) -> Iterator[str]:
    """aiohttp serving ``path`` as a plain file (Range handled by FileResponse)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _PLAIN_SERVER, str(path), str(port)], stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the plain file server did not start") from None
                time.sleep(0.05)
        yield f"{url}/audio"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def audio_url(
    session: aiohttp.ClientSession, base: str, env: dict[str, str], rid: str
) -> tuple[str, str]:
    """A grant's audio URL and the bearer token of the safety reviewer who asked for it."""
    # The server's own dev key lives in its database: ask the command that prints tokens.
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "config", "token", "issue", "--subject", "bench"],
        *["--role", "safety_reviewer", "--ttl", "3600"],
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    printed, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError("callrec token issue failed")
    token = printed.decode().strip()
    async with session.post(
        f"{base}/api/v1/recordings/{rid}/grants",
        json={"purpose": "staff_safety", "reason": "benchmark of playback latency"},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        if response.status != 201:
            raise RuntimeError(f"grant answered {response.status}: {await response.text()}")
        return (await response.json())["audio_url"], token


async def range_latencies(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], offset: int, count: int
) -> tuple[list[float], list[float]]:
    """Time to first byte and to the last byte of ``count`` requests for one 64 KiB range."""
    first: list[float] = []
    whole: list[float] = []
    ranged = headers | {"Range": f"bytes={offset}-{offset + RANGE - 1}"}
    for _ in range(count):
        started = time.perf_counter()
        async with session.get(url, headers=ranged) as response:
            first.append(time.perf_counter() - started)
            body = await response.read()
            whole.append(time.perf_counter() - started)
            if response.status != 206 or len(body) != RANGE:
                raise RuntimeError(f"range answered {response.status} with {len(body)} bytes")
    return first, whole


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def sustained_players(
    url: str,
    headers: dict[str, str],
    size: int,
    bytes_per_s: int,
    levels: list[int],
    seconds: float,
) -> list[tuple[int, float]]:
    """p99 chunk latency for N players each fetching a 64 KiB chunk as fast as 1x needs."""
    results = []
    interval = RANGE / bytes_per_s
    for players in levels:
        latencies: list[float] = []
        connector = aiohttp.TCPConnector(limit=players)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def player(index: int, players: int, latencies: list[float]) -> None:
                position = (index * 7919 * RANGE) % (size - RANGE)
                await asyncio.sleep(interval * index / players)  # spread the starts
                end = time.perf_counter() + seconds
                while time.perf_counter() < end:
                    started = time.perf_counter()
                    ranged = headers | {"Range": f"bytes={position}-{position + RANGE - 1}"}
                    async with session.get(url, headers=ranged) as response:
                        await response.read()
                    took = time.perf_counter() - started
                    latencies.append(took)
                    position = (position + RANGE) % (size - RANGE)
                    await asyncio.sleep(max(0.0, interval - took))

            await asyncio.gather(*(player(n, players, latencies) for n in range(players)))
        results.append((players, percentile(latencies, 0.99)))
    return results


def start_moto() -> tuple[str, object]:
    """An S3 API for the S3 figures (moto's server, like the test suite uses)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")  # noqa: TID251 - the bench's own S3
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")  # noqa: TID251
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # noqa: TID251
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
    return endpoint, server


__all__ = [
    "audio_url",
    "percentile",
    "plain_file_server",
    "range_latencies",
    "start_moto",
    "sustained_players",
    "wait_until_healthy",
]
