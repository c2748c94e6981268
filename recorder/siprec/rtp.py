"""One participant's RTP stream received on its own UDP port and handed on as PCM placed
on the recording's timeline.

Who may send: the offer's ``c=`` address, when it names one, is the only host accepted,
from any port: an SBC's sending port need not be the one it advertised for receiving (the
recorder sends it nothing), and may move with a re-INVITE or a failover of its media
relay. With no usable address (none, or 0.0.0.0), the address and port of the first
packet that proves to be RTP of this stream are latched. Anyone else is counted and
dropped. (UDP sources are easily forged: SRTP is what authenticates the audio.)

Which SSRC: the first one heard. Another SSRC is taken as the same participant continuing
(an SBC changes SSRC after a re-INVITE or a failover) once the current one has been quiet
for the reorder window; its timestamps are re-based onto the timeline at the moment it
arrives. Until then it is counted and dropped, so two sources cannot interleave.

Where samples go: the first packet is placed where the recording's clock stands when it
arrives (a participant who starts late is preceded by silence); after that each packet
goes where its RTP timestamp says (32-bit wrap handled), so a lost packet leaves silence
of its own length. A timestamp that jumps back, or that would place a packet more than
``max_ahead_s`` ahead of the moment it arrived, is re-based on arrival like a new SSRC:
a sender's clock cannot run seconds ahead of real time, and trusting it would let one
packet claim minutes of silence (memory and disk) ahead of the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Protocol, cast

from recorder.siprec.codecs import Pcm, PcmDecoder, UndecodablePayload, decoder_for
from recorder.siprec.jitter import ReorderBuffer, Unwrapper
from recorder.siprec.rtp_packet import MalformedRtp, RtpPacket, is_rtcp, parse_rtp
from recorder.siprec.sdp import Codec, Crypto
from recorder.siprec.srtp import SrtpInbound, SrtpRefused

DEFAULT_WINDOW_PACKETS = 6  # 120 ms at the usual 20 ms ptime
DEFAULT_WINDOW_S = 0.12
DEFAULT_MAX_AHEAD_S = 2.0
# Timestamps this close to where the previous packet ended are taken as contiguous: a
# resampler's delay is a few samples, and writing them as a gap would click.
_CONTIGUOUS_S = 0.005


class Timeline(Protocol):
    """Where decoded audio goes: the recording being written (``recording_writer``)."""

    @property
    def sample_rate(self) -> int: ...

    def position_now(self) -> int: ...

    def put(self, channel: int, position: int, pcm: Pcm) -> None: ...


@dataclass(slots=True)
class StreamCounters:
    """What one stream's receiver saw; ``lost`` counts sequence numbers never received in
    time, ``late`` packets that came after they were given up on or the window."""

    datagrams: int = 0
    decoded: int = 0
    malformed: int = 0
    rtcp: int = 0
    telephone_events: int = 0
    wrong_payload_type: int = 0
    wrong_source: int = 0
    foreign_ssrc: int = 0
    ssrc_changes: int = 0
    rebased: int = 0
    srtp_refused: int = 0
    undecodable: int = 0
    duplicate: int = 0
    late: int = 0
    lost: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name (for logs and metrics)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class _Arrival:
    packet: RtpPacket
    at: float  # the clock when it arrived
    position: int  # the timeline's position then


class RtpStreamReceiver(asyncio.DatagramProtocol):
    """Receives one stream for one channel; see the module docstring for its rules."""

    def __init__(
        self,
        *,
        channel: int,
        codec: Codec,
        timeline: Timeline,
        remote_address: str | None = None,
        crypto: Crypto | None = None,
        telephone_event_pt: int | None = None,
        window_packets: int = DEFAULT_WINDOW_PACKETS,
        window_s: float = DEFAULT_WINDOW_S,
        max_ahead_s: float = DEFAULT_MAX_AHEAD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channel = channel
        self.codec = codec
        self._counters = StreamCounters()
        self.last_packet_at: float | None = None
        self._timeline = timeline
        self._decoder: PcmDecoder = decoder_for(codec, timeline.sample_rate)
        self._srtp = SrtpInbound(crypto) if crypto is not None else None
        self._telephone_event_pt = telephone_event_pt
        self._window_packets = window_packets
        self._window_s = window_s
        self._max_ahead = int(max_ahead_s * timeline.sample_rate)
        self._contiguous = int(_CONTIGUOUS_S * timeline.sample_rate)
        self._clock = clock
        self._expected_host = _host_or_none(remote_address)
        self._source: tuple[str, int] | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._finished = False
        self._ssrc: int | None = None
        self._buffer: ReorderBuffer[_Arrival] = ReorderBuffer(window_packets)
        self._timestamps = Unwrapper(32)
        self._ts_origin: int | None = None
        self._position_origin = 0
        self._cursor = 0  # where this channel's audio written so far ends

    @property
    def counters(self) -> StreamCounters:
        """A snapshot of the counters so far, the reorder buffer's included."""
        counts = self._buffer.counts
        own = self._counters
        return replace(
            own,
            duplicate=own.duplicate + counts.duplicate,
            late=own.late + counts.late,
            lost=own.lost + counts.lost,
        )

    @property
    def local_port(self) -> int:
        """The UDP port bound (useful when port 0 asked the system to choose)."""
        assert self._transport is not None
        return int(self._transport.get_extra_info("sockname")[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an asyncio.DatagramTransport subclass on every Python: trusted, not checked.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if self._finished:
            return
        self._counters.datagrams += 1
        source = _normalise(str(addr[0])), int(str(addr[1]))
        if not self._admits(source):
            self._counters.wrong_source += 1
            return
        if is_rtcp(data):
            self._counters.rtcp += 1  # rtcp-mux: reports are not audio
            return
        if self._srtp is not None:
            try:
                data = self._srtp.unprotect(data)
            except SrtpRefused:
                self._counters.srtp_refused += 1
                return
        try:
            packet = parse_rtp(data)
        except MalformedRtp:
            self._counters.malformed += 1
            return
        now = self._clock()
        if packet.ssrc != self._ssrc and not self._adopt_ssrc(packet.ssrc, now):
            self._counters.foreign_ssrc += 1
            return
        if self._expected_host is None and self._source is None:
            self._source = source
        self.last_packet_at = now
        arrival = _Arrival(packet, now, self._timeline.position_now())
        self._place(self._buffer.push(packet.sequence, arrival))

    def release_overdue(self) -> None:
        """Stop waiting for a missing packet once the next held one is a window old."""
        oldest = self._buffer.oldest()
        if oldest is not None and self._clock() - oldest.at > self._window_s:
            self._place(self._buffer.give_up_waiting())

    def finish(self) -> StreamCounters:
        """Close the port, place what is still held, and return the final counters."""
        self._finished = True
        if self._transport is not None:
            self._transport.close()
        self._place(self._buffer.drain())
        return self.counters

    def _admits(self, source: tuple[str, int]) -> bool:
        if self._expected_host is not None:
            return source[0] == self._expected_host
        return self._source is None or source == self._source

    def _adopt_ssrc(self, ssrc: int, now: float) -> bool:
        if self._ssrc is None:
            self._ssrc = ssrc
            return True
        if self.last_packet_at is not None and now - self.last_packet_at <= self._window_s:
            return False
        # A continuation: what the old SSRC left is placed, then numbering starts afresh.
        self._place(self._buffer.drain())
        self._fold_reorder_counts()
        self._buffer = ReorderBuffer(self._window_packets)
        self._timestamps = Unwrapper(32)
        self._ts_origin = None
        self._ssrc = ssrc
        self._counters.ssrc_changes += 1
        return True

    def _fold_reorder_counts(self) -> None:
        counts = self._buffer.counts
        self._counters.duplicate += counts.duplicate
        self._counters.late += counts.late
        self._counters.lost += counts.lost

    def _place(self, arrivals: list[_Arrival]) -> None:
        for arrival in arrivals:
            packet = arrival.packet
            if packet.payload_type == self._telephone_event_pt:
                self._counters.telephone_events += 1
                continue
            if packet.payload_type != self.codec.payload_type:
                self._counters.wrong_payload_type += 1
                continue
            position = self._position_of(arrival)
            try:
                pcm = self._decoder.decode(packet.payload)
            except UndecodablePayload:
                self._counters.undecodable += 1
                continue
            self._counters.decoded += 1
            self._timeline.put(self.channel, position, pcm)
            self._cursor = position + len(pcm)

    def _position_of(self, arrival: _Arrival) -> int:
        timestamp = self._timestamps.extend(arrival.packet.timestamp)
        if self._ts_origin is None:
            self._rebase(timestamp, max(self._cursor, arrival.position))
        position = self._position_origin + self._samples_since_origin(timestamp)
        behind = position < self._cursor - self._contiguous
        if behind or position > max(self._cursor, arrival.position) + self._max_ahead:
            self._counters.rebased += 1
            self._rebase(timestamp, max(self._cursor, arrival.position))
            position = self._position_origin
        if abs(position - self._cursor) <= self._contiguous:
            # Taken as contiguous, and the timestamps' origin moved to match, so the
            # small difference is absorbed once rather than again at every packet.
            self._position_origin += self._cursor - position
            position = self._cursor
        return position

    def _rebase(self, timestamp: int, position: int) -> None:
        self._ts_origin = timestamp
        self._position_origin = position

    def _samples_since_origin(self, timestamp: int) -> int:
        assert self._ts_origin is not None
        ticks = timestamp - self._ts_origin
        return ticks * self._timeline.sample_rate // self.codec.clock_rate


def _normalise(host: str) -> str:
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _host_or_none(address: str | None) -> str | None:
    """The host to insist on, or None where the offer's address says nothing usable."""
    if address is None:
        return None
    host = _normalise(address)
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_unspecified:  # RFC 3264's old hold address
            return None
    return host


async def open_stream_receiver(
    receiver: RtpStreamReceiver, *, host: str, port: int
) -> RtpStreamReceiver:
    """Bind ``receiver`` to ``host``:``port`` (0: the system chooses); OSError if taken."""
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: receiver, local_addr=(host, port))
    return receiver
