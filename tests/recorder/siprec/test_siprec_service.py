"""The whole path in the running service: sipp plays the SBC, the service's own SIPREC
server answers, RTP goes into the encrypted spool, and at BYE the call is an ordinary
recording (stored encrypted, listed, audited) before the 200 to the BYE is sent."""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from storage import SearchQuery
from storage.db.models import AuditEvent
from tests.recorder.siprec.sipp_support import (
    HOST,
    PCAP_NAME,
    SIPPY_SOCKET_LEAK,
    free_tcp_port,
    free_udp_port,
    run_sipp,
    sipp_binary,
    write_g711_pcap,
)
from tests.recorder.siprec.stream_support import client_context, self_signed, tls_relay
from tests.service_support import RunningService, running_service

pytestmark = SIPPY_SOCKET_LEAK


@pytest.fixture
async def service(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[RunningService, int]]:
    sipp_binary()
    port = free_udp_port()
    async with running_service(
        tmp_path / "var",
        database_url,
        siprec_listen=f"{HOST}:{port}",
        siprec_media_address=HOST,
        siprec_allowed_sources=("127.0.0.1/32",),
        siprec_rtp_ports="46000-46099",
    ) as started:
        yield started, port


async def test_a_siprec_call_is_stored_as_a_recording_before_its_bye_is_answered(
    service: tuple[RunningService, int], tmp_path: Path
) -> None:
    running, port = service
    packets = write_g711_pcap(tmp_path / PCAP_NAME, 1.0)
    run = await run_sipp(
        "srs_call.xml",
        workdir=tmp_path / "call",
        server=(HOST, port),
        pcap=tmp_path / PCAP_NAME,
        local_ip=HOST,
    )
    assert run.returncode == 0, run.stderr
    # The 200 to the BYE came after the recording was stored: it is there now.
    async with running.services.database.read() as session:
        stored = (
            (
                await session.execute(
                    select(AuditEvent.recording_id).where(AuditEvent.action == "recording.captured")
                )
            )
            .scalars()
            .all()
        )
    assert len(stored) == 1
    assert stored[0] is not None
    view = await running.services.catalog.get(stored[0])
    assert view is not None
    assert view.source == "siprec"
    assert view.channels == 2
    assert view.extra["siprec"]["ended_by"] == "bye"
    assert view.extra["siprec"]["streams"]["0"]["decoded"] >= packets - 2
    audio = await running.stored(view.id, "original")
    assert audio[:4] == b"RIFF"
    metrics = await (await running.client.get("/metrics")).text()
    assert "callrec_siprec_sessions_active 0.0" in metrics
    assert "callrec_siprec_unstored_sessions 0.0" in metrics
    assert not [
        path
        for path in (running.data_dir / "spool").rglob("*")
        if path.is_file() and path.read_bytes()[:4] == b"RIFF"
    ]


async def test_the_service_records_a_call_made_over_tls(tmp_path: Path, database_url: str) -> None:
    sipp_binary()
    files = self_signed(tmp_path)
    tls_port = free_tcp_port()
    packets = write_g711_pcap(tmp_path / PCAP_NAME, 1.0)
    async with running_service(
        tmp_path / "var",
        database_url,
        siprec_listen=f"{HOST}:{free_udp_port()}",
        siprec_tcp_listen=f"{HOST}:{free_tcp_port()}",
        siprec_tls_listen=f"{HOST}:{tls_port}",
        siprec_tls_cert_file=files.cert_file,
        siprec_tls_key_file=files.key_file,
        siprec_media_address=HOST,
        siprec_allowed_sources=("127.0.0.1/32",),
        siprec_rtp_ports="46100-46199",
    ) as running:
        async with tls_relay((HOST, tls_port), client_context(files)) as relay:
            run = await run_sipp(
                "srs_call.xml",
                workdir=tmp_path / "call",
                server=relay,
                pcap=tmp_path / PCAP_NAME,
                transport="t1",
            )
        assert run.returncode == 0, run.stderr
        [view] = await running.services.catalog.search(SearchQuery(teams=None, limit=5))
    assert view.source == "siprec"
    assert view.extra["siprec"]["ended_by"] == "bye"
    assert view.extra["siprec"]["streams"]["0"]["decoded"] >= packets - 2


async def test_lost_and_reordered_packets_become_silence_and_order_in_the_stored_call(
    service: tuple[RunningService, int], tmp_path: Path
) -> None:
    running, port = service
    lost = frozenset(range(20, 25))  # 100 ms the network lost
    sent = write_g711_pcap(tmp_path / PCAP_NAME, 1.0, lost=lost, swapped=frozenset({10, 30}))
    run = await run_sipp(
        "srs_call.xml",
        workdir=tmp_path / "lossy",
        server=(HOST, port),
        pcap=tmp_path / PCAP_NAME,
        local_ip=HOST,
    )
    assert run.returncode == 0, run.stderr
    [view] = await running.services.catalog.search(SearchQuery(teams=None, limit=5))
    counters = view.extra["siprec"]["streams"]["0"]
    assert counters["decoded"] == sent
    assert counters["lost"] == len(lost)
    assert counters["late"] == 0  # the swapped pairs were put back in order, not dropped
    samples = channels_of(await running.stored(view.id, "original"))
    assert not samples[1].any()  # sipp plays the first stream only: the second is silence
    # Channel 0 holds the signal (425 Hz) with exactly the lost 100 ms as zeros inside it.
    heard = np.flatnonzero(samples[0])
    first, last = heard[0], heard[-1]
    inner_zeros = np.flatnonzero(samples[0][first:last] == 0)
    runs = np.split(inner_zeros, np.flatnonzero(np.diff(inner_zeros) != 1) + 1)
    longest = max(len(run) for run in runs)
    assert longest == len(lost) * 160
    spectrum = np.abs(np.fft.rfft(samples[0][first : first + 2400].astype(np.float64)))
    assert abs(np.fft.rfftfreq(2400, 1 / 8000)[int(np.argmax(spectrum))] - 425) < 5
    assert view.duration_s is not None
    assert view.duration_s >= 1.0


def channels_of(wav: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(wav)) as reader:
        frames = reader.readframes(reader.getnframes())
        return np.frombuffer(frames, np.int16).reshape(-1, reader.getnchannels()).T
