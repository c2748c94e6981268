"""A recording server on a free port for each sipp test, with real RTP counters behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from recorder.siprec.admission import AdmissionPolicy
from recorder.siprec.server import SiprecServer
from tests.recorder.siprec.rtp_counting_sessions import RtpCountingSessions
from tests.recorder.siprec.sipp_support import (
    HOST,
    PCAP_NAME,
    Srs,
    free_udp_port,
    sipp_binary,
    write_g711_pcap,
)

PCAP_SECONDS = 1.0
MAX_SESSIONS = 12


@pytest.fixture
async def srs(tmp_path: Path) -> AsyncIterator[Srs]:
    """A recording server for 127.0.0.1 only, and the pcap its SRC will play."""
    sipp_binary()
    packets = write_g711_pcap(tmp_path / PCAP_NAME, PCAP_SECONDS)
    sessions = RtpCountingSessions()
    port = free_udp_port()
    server = SiprecServer(
        sessions,
        host=HOST,
        port=port,
        media_address=HOST,
        policy=AdmissionPolicy.from_cidrs(["127.0.0.1/32"], max_sessions=MAX_SESSIONS),
        srtp_key=lambda suite: bytes(30),
        bye_answer_within_s=10.0,
    )
    await server.start()
    try:
        yield Srs(server, sessions, (HOST, port), tmp_path, packets)
    finally:
        await server.stop()
