"""A stream receiver's edges: who may send, Opus, timestamps that leap ahead, and the
recording's bounded memory."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import av
import numpy as np
import pytest
from av.audio.codeccontext import AudioCodecContext

from recorder.siprec.errors import NoUsableStream
from recorder.siprec.media_session import MediaSession, StreamPlan
from recorder.siprec.recording_writer import TwoChannelRecording, streaming_wav_header
from recorder.siprec.sdp import Codec, build_answer, parse_offer
from storage import EncryptedSpool
from tests.recorder.siprec.rtp_support import encode, packetise, rtp_packet, send_paced, tone

PCMA = Codec(8, "PCMA", 8000)
OPUS = Codec(111, "opus", 48000, 2)


async def send_from(host: str, port: int, datagrams: list[bytes]) -> None:
    """Send from a fresh socket on ``host`` (any 127.x address is the loopback on Linux)."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=(host, 0)
    )
    try:
        for datagram in datagrams:
            transport.sendto(datagram, ("127.0.0.1", port))
            await asyncio.sleep(0.002)
    finally:
        transport.close()


async def test_only_the_offered_host_is_heard_from_any_of_its_ports(tmp_path: Path) -> None:
    session = MediaSession(
        [StreamPlan(0, PCMA, remote_address="127.0.0.2")], spool_dir=tmp_path / "spool"
    )
    await session.start("127.0.0.1")
    try:
        port = session.ports[0]
        packets = [rtp_packet(8, n, n * 160, 7, bytes(160)) for n in range(6)]
        await send_from("127.0.0.1", port, packets[:2])  # not the offered host
        await send_from("127.0.0.2", port, packets[2:4])  # the offered host
        await send_from("127.0.0.2", port, packets[4:])  # the same host, another port
        await asyncio.sleep(0.05)
        counters = session.counters()[0]
        assert (counters.datagrams, counters.wrong_source) == (6, 2)
    finally:
        await session.discard()
    assert not any((tmp_path / "spool").iterdir())


async def test_with_no_offered_host_the_first_rtp_sender_is_latched(tmp_path: Path) -> None:
    session = MediaSession([StreamPlan(0, PCMA)], spool_dir=tmp_path / "spool")
    await session.start("127.0.0.1")
    try:
        port = session.ports[0]
        packets = [rtp_packet(8, n, n * 160, 7, bytes(160)) for n in range(4)]
        await send_from("127.0.0.3", port, [b"not rtp at all"])  # latches nothing
        await send_from("127.0.0.2", port, packets[:2])  # latched
        await send_from("127.0.0.3", port, packets[2:])  # anyone else
        await asyncio.sleep(0.05)
        counters = session.counters()[0]
        assert (counters.malformed, counters.wrong_source) == (1, 2)
    finally:
        await session.discard()


