"""Two participants' RTP, sent over real UDP with losses, duplicates, reordering and wraps,
becomes one encrypted two-channel recording whose channels measure as what was sent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from recorder.media_jobs import CheckJob, EncryptedInput
from recorder.siprec.codecs import Pcm
from recorder.siprec.media_session import MediaSession, RecordedMedia, StreamPlan
from recorder.siprec.sdp import Codec
from tests.recorder.siprec.rtp_support import (
    Packet,
    encode,
    packetise,
    rtp_packet,
    send_paced,
    tone,
)

PCMU = Codec(0, "PCMU", 8000)
PCMA = Codec(8, "PCMA", 8000)
G722 = Codec(9, "G722", 8000)
EVENT_PT = 101
AMPLITUDE = 8000.0


@dataclass(frozen=True)
class Channels:
    """A recording decrypted in memory: the WAV's channels as arrays, and its report."""

    rate: int
    left: Pcm
    right: Pcm


async def read_back(media: RecordedMedia, spool_dir: Path) -> Channels:
    """Finish the spool as the capture path would, prove no plaintext is on disk, and
    decrypt it in memory; the service's own check pass must accept it."""
    facts = await media.spool.finish()
    assert_no_plaintext(spool_dir)
    with media.spool.open_plaintext() as plaintext:
        data = plaintext.read()
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WAVE"
    # The check pass the capture path runs on a spool, decrypting as it reads.
    spool = media.spool
    source = EncryptedInput(spool.path, spool.object_id, spool.data_key, facts.ciphertext_size)
    report = CheckJob(source, max_channels=2).run()
    assert (report.container, report.codec, report.channels) == ("wav", "pcm_s16le", 2)
    assert report.sample_rate == media.sample_rate
    assert report.problems == ()
    frames = np.frombuffer(data[44:], dtype="<i2").reshape(-1, 2)
    assert len(frames) == media.frames
    assert report.duration_s == pytest.approx(media.duration_s, abs=0.01)
    await media.spool.discard()
    return Channels(media.sample_rate, frames[:, 0].copy(), frames[:, 1].copy())


def assert_no_plaintext(directory: Path) -> None:
    """No file under ``directory`` holds a WAV's magic bytes."""
    files = [path for path in directory.rglob("*") if path.is_file()]
    assert files  # the spool file is there, encrypted
    for path in files:
        content = path.read_bytes()
        assert b"RIFF" not in content
        assert b"WAVE" not in content


def dominant_hz(pcm: Pcm, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(float)))
    return float(np.argmax(spectrum) * rate / len(pcm))


def rms(pcm: Pcm) -> float:
    return float(np.sqrt(np.mean(pcm.astype(float) ** 2)))


