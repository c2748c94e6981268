"""The SDP of a SIPREC offer (RFC 4566, 3264, 4568) read strictly, and the recorder's answer.

A small parser of our own rather than a PyPI one. sdp-transform (a port of the JavaScript
library) matches lines with a permissive regex grammar and hands back untyped dicts: every
check below would still be ours, plus a dependency. aiortc's SDP module is part of a WebRTC
stack that brings ICE, DTLS and codecs the recorder has no use for. SDP is line-based
(``<type>=<value>``) and the recorder needs only media sections, connection lines and a
handful of attributes, so a strict parser under a byte and section cap is less to audit.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from recorder.siprec.errors import MalformedSdp, MessageTooLarge, NoUsableStream

MAX_SDP_BYTES = 16 * 1024
MAX_MEDIA_SECTIONS = 16
PROFILES = frozenset({"RTP/AVP", "RTP/SAVP"})
DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})

# The recorder's order of preference: G.711 is what SBCs send unasked and what the capture
# pipeline stores without loss; wideband codecs follow.
DEFAULT_CODECS: tuple[tuple[str, int], ...] = (
    ("PCMU", 8000),
    ("PCMA", 8000),
    ("G722", 8000),  # RFC 3551: G.722's RTP clock is 8000 although it samples at 16 kHz
    ("opus", 48000),
)
# RFC 3551's static payload types, for offers that list them without an rtpmap.
_STATIC = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000)}

# SDES suites (RFC 4568) the recorder can decrypt, and their master key + salt length in
# bytes. RFC 6188's AES-256 suites are left out: libsrtp's binding (srtp.py) cannot key
# them, and an answer must not accept a stream whose audio would then be lost.
SRTP_KEY_BYTES: Mapping[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": 30,
    "AES_CM_128_HMAC_SHA1_32": 30,
}


@dataclass(frozen=True)
class Codec:
    """A payload type as its rtpmap (or RFC 3551's table) describes it."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int | None = None
    fmtp: str | None = None


@dataclass(frozen=True)
class Crypto:
    """One ``a=crypto`` line; ``key_params`` holds the offerer's SRTP key: never log it."""

    tag: int
    suite: str
    key_params: str = field(repr=False)
    session_params: tuple[str, ...] = ()


@dataclass(frozen=True)
class OfferedStream:
    """One ``m=`` section of the offer, with its connection address resolved."""

    media: str
    port: int
    profile: str
    formats: tuple[str, ...]
    address: str | None
    label: str | None = None
    direction: str = "sendrecv"
    codecs: Mapping[int, Codec] = field(default_factory=dict)
    cryptos: tuple[Crypto, ...] = ()
    ptime: int | None = None


@dataclass(frozen=True)
class SdpOffer:
    """The media sections of an offer, in order (the answer must mirror that order)."""

    streams: tuple[OfferedStream, ...]


@dataclass(frozen=True)
class AcceptedStream:
    """A stream the answer accepts: where to listen, what to expect and how to decrypt it.

    ``remote_crypto`` is the offerer's key (to decrypt what it sends); ``local_crypto`` the
    answer's (to protect RTCP the recorder sends back).
    """

    label: str
    port: int
    codec: Codec
    remote_address: str | None
    remote_port: int
    remote_crypto: Crypto | None = None
    local_crypto: Crypto | None = None


def parse_offer(sdp: bytes) -> SdpOffer:
    """Read the offer's media sections. Raises MessageTooLarge or MalformedSdp."""
    if len(sdp) > MAX_SDP_BYTES:
        raise MessageTooLarge(f"the SDP is over {MAX_SDP_BYTES} bytes")
    try:
        text = sdp.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedSdp("the SDP is not UTF-8") from None
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line]
    if not lines or lines[0] != "v=0":
        raise MalformedSdp("the SDP does not start with v=0")
    session_address: str | None = None
    sections: list[list[tuple[str, str]]] = []
    for number, line in enumerate(lines, 1):
        kind, sep, value = line.partition("=")
        if not sep or len(kind) != 1 or not kind.islower():
            raise MalformedSdp(f"SDP line {number} is not <type>=<value>")
        if kind == "m":
            if len(sections) == MAX_MEDIA_SECTIONS:
                raise MessageTooLarge(f"the SDP has more than {MAX_MEDIA_SECTIONS} media sections")
            sections.append([])
        if sections:
            sections[-1].append((kind, value))
        elif kind == "c":
            session_address = _connection(value)
    return SdpOffer(tuple(_stream(lines, session_address) for lines in sections))


