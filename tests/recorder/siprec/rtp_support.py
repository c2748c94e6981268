"""What the RTP tests send: generated tones, encoded by FFmpeg (not by the code under
test), cut into packets with a plain 12-byte RTP header, sent over real UDP."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt
from av.audio.codeccontext import AudioCodecContext

Pcm = npt.NDArray[np.int16]
_ENCODERS = {"PCMU": ("pcm_mulaw", 8000), "PCMA": ("pcm_alaw", 8000), "G722": ("g722", 16000)}


def tone(frequency: float, seconds: float, rate: int, amplitude: float = 8000.0) -> Pcm:
    """A cosine as 16-bit samples: at full amplitude on the first sample, so where a
    stream starts can be read off the recording."""
    t = np.arange(int(seconds * rate)) / rate
    return (np.cos(2 * np.pi * frequency * t) * amplitude).astype(np.int16)


def encode(codec: str, pcm: Pcm) -> bytes:
    """``pcm`` (at the codec's audio rate) encoded by FFmpeg as one byte string."""
    name, rate = _ENCODERS[codec]
    context = av.codec.CodecContext.create(name, "w")
    assert isinstance(context, AudioCodecContext)
    context.sample_rate = rate
    context.layout = "mono"
    context.format = "s16"
    context.open()
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    frame.pts = 0
    packets = [*context.encode(frame), *context.encode(None)]
    return b"".join(bytes(p) for p in packets)


def rtp_packet(
    pt: int, sequence: int, timestamp: int, ssrc: int, payload: bytes, marker: bool = False
) -> bytes:
    """A 12-byte RTP version 2 header (no CSRC, extension or padding) and the payload."""
    return (
        struct.pack(
            "!BBHII",
            0x80,
            (0x80 if marker else 0) | pt,
            sequence & 0xFFFF,
            timestamp & 0xFFFFFFFF,
            ssrc,
        )
        + payload
    )


@dataclass(frozen=True)
class Packet:
    """One packet of a planned stream: its place in the stream and its bytes."""

    index: int
    sequence: int
    timestamp: int
    data: bytes


def packetise(
    encoded: bytes,
    *,
    pt: int,
    bytes_per_packet: int,
    ticks_per_packet: int,
    first_sequence: int,
    first_timestamp: int,
    ssrc: int,
) -> list[Packet]:
    """``encoded`` cut into equal packets, numbered and stamped with wraparound."""
    count = len(encoded) // bytes_per_packet
    return [
        Packet(
            index,
            (first_sequence + index) & 0xFFFF,
            (first_timestamp + index * ticks_per_packet) & 0xFFFFFFFF,
            rtp_packet(
                pt,
                first_sequence + index,
                first_timestamp + index * ticks_per_packet,
                ssrc,
                encoded[index * bytes_per_packet : (index + 1) * bytes_per_packet],
                marker=index == 0,
            ),
        )
        for index in range(count)
    ]


class _Sender(asyncio.DatagramProtocol):
    pass


async def send_paced(
    streams: Sequence[tuple[int, Sequence[Sequence[bytes]]]],
    *,
    interval_s: float = 0.02,
    start_delays: Sequence[int] = (),
) -> None:
    """Send each stream's slots to 127.0.0.1:<port>, a slot every ``interval_s`` (a slot
    holds the datagrams sent then: none for a loss, two for a duplicate or a swap), stream
    ``i`` starting ``start_delays[i]`` slots late."""
    loop = asyncio.get_running_loop()
    transports = []
    for _ in streams:
        transport, _protocol = await loop.create_datagram_endpoint(
            _Sender, local_addr=("127.0.0.1", 0)
        )
        transports.append(transport)
    delays = list(start_delays) + [0] * (len(streams) - len(start_delays))
    slots = max(
        len(datagrams) + delay for (_, datagrams), delay in zip(streams, delays, strict=True)
    )
    started = loop.time()
    try:
        for slot in range(slots):
            for (port, datagrams), delay, transport in zip(
                streams, delays, transports, strict=True
            ):
                index = slot - delay
                if 0 <= index < len(datagrams):
                    for datagram in datagrams[index]:
                        transport.sendto(datagram, ("127.0.0.1", port))
            # Paced against the start, so a slow wake-up does not stretch the stream.
            await asyncio.sleep(max(0.0, started + (slot + 1) * interval_s - loop.time()))
    finally:
        for transport in transports:
            transport.close()
