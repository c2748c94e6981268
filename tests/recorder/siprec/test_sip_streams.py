"""The recording server over TCP and TLS: the same recorded call as over UDP, and the limits.

sipp (``-t t1``) makes the call over TCP directly and over TLS through ``tls_relay``
(Debian's sipp has no TLS). The limits are checked with a few bytes on a socket: a message
over the size cap closes its connection, a stranger over TLS gets 403, a failed TLS
handshake leaves the server answering the next client.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from recorder.siprec.admission import AdmissionPolicy
from recorder.siprec.body import MAX_BODY_BYTES
from recorder.siprec.server import SiprecServer
from recorder.siprec.transports import StreamListen, TlsFiles
from tests.recorder.siprec.conftest import MAX_SESSIONS, PCAP_SECONDS
from tests.recorder.siprec.rtp_counting_sessions import RtpCountingSessions
from tests.recorder.siprec.sipp_support import (
    HOST,
    PCAP_NAME,
    SIPPY_SOCKET_LEAK,
    Srs,
    free_tcp_port,
    free_udp_port,
    header,
    sipp_binary,
    write_g711_pcap,
)
from tests.recorder.siprec.stream_support import (
    client_context,
    exchange,
    options_request,
    self_signed,
    tls_relay,
)

pytestmark = SIPPY_SOCKET_LEAK


@dataclass
class StreamSrs:
    srs: Srs
    tcp: tuple[str, int]
    tls: tuple[str, int]
    tls_files: TlsFiles


@pytest.fixture
async def stream_srs(tmp_path: Path) -> AsyncIterator[StreamSrs]:
    """A recording server on UDP, TCP and TLS, for 127.0.0.1 only."""
    sipp_binary()
    packets = write_g711_pcap(tmp_path / PCAP_NAME, PCAP_SECONDS)
    files = self_signed(tmp_path)
    sessions = RtpCountingSessions()
    udp, tcp, tls = free_udp_port(), free_tcp_port(), free_tcp_port()
    server = SiprecServer(
        sessions,
        host=HOST,
        port=udp,
        media_address=HOST,
        policy=AdmissionPolicy.from_cidrs(["127.0.0.1/32"], max_sessions=MAX_SESSIONS),
        srtp_key=lambda suite: bytes(30),
        bye_answer_within_s=10.0,
        streams=(StreamListen(HOST, tcp), StreamListen(HOST, tls, files)),
    )
    await server.start()
    try:
        srs = Srs(server, sessions, (HOST, udp), tmp_path, packets)
        yield StreamSrs(srs, (HOST, tcp), (HOST, tls), files)
    finally:
        await server.stop()


def assert_recorded(srs: Srs) -> None:
    kinds = [(e.kind, e.reason) for e in srs.sessions.events]
    assert kinds == [("open", None), ("update", None), ("close", "bye")]
    opened = srs.sessions.events[0]
    assert opened.metadata is not None
    assert opened.metadata.participants["pA"].names == ("Zoë Siân Åsé",)
    assert srs.sessions.events[-1].packets == {"1": srs.packets_in_pcap, "2": 0}
    assert srs.server.active_calls == frozenset()


async def test_a_recorded_call_over_tcp(stream_srs: StreamSrs) -> None:
    srs = stream_srs.srs

    run = await srs.run("srs_call.xml", transport="t1", server=stream_srs.tcp)

    assert run.returncode == 0, run.stderr
    assert_recorded(srs)
    ok = next(r for r in run.responses("INVITE") if r.startswith("SIP/2.0 200"))
    assert header(ok, "Contact") == f"<sip:{HOST}:{stream_srs.tcp[1]};transport=tcp>"
    assert (header(ok, "Via") or "").startswith("SIP/2.0/TCP ")


async def test_a_recorded_call_over_tls(stream_srs: StreamSrs) -> None:
    srs = stream_srs.srs
    context = client_context(stream_srs.tls_files)

    async with tls_relay(stream_srs.tls, context) as relay:
        run = await srs.run("srs_call.xml", transport="t1", server=relay)

    assert run.returncode == 0, run.stderr
    assert_recorded(srs)
    ok = next(r for r in run.responses("INVITE") if r.startswith("SIP/2.0 200"))
    assert header(ok, "Contact") == f"<sip:{HOST}:{stream_srs.tls[1]};transport=tls>"


async def test_a_recording_ended_by_the_recorder_sends_its_bye_on_the_connection(
    stream_srs: StreamSrs,
) -> None:
    srs = stream_srs.srs
    call = asyncio.create_task(
        srs.run("ended_by_recorder.xml", transport="t1", server=stream_srs.tcp)
    )
    await asyncio.wait_for(srs.sessions.opened.get(), 10)
    await asyncio.sleep(0.5)  # the ACK and some RTP
    (call_id,) = srs.server.active_calls
    await srs.server.end_session(call_id)

    run = await call
    assert run.returncode == 0, run.stderr
    bye = next(text for _, text in run.received() if text.startswith("BYE "))
    assert (header(bye, "Via") or "").startswith("SIP/2.0/TCP ")


async def test_a_message_over_the_size_limit_closes_its_connection_only(
    stream_srs: StreamSrs,
) -> None:
    reader, writer = await asyncio.open_connection(*stream_srs.tcp)
    request = options_request(*stream_srs.tcp, "TCP").replace(
        b"Content-Length: 0", b"Content-Length: %d" % (MAX_BODY_BYTES + 1)
    )
    writer.write(request)
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # closed, unanswered
    writer.close()

    response = await exchange(stream_srs.tcp, options_request(*stream_srs.tcp, "TCP"))
    assert response.startswith("SIP/2.0 200 ")


async def test_a_stranger_over_tls_is_refused(stream_srs: StreamSrs) -> None:
    context = client_context(stream_srs.tls_files)
    request = options_request(*stream_srs.tls, "TLS")

    response = await exchange(stream_srs.tls, request, context=context, source="127.0.0.2")

    assert response.startswith("SIP/2.0 403 ")


async def test_a_failed_tls_handshake_leaves_the_server_serving(stream_srs: StreamSrs) -> None:
    untrusting = ssl.create_default_context()  # the system's CAs: ours is not among them
    with pytest.raises(ssl.SSLCertVerificationError):
        await exchange(stream_srs.tls, b"", context=untrusting)
    reader, writer = await asyncio.open_connection(*stream_srs.tls)
    writer.write(b"\x16\x03\x01\x00\x05hello")  # a broken ClientHello
    async with asyncio.timeout(5):
        await reader.read()
    writer.close()

    context = client_context(stream_srs.tls_files)
    response = await exchange(
        stream_srs.tls, options_request(*stream_srs.tls, "TLS"), context=context
    )
    assert response.startswith("SIP/2.0 200 ")


async def test_with_a_client_ca_only_sbcs_with_its_certificate_are_served(tmp_path: Path) -> None:
    (tmp_path / "server").mkdir()
    (tmp_path / "sbc").mkdir()
    ours = self_signed(tmp_path / "server")
    sbc = self_signed(tmp_path / "sbc")  # its own CA: trusting it trusts just this SBC
    tls = (HOST, free_tcp_port())
    server = SiprecServer(
        RtpCountingSessions(),
        host=HOST,
        port=free_udp_port(),
        media_address=HOST,
        policy=AdmissionPolicy.from_cidrs(["127.0.0.1/32"]),
        streams=(StreamListen(*tls, TlsFiles(ours.cert_file, ours.key_file, sbc.cert_file)),),
    )
    await server.start()
    try:
        anonymous = client_context(ours)
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            await exchange(tls, options_request(*tls, "TLS"), context=anonymous)

        known = client_context(ours)
        known.load_cert_chain(sbc.cert_file, sbc.key_file)
        response = await exchange(tls, options_request(*tls, "TLS"), context=known)
    finally:
        await server.stop()

    assert response.startswith("SIP/2.0 200 ")


async def test_an_update_over_tcp_is_answered_on_its_connection(stream_srs: StreamSrs) -> None:
    srs = stream_srs.srs

    run = await srs.run("update.xml", transport="t1", server=stream_srs.tcp)

    assert run.returncode == 0, run.stderr
    assert run.final_statuses("UPDATE") == [200, 200, 200, 400]
    kinds = [e.kind for e in srs.sessions.events]
    assert kinds == ["open", "update", "update", "close"]
