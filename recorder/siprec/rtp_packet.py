"""RTP packets (RFC 3550) read strictly from datagrams; RTCP told apart on a shared port.

Only what a recorder needs: the fixed header, the CSRC list and header extension skipped,
padding removed. Nothing here allocates more than the datagram it was given.
"""

from __future__ import annotations

from dataclasses import dataclass

RTP_VERSION = 2
HEADER_BYTES = 12
# RFC 5761 section 4: with rtcp-mux, a second byte of 192-223 (PT 64-95 once the marker
# bit is taken off) is RTCP. The RTCP packet types in use (SR 200 ... APP 204, RTPFB 205,
# PSFB 206, XR 207) all fall in that range, so the whole range is set aside.
_RTCP_SECOND_BYTE = range(192, 224)


class MalformedRtp(ValueError):
    """A datagram that is not an RTP packet: too short, wrong version, bad lengths."""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet's header fields and payload (padding and extension removed)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes
    csrcs: tuple[int, ...] = ()


def is_rtcp(datagram: bytes) -> bool:
    """Whether a datagram on an rtcp-mux port is RTCP rather than RTP (RFC 5761 4)."""
    return len(datagram) >= 2 and datagram[1] in _RTCP_SECOND_BYTE


def parse_rtp(datagram: bytes) -> RtpPacket:
    """The packet in ``datagram``; MalformedRtp if it is not well-formed RTP version 2."""
    if len(datagram) < HEADER_BYTES:
        raise MalformedRtp("shorter than the RTP header")
    first, second = datagram[0], datagram[1]
    if first >> 6 != RTP_VERSION:
        raise MalformedRtp("not RTP version 2")
    padding = bool(first & 0x20)
    extension = bool(first & 0x10)
    csrc_count = first & 0x0F
    offset = HEADER_BYTES + 4 * csrc_count
    if len(datagram) < offset:
        raise MalformedRtp("the CSRC list runs past the end")
    csrcs = tuple(
        int.from_bytes(datagram[at : at + 4], "big") for at in range(HEADER_BYTES, offset, 4)
    )
    if extension:
        if len(datagram) < offset + 4:
            raise MalformedRtp("the header extension runs past the end")
        words = int.from_bytes(datagram[offset + 2 : offset + 4], "big")
        offset += 4 + 4 * words
        if len(datagram) < offset:
            raise MalformedRtp("the header extension runs past the end")
    end = len(datagram)
    if padding:
        count = datagram[-1]
        # RFC 3550 5.1: the last octet counts itself, so zero padding is malformed.
        if count == 0 or end - count < offset:
            raise MalformedRtp("the padding count is impossible")
        end -= count
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=int.from_bytes(datagram[2:4], "big"),
        timestamp=int.from_bytes(datagram[4:8], "big"),
        ssrc=int.from_bytes(datagram[8:12], "big"),
        marker=bool(second & 0x80),
        payload=bytes(datagram[offset:end]),
        csrcs=csrcs,
    )