def _connection(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise MalformedSdp("a c= line is not 'IN IP4|IP6 <address>'")
    # Multicast TTL/count suffixes (a/ttl) are not for a recorder.
    return parts[2].split("/")[0]


def _stream(lines: list[tuple[str, str]], session_address: str | None) -> OfferedStream:
    media_line = lines[0][1].split()
    if len(media_line) < 4 or not media_line[1].isdigit():
        raise MalformedSdp("an m= line is not '<media> <port> <proto> <fmt>...'")
    media, port, profile, *formats = media_line
    address = session_address
    direction = "sendrecv"
    label = None
    ptime = None
    rtpmaps: dict[int, tuple[str, int, int | None]] = {}
    fmtps: dict[int, str] = {}
    cryptos: list[Crypto] = []
    for kind, value in lines[1:]:
        if kind == "c":
            address = _connection(value)
        if kind != "a":
            continue
        name, _, rest = value.partition(":")
        if name in DIRECTIONS and not rest:
            direction = name
        elif name == "label":
            label = rest.strip() or None
        elif name == "ptime" and rest.strip().isdigit():
            ptime = int(rest)
        elif name == "rtpmap":
            pt, rtpmap = _rtpmap(rest)
            rtpmaps[pt] = rtpmap
        elif name == "fmtp":
            pt_text, _, params = rest.partition(" ")
            if pt_text.isdigit():
                fmtps[int(pt_text)] = params.strip()
        elif name == "crypto":
            cryptos.append(_crypto(rest))
    codecs = {}
    for fmt in formats:
        if not fmt.isdigit():
            continue
        pt = int(fmt)
        if pt in rtpmaps:
            name, clock, channels = rtpmaps[pt]
        elif pt in _STATIC:
            (name, clock), channels = _STATIC[pt], None
        else:
            continue
        codecs[pt] = Codec(pt, name, clock, channels, fmtps.get(pt))
    if address is None and int(port) != 0:
        raise MalformedSdp("a media section has no c= line, nor has the session")
    return OfferedStream(
        media=media,
        port=int(port),
        profile=profile,
        formats=tuple(formats),
        address=address,
        label=label,
        direction=direction,
        codecs=codecs,
        cryptos=tuple(cryptos),
        ptime=ptime,
    )


def _rtpmap(rest: str) -> tuple[int, tuple[str, int, int | None]]:
    pt_text, _, encoding = rest.partition(" ")
    name, _, clock = encoding.strip().partition("/")
    clock_text, _, channels = clock.partition("/")
    if not pt_text.isdigit() or not name or not clock_text.isdigit():
        raise MalformedSdp("an rtpmap is not '<pt> <name>/<clock>[/<channels>]'")
    return int(pt_text), (name, int(clock_text), int(channels) if channels.isdigit() else None)


def _crypto(rest: str) -> Crypto:
    parts = rest.split()
    if len(parts) < 3 or not parts[0].isdigit() or len(parts[0]) > 9:
        raise MalformedSdp("an a=crypto line is not '<tag> <suite> <key-params>'")
    return Crypto(int(parts[0]), parts[1], parts[2], tuple(parts[3:]))


def choose_codec(
    stream: OfferedStream, preference: Sequence[tuple[str, int]] = DEFAULT_CODECS
) -> Codec | None:
    """The offered codec the recorder prefers most, or None if it takes none of them."""
    for name, clock in preference:
        for pt in (int(f) for f in stream.formats if f.isdigit()):
            codec = stream.codecs.get(pt)
            if codec and codec.name.lower() == name.lower() and codec.clock_rate == clock:
                return codec
    return None


def usable_crypto(stream: OfferedStream) -> Crypto | None:
    return next(
        (
            c
            for c in stream.cryptos
            if c.suite in SRTP_KEY_BYTES
            and c.key_params.startswith("inline:")
            # Session parameters (UNENCRYPTED_SRTP, KDR...) change the keying we would do.
            and not c.session_params
        ),
        None,
    )


def build_answer(
    offer: SdpOffer,
    *,
    address: str,
    ports: Mapping[str, int],
    srtp_key: Callable[[str], bytes],
    session_version: int,
    preference: Sequence[tuple[str, int]] = DEFAULT_CODECS,
) -> tuple[str, tuple[AcceptedStream, ...]]:
    """The answer SDP and the streams it accepts; rejected streams are answered with port 0.

    ``ports`` maps each stream label to the local RTP port the caller has opened for it;
    ``srtp_key(suite)`` returns fresh master key + salt for an SRTP stream (the caller owns
    randomness, so tests can pass fixed keys). Raises NoUsableStream (SIP 488) when no
    stream is accepted.
    """
    family = "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"
    out = [
        "v=0",
        f"o=callrec {session_version} {session_version} IN {family} {address}",
        "s=callrec",
        f"c=IN {family} {address}",
        "t=0 0",
    ]
    accepted: list[AcceptedStream] = []
    for stream in offer.streams:
        answer = _accept(stream, ports, srtp_key, preference)
        if answer is None:
            out.append(f"m={stream.media} 0 {stream.profile} {' '.join(stream.formats)}")
            continue
        accepted.append(answer)
        codec = answer.codec
        out.append(f"m=audio {answer.port} {stream.profile} {codec.payload_type}")
        channels = f"/{codec.channels}" if codec.channels else ""
        out.append(f"a=rtpmap:{codec.payload_type} {codec.name}/{codec.clock_rate}{channels}")
        if codec.fmtp:
            out.append(f"a=fmtp:{codec.payload_type} {codec.fmtp}")
        if stream.ptime:
            out.append(f"a=ptime:{stream.ptime}")
        if answer.local_crypto:
            crypto = answer.local_crypto
            out.append(f"a=crypto:{crypto.tag} {crypto.suite} {crypto.key_params}")
        # An SRC that offers recvonly or inactive is not sending: answer inactive.
        out.append("a=recvonly" if stream.direction in ("sendonly", "sendrecv") else "a=inactive")
        out.append(f"a=label:{answer.label}")
    if not accepted:
        raise NoUsableStream("no offered stream is labelled audio in a codec the recorder takes")
    return "\r\n".join(out) + "\r\n", tuple(accepted)


def _accept(
    stream: OfferedStream,
    ports: Mapping[str, int],
    srtp_key: Callable[[str], bytes],
    preference: Sequence[tuple[str, int]],
) -> AcceptedStream | None:
    if stream.media != "audio" or stream.port == 0 or stream.profile not in PROFILES:
        return None
    if stream.label is None or stream.label not in ports:
        return None
    codec = choose_codec(stream, preference)
    if codec is None:
        return None
    remote = local = None
    if stream.profile == "RTP/SAVP":
        remote = usable_crypto(stream)
        if remote is None:
            return None
        key = srtp_key(remote.suite)
        if len(key) != SRTP_KEY_BYTES[remote.suite]:
            raise ValueError(f"{remote.suite} needs {SRTP_KEY_BYTES[remote.suite]} key bytes")
        inline = "inline:" + base64.b64encode(key).decode("ascii")
        local = Crypto(remote.tag, remote.suite, inline)
    return AcceptedStream(
        label=stream.label,
        port=ports[stream.label],
        codec=codec,
        remote_address=stream.address,
        remote_port=stream.port,
        remote_crypto=remote,
        local_crypto=local,
    )