def zero_runs(pcm: Pcm, shortest: int) -> list[tuple[int, int]]:
    """(start, length) of every run of exact zeros at least ``shortest`` long: the silence
    the recorder wrote (decoded speech is never exactly zero for that long)."""
    zero = np.concatenate(([0], (pcm == 0).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(zero))
    starts, ends = edges[::2], edges[1::2]
    return [(int(s), int(e - s)) for s, e in zip(starts, ends, strict=True) if e - s >= shortest]


def sounding(pcm: Pcm) -> tuple[int, int]:
    """The first and one past the last non-zero sample."""
    nonzero = np.flatnonzero(pcm)
    return int(nonzero[0]), int(nonzero[-1]) + 1


def slots_of(packets: list[Packet]) -> list[list[bytes]]:
    return [[packet.data] for packet in packets]


async def open_session(
    tmp_path: Path, *plans: StreamPlan, rtp_timeout_s: float = 30.0
) -> MediaSession:
    session = MediaSession(plans, spool_dir=tmp_path / "spool", rtp_timeout_s=rtp_timeout_s)
    await session.start("127.0.0.1")
    return session


async def test_two_g711_streams_with_loss_duplicates_reordering_and_wraps(
    tmp_path: Path,
) -> None:
    seconds = 2.0
    a = packetise(
        encode("PCMU", tone(440, seconds, 8000, AMPLITUDE)),
        pt=0,
        bytes_per_packet=160,
        ticks_per_packet=160,
        first_sequence=65500,  # wraps at packet 36
        first_timestamp=0xFFFFF000,  # wraps at packet 26
        ssrc=0x1111,
    )
    b = packetise(
        encode("PCMA", tone(1000, seconds, 8000, AMPLITUDE)),
        pt=8,
        bytes_per_packet=160,
        ticks_per_packet=160,
        first_sequence=10,
        first_timestamp=123456,
        ssrc=0x2222,
    )
    a_slots = slots_of(a)
    a_slots[10] = [a[10].data, a[10].data]  # duplicated
    a_slots[20], a_slots[21] = [a[21].data], [a[20].data]  # swapped in flight
    a_slots[30] = [a[30].data, b"\x80\x00junk"]  # and a datagram that is not RTP
    a_slots[40] = a_slots[41] = a_slots[42] = []  # lost: 60 ms
    a_slots[50] = [a[50].data, rtp_packet(0, 7, 7, 0x9999, bytes(160))]  # another SSRC
    a_slots[60] = [a[60].data, bytes([0x81, 200, 0, 6]) + bytes(24)]  # RTCP, muxed
    b_slots = slots_of(b)
    b_slots[50] = [rtp_packet(EVENT_PT, b[50].sequence, b[50].timestamp, 0x2222, bytes(4))]
    b_slots[60] = [rtp_packet(13, b[60].sequence, b[60].timestamp, 0x2222, b"\x40")]  # CN
    b_slots[70] = []  # lost: 20 ms
    session = await open_session(
        tmp_path,
        StreamPlan(0, PCMU),  # no address offered: the first sender is latched
        StreamPlan(1, PCMA, remote_address="127.0.0.1", telephone_event_pt=EVENT_PT),
    )
    ports = session.ports
    # B begins 200 ms after A, so A also ends 200 ms before B.
    await send_paced([(ports[0], a_slots), (ports[1], b_slots)], start_delays=[0, 10])
    intruder, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    intruder.sendto(a[5].data, ("127.0.0.1", ports[0]))  # right bytes, not the latched sender
    await asyncio.sleep(0.05)
    intruder.close()
    media = await session.finish()
    assert not media.ended_without_bye
    channels = await read_back(media, tmp_path)

    counters_a, counters_b = media.counters[0], media.counters[1]
    assert (counters_a.decoded, counters_a.lost, counters_a.duplicate, counters_a.late) == (
        97,
        3,
        1,
        0,
    )
    assert (counters_a.malformed, counters_a.foreign_ssrc, counters_a.rtcp) == (1, 1, 1)
    assert counters_a.wrong_source == 1
    assert counters_a.rebased == counters_a.ssrc_changes == 0
    assert (counters_b.decoded, counters_b.lost, counters_b.telephone_events) == (97, 1, 1)
    assert counters_b.wrong_payload_type == 1

    rate = channels.rate
    assert rate == 8000
    a_start, a_end = sounding(channels.left)
    b_start, b_end = sounding(channels.right)
    # Placed by timestamp across both wraps: exactly two seconds from first to last.
    assert a_end - a_start == pytest.approx(seconds * rate, abs=2)
    assert b_end - b_start == pytest.approx(seconds * rate, abs=2)
    # Placed on the common timeline by arrival: B 200 ms after A.
    assert (b_start - a_start) / rate == pytest.approx(0.2, abs=0.06)
    assert len(channels.left) == b_end  # the recording lasts until the last voice
    # A's three lost packets: 60 ms of silence where packet 40 belonged.
    inner_a = zero_runs(channels.left[a_start:a_end], 8)
    assert inner_a == [(40 * 160, 480)]
    inner_b = zero_runs(channels.right[b_start:b_end], 8)
    assert inner_b == [(50 * 160, 160), (60 * 160, 160), (70 * 160, 160)]
    assert not channels.left[a_end:].any()  # A stopped early: silence to the end
    assert not channels.right[:b_start].any()  # B started late: silence before
    voiced_a = channels.left[a_start : a_start + 40 * 160]
    voiced_b = channels.right[b_start : b_start + 50 * 160]
    assert dominant_hz(voiced_a, rate) == pytest.approx(440, abs=3)
    assert dominant_hz(voiced_b, rate) == pytest.approx(1000, abs=3)
    assert rms(voiced_a) == pytest.approx(AMPLITUDE / np.sqrt(2), rel=0.05)
    assert rms(voiced_b) == pytest.approx(AMPLITUDE / np.sqrt(2), rel=0.05)


async def test_g722_beside_g711_is_recorded_at_16_khz(tmp_path: Path) -> None:
    seconds = 1.0
    a = packetise(
        encode("G722", tone(440, seconds, 16000, AMPLITUDE)),
        pt=9,
        bytes_per_packet=160,  # 20 ms of G.722 at 64 kbit/s
        ticks_per_packet=160,  # at G.722's 8 kHz RTP clock
        first_sequence=65530,
        first_timestamp=0xFFFFFF00,
        ssrc=0xA,
    )
    b = packetise(
        encode("PCMU", tone(1000, seconds, 8000, AMPLITUDE)),
        pt=0,
        bytes_per_packet=160,
        ticks_per_packet=160,
        first_sequence=0,
        first_timestamp=0,
        ssrc=0xB,
    )
    a_slots = slots_of(a)
    a_slots[20] = []  # lost: 20 ms at 16 kHz is 320 samples
    session = await open_session(tmp_path, StreamPlan(0, G722), StreamPlan(1, PCMU))
    await send_paced([(session.ports[0], a_slots), (session.ports[1], slots_of(b))])
    media = await session.finish()
    channels = await read_back(media, tmp_path)

    assert channels.rate == 16000
    assert media.counters[0].lost == 1
    a_start, a_end = sounding(channels.left)
    b_start, b_end = sounding(channels.right)
    # G.722's codec and FFmpeg's resampler each delay the start a little; the length holds.
    assert (a_end - a_start) / 16000 == pytest.approx(seconds, abs=0.01)
    assert (b_end - b_start) / 16000 == pytest.approx(seconds, abs=0.01)
    gaps = zero_runs(channels.left[a_start:a_end], 16)
    assert len(gaps) == 1
    assert gaps[0][1] == pytest.approx(320, abs=16)
    head_a = channels.left[a_start + 800 : a_start + 19 * 320]
    head_b = channels.right[b_start + 800 : b_end - 800]
    assert dominant_hz(head_a, 16000) == pytest.approx(440, abs=5)
    assert dominant_hz(head_b, 16000) == pytest.approx(1000, abs=5)
    assert rms(head_a) == pytest.approx(AMPLITUDE / np.sqrt(2), rel=0.15)
    assert rms(head_b) == pytest.approx(AMPLITUDE / np.sqrt(2), rel=0.05)


async def test_one_participant_then_a_new_ssrc_then_silence_ends_the_call_without_bye(
    tmp_path: Path,
) -> None:
    first = packetise(
        encode("PCMA", tone(440, 0.5, 8000, AMPLITUDE)),
        pt=8,
        bytes_per_packet=160,
        ticks_per_packet=160,
        first_sequence=100,
        first_timestamp=5000,
        ssrc=0x1,
    )
    # After a re-INVITE the SBC sends under a new SSRC with unrelated numbering.
    second = packetise(
        encode("PCMA", tone(440, 0.5, 8000, AMPLITUDE)),
        pt=8,
        bytes_per_packet=160,
        ticks_per_packet=160,
        first_sequence=40000,
        first_timestamp=0x80000000,
        ssrc=0x2,
    )
    slots = slots_of(first) + [[]] * 15 + slots_of(second)  # 300 ms quiet between
    session = await open_session(tmp_path, StreamPlan(0, PCMA), rtp_timeout_s=0.5)
    await send_paced([(session.ports[0], slots)])
    assert not session.rtp_timed_out
    await asyncio.wait_for(session.ended.wait(), timeout=3)
    assert session.rtp_timed_out
    media = await session.finish()
    assert media.ended_without_bye
    # The call ended with its last packet (1.3 s in), not when the quiet was noticed.
    lasted = (media.ended_at - media.started_at).total_seconds()
    assert lasted == pytest.approx(1.3, abs=0.1)
    channels = await read_back(media, tmp_path)

    counters = media.counters[0]
    assert (counters.ssrc_changes, counters.decoded, counters.lost) == (1, 50, 0)
    assert not channels.right.any()  # nobody on channel 1
    start, end = sounding(channels.left)
    gaps = zero_runs(channels.left[start:end], 8)
    assert len(gaps) == 1
    # The new SSRC is placed by its arrival: 300 ms after the old one ended.
    assert gaps[0][1] / 8000 == pytest.approx(0.3, abs=0.06)
    assert (end - start - gaps[0][1]) / 8000 == pytest.approx(1.0, abs=0.002)
    # The timeout ended the recording shortly after the last packet, not at finish().
    assert len(channels.left) / 8000 == pytest.approx(end / 8000, abs=0.01)


async def test_srtp_is_decrypted_with_the_offered_key_and_forgeries_are_counted(
    tmp_path: Path,
) -> None:
    import base64

    import pylibsrtp

    from recorder.siprec.sdp import Crypto

    key = bytes(range(30))
    crypto = Crypto(1, "AES_CM_128_HMAC_SHA1_80", "inline:" + base64.b64encode(key).decode())
    protect = pylibsrtp.Session(
        pylibsrtp.Policy(
            key=key,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
        )
    )
    packets = packetise(
        encode("PCMU", tone(440, 1.0, 8000, AMPLITUDE)),
        pt=0,
        bytes_per_packet=160,
        ticks_per_packet=160,
        first_sequence=1,
        first_timestamp=1,
        ssrc=0x5,
    )
    protected = [protect.protect(packet.data) for packet in packets]
    forged = bytearray(protected[25])
    forged[20] ^= 0xFF
    slots = [[datagram] for datagram in protected]
    slots[25] = [bytes(forged)]  # lost to forgery: 20 ms of silence
    assert repr(StreamPlan(0, PCMU, crypto=crypto)).count("inline") == 0
    session = await open_session(tmp_path, StreamPlan(0, PCMU, crypto=crypto))
    await send_paced([(session.ports[0], slots)])
    media = await session.finish()
    channels = await read_back(media, tmp_path)

    counters = media.counters[0]
    assert (counters.srtp_refused, counters.decoded, counters.lost) == (1, 49, 1)
    start, end = sounding(channels.left)
    assert (end - start) / 8000 == pytest.approx(1.0, abs=0.001)
    assert zero_runs(channels.left[start:end], 8) == [(25 * 160, 160)]
    voiced: npt.NDArray[np.int16] = channels.left[start : start + 25 * 160]
    assert dominant_hz(voiced, 8000) == pytest.approx(440, abs=3)
