"""The benchmark's servers and senders: a real ``callrec serve`` child process on a fresh
data directory, pushes streamed to it from disk, and the disk baseline they are held to.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from tests.bench.workload import PushFile, write_push
from tests.service_support import wait_until_healthy

SECRET = "bench-secret-0123456789abcdef"
CHUNK = 1024 * 1024


class Server:
    """A ``callrec serve`` child process on a fresh data directory."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLREC_")}  # noqa: TID251
        env |= {
            "CALLREC_DATA_DIR": str(data_dir),
            "CALLREC_PUSH_SECRETS": f"bench={SECRET}",
            "CALLREC_LOG_LEVEL": "warning",
            # The 1 GiB recording's body is a little over 1 GiB with its framing.
            "CALLREC_MAX_UPLOAD_BYTES": str(2 * 1024**3),
        }
        env |= extra_env or {}
        self.env = env
        self.process = subprocess.Popen(
            [sys.executable, "-m", "config", "serve", "--port", str(self.port)],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        if not wait_until_healthy(self.url, self.process):
            raise RuntimeError("callrec serve did not start")

    def memory_mb(self, field: str) -> float:
        """VmRSS (now) or VmHWM (peak) of the server process, in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"{field} not found")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@contextmanager
def server(root: Path, name: str, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    running = Server(root / name, extra_env)
    try:
        yield running
    finally:
        running.stop()


async def send(session: aiohttp.ClientSession, url: str, push: PushFile) -> float:
    """POST the push file, streamed from disk; return seconds until the 201 arrived."""
    return (await send_for_id(session, url, push))[0]


async def send_for_id(
    session: aiohttp.ClientSession, url: str, push: PushFile
) -> tuple[float, str]:
    """POST the push file; return the seconds until the 201 and the recording's id."""
    started = time.perf_counter()
    with push.path.open("rb") as body:
        async with session.post(
            f"{url}/webhooks/push/bench",
            data=body,
            headers=push.headers | {"Content-Length": str(push.size)},
        ) as response:
            answer = await response.text()
            if response.status != 201:
                raise RuntimeError(f"push answered {response.status}: {answer}")
    return time.perf_counter() - started, json.loads(answer)["id"]


def write_with_fsync(source: Path, target: Path) -> float:
    """The baseline: the same bytes written to a new file on the same disk, then fsync."""
    started = time.perf_counter()
    with source.open("rb") as reader:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            while chunk := reader.read(CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


def make_push(root: Path, name: str, seconds: int, rate: int, channels: int) -> PushFile:
    return write_push(
        root / f"{name}.body",
        recording_id=name,
        seconds=seconds,
        rate=rate,
        channels=channels,
        secret=SECRET.encode(),
        timestamp=int(time.time()),
    )
