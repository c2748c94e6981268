"""RTP packets are read strictly, put back in order, and G.711 decodes as FFmpeg does."""

from __future__ import annotations

import struct

import av
import numpy as np
import pytest
from av.audio.codeccontext import AudioCodecContext
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.siprec.codecs import A_LAW, MU_LAW, decoder_for, recording_rate
from recorder.siprec.jitter import ReorderBuffer, Unwrapper
from recorder.siprec.rtp_packet import MalformedRtp, is_rtcp, parse_rtp
from recorder.siprec.sdp import Codec
from tests.recorder.siprec.rtp_support import encode, rtp_packet, tone


def test_a_plain_packet_is_read_field_by_field() -> None:
    packet = parse_rtp(rtp_packet(8, 65535, 0xFFFFFFF0, 0xDEADBEEF, b"\x55" * 160, marker=True))
    assert (packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc) == (
        8,
        65535,
        0xFFFFFFF0,
        0xDEADBEEF,
    )
    assert packet.marker
    assert packet.payload == b"\x55" * 160


def test_csrcs_extension_and_padding_are_taken_off_the_payload() -> None:
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 0, 7, 160, 1)
    csrcs = struct.pack("!II", 11, 12)
    extension = struct.pack("!HH", 0xBEDE, 1) + b"\x10\xaa\x00\x00"
    padding = b"\x00\x00\x03"
    packet = parse_rtp(header + csrcs + extension + b"audio" + padding)
    assert packet.csrcs == (11, 12)
    assert packet.payload == b"audio"


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"\x80\x00\x00\x01",  # shorter than a header
        b"\x40" + bytes(11),  # version 1
        b"\x83" + bytes(11),  # three CSRCs announced, none there
        b"\x90" + bytes(11) + b"\x00\x00\x00\x05",  # extension longer than the packet
        b"\xa0" + bytes(11) + b"ab\x00",  # padding count 0
        b"\xa0" + bytes(11) + b"ab\x09",  # padding longer than the payload
    ],
)
def test_malformed_datagrams_are_refused(datagram: bytes) -> None:
    with pytest.raises(MalformedRtp):
        parse_rtp(datagram)


def test_rtcp_on_a_muxed_port_is_told_from_rtp() -> None:
    for packet_type in range(200, 208):
        assert is_rtcp(bytes([0x80, packet_type, 0, 6]) + bytes(24))
    assert not is_rtcp(rtp_packet(0, 1, 1, 1, b"x"))
    assert not is_rtcp(rtp_packet(8, 1, 1, 1, b"x", marker=True))
    assert not is_rtcp(rtp_packet(111, 1, 1, 1, b"x", marker=True))


def test_counters_are_extended_across_their_wrap() -> None:
    sequence = Unwrapper(16)
    assert [sequence.extend(v) for v in (65534, 65535, 0, 65533, 1)] == [
        65534,
        65535,
        65536,
        65533,
        65537,
    ]
    timestamp = Unwrapper(32)
    assert timestamp.extend(0xFFFFFF60) == 0xFFFFFF60
    assert timestamp.extend(0x00000040) == 0x1_0000_0040


@pytest.mark.parametrize(("name", "table"), [("pcm_mulaw", MU_LAW), ("pcm_alaw", A_LAW)])
def test_g711_tables_match_ffmpeg_for_every_code(name: str, table: np.ndarray) -> None:
    context = av.codec.CodecContext.create(name, "r")
    assert isinstance(context, AudioCodecContext)
    context.sample_rate = 8000
    context.layout = "mono"
    frames = context.decode(av.Packet(bytes(range(256))))
    reference = np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])
    assert np.array_equal(reference, table)


def test_g722_decodes_to_wideband_at_its_tone() -> None:
    codec = Codec(9, "G722", 8000)
    assert recording_rate([codec, Codec(0, "PCMU", 8000)]) == 16000
    decoder = decoder_for(codec, 16000)
    payload = encode("G722", tone(1000, 1.0, 16000))
    pcm = np.concatenate([decoder.decode(payload[i : i + 160]) for i in range(0, 8000, 160)])
    assert len(pcm) == 16000
    spectrum = np.abs(np.fft.rfft(pcm[1600:].astype(float)))
    assert abs(np.argmax(spectrum) * 16000 / len(pcm[1600:]) - 1000) < 5


WINDOW = 6


@st.composite
def arrivals_within_window(draw: st.DrawFn) -> tuple[int, list[int]]:
    """A first sequence number anywhere (wraps included) and an arrival order in which
    no packet is overtaken by one ``WINDOW`` or more numbers after it."""
    first = draw(st.integers(0, 65535))
    count = draw(st.integers(1, 80))
    delays = draw(st.lists(st.floats(0, WINDOW - 1e-3), min_size=count, max_size=count))
    order = sorted(range(count), key=lambda index: index + delays[index])
    return first, order


@settings(max_examples=300, deadline=None)
@given(arrivals_within_window(), st.data())
def test_any_arrival_order_within_the_window_comes_out_in_order(
    case: tuple[int, list[int]], data: st.DataObject
) -> None:
    first, order = case
    duplicated = data.draw(st.sets(st.sampled_from(order)))
    buffer: ReorderBuffer[int] = ReorderBuffer(WINDOW)
    released: list[int] = []
    for index in order:
        released += buffer.push((first + index) & 0xFFFF, index)
        if index in duplicated:
            released += buffer.push((first + index) & 0xFFFF, index)
    released += buffer.drain()
    assert released == sorted(order)
    assert buffer.counts.lost == buffer.counts.late == 0
    assert buffer.counts.duplicate == len(duplicated)


def test_a_missing_packet_is_given_up_after_the_window_and_counted_late_if_it_comes() -> None:
    buffer: ReorderBuffer[int] = ReorderBuffer(3)
    out: list[int] = []
    for sequence in (65534, 65535, 1, 2):  # 0 is missing, across the wrap
        out += buffer.push(sequence, sequence)
    assert out == [65534, 65535]  # 0 is still waited for
    assert buffer.push(3, 3) == [1, 2, 3]  # 3 is a window past it: given up
    assert buffer.counts.lost == 1
    assert buffer.push(0, 0) == []
    assert buffer.counts.late == 1
    assert buffer.push(4, 4) == [4]
    assert buffer.drain() == []
