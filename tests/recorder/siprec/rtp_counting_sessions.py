"""A real, minimal ``RecordingSessions`` for the signalling tests: UDP sockets that count RTP.

Not a mock: it binds a socket per labelled stream on a free port, counts the datagrams
each one receives, and releases them on close. Knobs let a test widen the race windows the
server must handle: ``open_delay_s`` (the media side still opening when a CANCEL lands),
``store_delay_s`` and ``fail_store`` (a slow or failing store behind the BYE), and
``rtp_timeout_s`` (no RTP for that long calls ``on_rtp_timeout``, as the media side's
watch does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from recorder.siprec.models import RecordingMetadata
from recorder.siprec.sdp import SdpOffer
from recorder.siprec.sessions import EndReason


class _Counter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets = 0
        self.last = time.monotonic()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.packets += 1
        self.last = time.monotonic()


@dataclass
class _Session:
    sockets: dict[str, tuple[asyncio.DatagramTransport, _Counter]] = field(default_factory=dict)
    watch: asyncio.Task[None] | None = None
    opened_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Event:
    """One call the server made, as the tests check it."""

    kind: str
    call_id: str
    metadata: RecordingMetadata | None = None
    reason: EndReason | None = None
    packets: dict[str, int] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


class RtpCountingSessions:
    """Counts RTP per label; records every open, update and close as an ``Event``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        open_delay_s: float = 0.0,
        store_delay_s: float = 0.0,
        fail_store: bool = False,
        rtp_timeout_s: float | None = None,
    ) -> None:
        self.host = host
        self.open_delay_s = open_delay_s
        self.store_delay_s = store_delay_s
        self.fail_store = fail_store
        self.rtp_timeout_s = rtp_timeout_s
        self.on_rtp_timeout: Callable[[str], Awaitable[None]] | None = None
        self.refuse_with: Exception | None = None
        self.events: list[Event] = []
        self.opened: asyncio.Queue[str] = asyncio.Queue()
        self.closed: asyncio.Queue[Event] = asyncio.Queue()
        self._sessions: dict[str, _Session] = {}

    @property
    def open_sockets(self) -> int:
        return sum(len(s.sockets) for s in self._sessions.values())

    async def open(
        self,
        call_id: str,
        offer: SdpOffer,
        metadata: RecordingMetadata,
        source: tuple[str, int],
    ) -> dict[str, int]:
        self.events.append(Event("open", call_id, metadata))
        if self.refuse_with is not None:
            raise self.refuse_with
        session = self._sessions.setdefault(call_id, _Session())
        ports = await self._bind(session, offer)
        await asyncio.sleep(self.open_delay_s)
        if self.rtp_timeout_s is not None:
            session.watch = asyncio.get_running_loop().create_task(self._watch(call_id, session))
        self.opened.put_nowait(call_id)
        return ports

    async def update(
        self, call_id: str, offer: SdpOffer, metadata: RecordingMetadata
    ) -> dict[str, int]:
        self.events.append(Event("update", call_id, metadata))
        return await self._bind(self._sessions[call_id], offer)

    async def close(self, call_id: str, reason: EndReason) -> None:
        session = self._sessions.pop(call_id)
        if session.watch is not None and session.watch is not asyncio.current_task():
            session.watch.cancel()
        packets = {label: counter.packets for label, (_, counter) in session.sockets.items()}
        for transport, _ in session.sockets.values():
            transport.close()
        await asyncio.sleep(self.store_delay_s)
        event = Event("close", call_id, reason=reason, packets=packets)
        self.events.append(event)
        self.closed.put_nowait(event)
        if self.fail_store:
            raise OSError("the store is unreachable")

    async def _bind(self, session: _Session, offer: SdpOffer) -> dict[str, int]:
        loop = asyncio.get_running_loop()
        for stream in offer.streams:
            if stream.label is None or stream.label in session.sockets:
                continue
            transport, counter = await loop.create_datagram_endpoint(
                _Counter, local_addr=(self.host, 0)
            )
            session.sockets[stream.label] = (transport, counter)
        return {
            label: transport.get_extra_info("sockname")[1]
            for label, (transport, _) in session.sockets.items()
        }

    async def _watch(self, call_id: str, session: _Session) -> None:
        assert self.rtp_timeout_s is not None
        while True:
            await asyncio.sleep(self.rtp_timeout_s / 4)
            last = max([c.last for _, c in session.sockets.values()] + [session.opened_at])
            if time.monotonic() - last >= self.rtp_timeout_s:
                if self.on_rtp_timeout is not None:
                    await self.on_rtp_timeout(call_id)
                return