def opus_packets(pcm: np.ndarray) -> list[bytes]:
    context = av.codec.CodecContext.create("libopus", "w")
    assert isinstance(context, AudioCodecContext)
    context.sample_rate = 48000
    context.layout = "mono"
    context.format = "s16"
    context.bit_rate = 32000
    context.open()
    out = []
    for start in range(0, len(pcm), 960):
        frame = av.AudioFrame.from_ndarray(
            pcm[start : start + 960].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = 48000
        frame.pts = start
        out += [bytes(packet) for packet in context.encode(frame)]
    out += [bytes(packet) for packet in context.encode(None)]
    return out


async def test_opus_with_a_dynamic_payload_type_is_recorded_at_16_khz(tmp_path: Path) -> None:
    payloads = opus_packets(tone(1000, 1.0, 48000))
    datagrams = [[rtp_packet(111, 9 + n, n * 960, 3, p)] for n, p in enumerate(payloads)]
    session = MediaSession([StreamPlan(0, OPUS)], spool_dir=tmp_path / "spool")
    await session.start("127.0.0.1")
    await send_paced([(session.ports[0], datagrams)])
    media = await session.finish()
    try:
        await media.spool.finish()
        with media.spool.open_plaintext() as plaintext:
            data = plaintext.read()
    finally:
        await media.spool.discard()
    assert media.sample_rate == 16000
    assert media.counters[0].decoded == len(payloads)
    left = np.frombuffer(data[44:], dtype="<i2").reshape(-1, 2)[:, 0]
    voiced = np.flatnonzero(np.abs(left) > 1000)
    assert (voiced[-1] - voiced[0]) / 16000 == pytest.approx(1.0, abs=0.03)
    middle = left[voiced[0] + 1600 : voiced[-1] - 1600].astype(float)
    peak = np.argmax(np.abs(np.fft.rfft(middle))) * 16000 / len(middle)
    assert peak == pytest.approx(1000, abs=5)


async def test_a_timestamp_leaping_an_hour_ahead_is_rebased_on_arrival(tmp_path: Path) -> None:
    payload = encode("PCMA", tone(440, 0.2, 8000))
    first = packetise(
        payload,
        pt=8,
        bytes_per_packet=160,
        ticks_per_packet=160,
        first_sequence=1,
        first_timestamp=0,
        ssrc=4,
    )
    leap = packetise(
        payload,
        pt=8,
        bytes_per_packet=160,
        ticks_per_packet=160,
        first_sequence=11,
        first_timestamp=8000 * 3600,
        ssrc=4,
    )
    session = MediaSession([StreamPlan(0, PCMA)], spool_dir=tmp_path / "spool")
    await session.start("127.0.0.1")
    await send_paced([(session.ports[0], [[p.data] for p in first + leap])])
    media = await session.finish()
    await media.spool.discard()
    assert media.counters[0].rebased == 1
    assert media.counters[0].decoded == 20
    assert media.duration_s == pytest.approx(0.4, abs=0.1)


async def test_a_recording_holds_at_most_the_skew_while_one_channel_is_silent(
    tmp_path: Path,
) -> None:
    now = [100.0]
    spool = EncryptedSpool(tmp_path)
    recording = TwoChannelRecording(spool, 8000, max_skew_s=0.5, clock=lambda: now[0])
    try:
        assert recording.take_ready() == streaming_wav_header(8000)
        for second in range(10):
            now[0] += 1
            recording.put(0, second * 8000, np.full(8000, 1000, dtype=np.int16))
            frames = recording.take_ready()
            # Channel 1 has said nothing: padded with silence up to half a second behind.
            assert recording.frames_written == (second + 1) * 8000 - 4000
            assert len(frames) == 8000 * 4 if second else 4000 * 4
        assert recording.position_now() == 80000
        recording.put(1, 72000, np.full(8000, 5, dtype=np.int16))  # half too late
        assert recording.overwritten_samples == 4000
        tail = np.frombuffer(recording.take_ready(final=True), dtype="<i2").reshape(-1, 2)
        assert len(tail) == 4000
        assert (tail[:, 0] == 1000).all()
        assert (tail[:, 1] == 5).all()
    finally:
        await spool.discard()


def test_a_plan_follows_the_answer_and_names_the_offers_dtmf_type() -> None:
    offer = parse_offer(
        b"v=0\r\no=SBC 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n"
        b"m=audio 6000 RTP/SAVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\na=sendonly\r\na=label:1\r\n"
        b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(30)) + b"\r\n"
        b"a=crypto:2 AES_256_CM_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(46)) + b"\r\n"
    )
    _, (accepted,) = build_answer(
        offer,
        address="10.0.0.9",
        ports={"1": 30000},
        srtp_key=lambda suite: bytes(30),
        session_version=1,
    )
    plan = StreamPlan.from_answer(1, accepted, offer.streams[0])
    assert (plan.channel, plan.codec.name, plan.local_port) == (1, "PCMA", 30000)
    assert plan.remote_address == "10.0.0.5"
    assert plan.telephone_event_pt == 101
    assert plan.crypto is not None
    assert plan.crypto.suite == "AES_CM_128_HMAC_SHA1_80"
    assert "inline" not in repr(plan)


def test_an_offer_only_in_aes_256_is_not_accepted_as_srtp() -> None:
    offer = parse_offer(
        b"v=0\r\no=SBC 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n"
        b"m=audio 6000 RTP/SAVP 8\r\na=sendonly\r\na=label:1\r\n"
        b"a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(46)) + b"\r\n"
    )
    with pytest.raises(NoUsableStream):
        build_answer(
            offer,
            address="10.0.0.9",
            ports={"1": 30000},
            srtp_key=lambda suite: bytes(46),
            session_version=1,
        )
