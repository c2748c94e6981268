"""A SIPREC session from offer to stored recording: two participants' RTP received on the
ports the answer names, stored at BYE as an ordinary capture (encrypted, checked,
indexed), with the participants as parties and the SBC's extension data as agent and
team; a session that goes quiet is stored flagged, a cancelled one leaves nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from recorder.siprec import parse_metadata, parse_offer
from recorder.siprec.recordings import ExtensionRules, SiprecRecordings
from tests.recorder.siprec.rtp_support import encode, packetise, send_paced, tone
from tests.service_support import RunningService, running_service

VECTORS = Path(__file__).parent / "vectors"
OFFER = b"""v=0\r
o=BroadWorks 1 1 IN IP4 127.0.0.1\r
s=-\r
c=IN IP4 127.0.0.1\r
t=0 0\r
m=audio 7000 RTP/AVP 0\r
a=rtpmap:0 PCMU/8000\r
a=sendonly\r
a=label:1\r
m=audio 7002 RTP/AVP 8\r
a=rtpmap:8 PCMA/8000\r
a=sendonly\r
a=label:2\r
"""


@pytest.fixture
async def service(tmp_path: Path, database_url: str) -> AsyncIterator[RunningService]:
    async with running_service(tmp_path / "var", database_url) as started:
        yield started


def recordings(service: RunningService, *, rtp_timeout_s: float = 30.0) -> SiprecRecordings:
    services = service.services
    return SiprecRecordings(
        services.storing,
        spool_dir=services.spool.path,
        host="127.0.0.1",
        retention_period=services.settings.retention_period,
        rules=ExtensionRules(agent="userId", team="group"),
        rtp_timeout_s=rtp_timeout_s,
    )


def call_packets(seconds: float) -> tuple[list[list[bytes]], list[list[bytes]]]:
    """The caller at 440 Hz in mu-law, the hub at 1 kHz in A-law, 20 ms a packet."""
    caller = packetise(
        encode("PCMU", tone(440, seconds, 8000)),
        pt=0,
        bytes_per_packet=160,
        ticks_per_packet=160,
        first_sequence=100,
        first_timestamp=1000,
        ssrc=1,
    )
    hub = packetise(
        encode("PCMA", tone(1000, seconds, 8000)),
        pt=8,
        bytes_per_packet=160,
        ticks_per_packet=160,
        first_sequence=9000,
        first_timestamp=55,
        ssrc=2,
    )
    return [[p.data] for p in caller], [[p.data] for p in hub]


async def test_a_session_is_stored_at_bye_as_a_two_channel_recording(
    service: RunningService,
) -> None:
    sessions = recordings(service)
    metadata = parse_metadata((VECTORS / "broadworks-draft.xml").read_bytes())
    ports = await sessions.open("call-1@sbc", parse_offer(OFFER), metadata, ("127.0.0.1", 5060))
    assert set(ports) == {"1", "2"}
    assert sessions.active == 1
    caller, hub = call_packets(2.0)
    await send_paced([(ports["1"], caller), (ports["2"], hub)])
    await asyncio.sleep(0.2)
    outcome = await sessions.store("call-1@sbc", "bye")
    assert outcome is not None
    assert outcome.created
    assert sessions.active == 0
    view = await service.services.catalog.get(outcome.recording_id)
    assert view is not None
    assert view.source == "siprec"
    assert view.channels == 2
    assert view.duration_s is not None
    assert 1.8 <= view.duration_s <= 2.6
    assert view.from_number == "+441632960001"  # the AOR's number, in E.164
    assert view.to_number == "sip:mash.duty@as.example.net"  # no number: kept as sent
    assert view.agent == "mash.duty@as.example.net"
    assert view.team == "ChildrenServices"
    assert view.extra["siprec"]["ended_by"] == "bye"
    assert view.extra["siprec"]["streams"]["0"]["decoded"] >= 95
    # The stored original is the recording: each participant on their own channel.
    stored = await service.stored(outcome.recording_id, "original")
    assert stored[:4] == b"RIFF"
    samples = np.frombuffer(stored[44:], np.int16).reshape(-1, 2).T.astype(np.float64)
    for channel, hz in ((0, 440), (1, 1000)):
        spectrum = np.abs(np.fft.rfft(samples[channel]))
        peak = np.fft.rfftfreq(samples.shape[1], 1 / 8000)[int(np.argmax(spectrum))]
        assert abs(peak - hz) < 5, (channel, peak)
    # The same session sent again (a retry after a lost 200) is the same recording.
    again = await sessions.open("call-1b@sbc", parse_offer(OFFER), metadata, ("127.0.0.1", 5060))
    await send_paced([(again["1"], caller[:20]), (again["2"], hub[:20])])
    duplicate = await sessions.store("call-1b@sbc", "bye")
    assert duplicate is not None
    assert duplicate.recording_id == outcome.recording_id
    assert not duplicate.created


async def test_a_quiet_session_is_stored_flagged_and_a_cancelled_one_leaves_nothing(
    service: RunningService,
) -> None:
    sessions = recordings(service, rtp_timeout_s=0.5)
    metadata = parse_metadata((VECTORS / "broadworks-draft.xml").read_bytes())
    ports = await sessions.open("quiet@sbc", parse_offer(OFFER), metadata, ("127.0.0.1", 5060))
    caller, hub = call_packets(1.0)
    await send_paced([(ports["1"], caller), (ports["2"], hub)])
    media = sessions.ended("quiet@sbc")
    assert media is not None
    await asyncio.wait_for(media.ended.wait(), timeout=10)
    outcome = await sessions.store("quiet@sbc", "rtp_timeout")
    assert outcome is not None
    view = await service.services.catalog.get(outcome.recording_id)
    assert view is not None
    assert view.extra["siprec"]["ended_without_bye"] is True
    assert view.extra["siprec"]["ended_by"] == "rtp_timeout"

    before = await service.counts()
    spooled = sorted(service.services.spool.path.iterdir())
    ports = await sessions.open("gone@sbc", parse_offer(OFFER), metadata, ("127.0.0.1", 5060))
    await send_paced([(ports["1"], caller[:10])])
    assert await sessions.store("gone@sbc", "cancel") is None
    assert await service.counts() == before
    assert sorted(service.services.spool.path.iterdir()) == spooled
