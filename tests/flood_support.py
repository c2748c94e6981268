"""A slow-upload flood for tests and the benchmark: bodies trickled with a garbage signature.

Each flooder opens a connection to a push URL with well-formed but wrong signature headers
(they pass every check made before the body), claims a large body and sends it a byte at
a time; when the service answers or closes, it waits and opens another. This is the
attack of a stranger who knows a source's name and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter

from tests.push_support import BOUNDARY

_CLAIMED = 10 * 1024 * 1024
# The start of a real-looking audio part, then filler: parsed without complaint until
# the signature is found wrong (it never is: the body never ends).
_PLAUSIBLE = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n'
    "Content-Type: audio/wav\r\n\r\n"
).encode()


class SlowFlood:
    """``connections`` flooders against one push URL until ``stop()``."""

    def __init__(
        self,
        port: int,
        path: str,
        *,
        connections: int,
        byte_every_s: float = 0.5,
        reconnect_after_s: float = 1.0,
    ) -> None:
        self._port = port
        self._path = path
        self._connections = connections
        self._byte_every_s = byte_every_s
        self._reconnect_after_s = reconnect_after_s
        self._tasks: list[asyncio.Task[None]] = []
        self.answers: Counter[str] = Counter()
        """How each flood connection ended: its status, or ``closed``."""

    async def __aenter__(self) -> SlowFlood:
        self._tasks = [asyncio.create_task(self._flooder()) for _ in range(self._connections)]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _flooder(self) -> None:
        while True:
            self.answers[await self._one_connection()] += 1
            await asyncio.sleep(self._reconnect_after_s)

    async def _one_connection(self) -> str:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
        except OSError:
            return "refused"
        try:
            writer.write(
                (
                    f"POST {self._path} HTTP/1.1\r\nHost: x\r\n"
                    f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                    f"X-Callrec-Timestamp: {int(time.time())}\r\n"
                    f"X-Callrec-Signature: v1={'0' * 64}\r\n"
                    f"Content-Length: {_CLAIMED}\r\n\r\n"
                ).encode()
            )
            trickle = asyncio.create_task(self._trickle(writer))
            try:
                status = await reader.readline()
            finally:
                trickle.cancel()
                await asyncio.gather(trickle, return_exceptions=True)
            return status.split()[1].decode() if status else "closed"
        except OSError:
            return "closed"
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _trickle(self, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            await writer.drain()
            for offset in range(_CLAIMED):
                await asyncio.sleep(self._byte_every_s)
                writer.write(_PLAUSIBLE[offset : offset + 1] or b"x")
                await writer.drain()
