"""A real `callrec serve` process for tests and timings that need one: signals, the socket.

Requests are written by hand on raw connections, so a test controls exactly when each
byte of a body is sent and can ask on a connection opened before a signal.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cli_support import CALLREC, clean_environment
from tests.push_support import SECRET, make_wav, metadata, push_body, push_headers
from tests.service_support import free_port


@dataclass
class Served:
    """A `callrec serve` child process and where it listens."""

    process: asyncio.subprocess.Process
    port: int
    data_dir: Path
    log: Path
    grace_s: float

    async def terminate_and_time(self) -> float:
        """SIGTERM, then seconds until the process has exited."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.process.wait(), timeout=self.grace_s * 4)
        return time.monotonic() - began


async def start_serve(
    data_dir: Path, log: Path, *, grace_s: float, port: int = 0, **settings: str
) -> Served:
    """`callrec serve` on the embedded default with one push source, ``pbx``, and one media
    worker; its log (stderr) goes to ``log``. Returns once it answers /healthz."""
    served = await launch_serve(data_dir, log, grace_s=grace_s, port=port, **settings)
    for _ in range(300):
        if await ask(served.port, "GET /healthz") is not None:
            return served
        if served.process.returncode is not None:
            break
        await asyncio.sleep(0.1)
    served.process.kill()
    raise AssertionError(f"serve did not start: {await asyncio.to_thread(log.read_text)}")


async def launch_serve(
    data_dir: Path, log: Path, *, grace_s: float, port: int = 0, **settings: str
) -> Served:
    """`callrec serve` as ``start_serve`` starts it, without waiting: for a test that acts
    on what the process does as it starts (its start-up sweep)."""
    port = port or free_port()
    env = clean_environment(
        CALLREC_DATA_DIR=str(data_dir),
        CALLREC_PUSH_SECRETS=f"pbx={SECRET}",
        CALLREC_SHUTDOWN_GRACE=f"PT{grace_s:g}S",
        CALLREC_MEDIA_WORKERS="1",
    )
    env.update(settings)
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *CALLREC, "serve", "--port", str(port), env=env, stderr=stderr
        )
    return Served(process, port, data_dir, log, grace_s)


async def ask(port: int, request_line: str) -> int | None:
    """The status of one request on a new connection; None if no connection is taken."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return None
    try:
        writer.write(f"{request_line} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return (await read_response(reader)).status
    except OSError:
        return None
    finally:
        writer.close()


@dataclass
class Answer:
    """An HTTP answer as read off the wire."""

    status: int
    headers: dict[str, str]
    body: bytes


async def read_response(reader: asyncio.StreamReader) -> Answer:
    """One HTTP/1.1 answer; ConnectionResetError if the connection closes first."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("closed before answering")
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(int(status_line.split()[1]), headers, body)


class SlowPush:
    """A signed push whose body is sent in pieces, with a pause before each."""

    def __init__(
        self,
        port: int,
        recording_id: str,
        *,
        pieces: int,
        pause_s: float,
        audio: bytes | None = None,
        **fields: Any,
    ) -> None:
        self.port = port
        self.body = push_body(metadata(recording_id=recording_id, **fields), audio or make_wav(2))
        self.pieces = pieces
        self.pause_s = pause_s
        self.headers_sent = asyncio.Event()

    async def send(self) -> Answer:
        """Send the push on a new connection; its answer, even one before the body is sent."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = "".join(f"{k}: {v}\r\n" for k, v in push_headers(self.body).items())
        writer.write(
            f"POST /webhooks/push/pbx HTTP/1.1\r\nHost: x\r\n{head}"
            f"Content-Length: {len(self.body)}\r\n\r\n".encode()
        )
        await writer.drain()
        self.headers_sent.set()
        sending = asyncio.create_task(self._send_body(writer))
        try:
            # Read while sending: an answer may come before the body is all sent.
            return await read_response(reader)
        finally:
            sending.cancel()
            writer.close()

    async def _send_body(self, writer: asyncio.StreamWriter) -> None:
        size = -(-len(self.body) // self.pieces)
        for start in range(0, len(self.body), size):
            await asyncio.sleep(self.pause_s)
            writer.write(self.body[start : start + size])
            await writer.drain()
