"""The recording server answers a real SIPREC client (sipp) over UDP, call by call.

Each test starts a ``SiprecServer`` on a free port with ``RtpCountingSessions`` (real UDP
sockets counting RTP) behind it, runs one sipp scenario from ``sipp/`` and checks what
sipp received and what the media side was asked to do.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.recorder.siprec.sipp_support import HOST, SIPPY_SOCKET_LEAK, Srs, header

pytestmark = SIPPY_SOCKET_LEAK


async def test_a_recorded_call_is_opened_updated_and_closed_after_its_bye(srs: Srs) -> None:
    run = await srs.run(
        "srs_call.xml",
    )

    assert run.returncode == 0, run.stderr
    kinds = [(e.kind, e.reason) for e in srs.sessions.events]
    assert kinds == [("open", None), ("update", None), ("close", "bye")]
    opened, updated, closed = srs.sessions.events
    assert opened.metadata is not None
    assert set(opened.metadata.participants) == {"pA", "pB"}
    assert opened.metadata.participants["pA"].names == ("Zoë Siân Åsé",)
    assert updated.metadata is not None
    assert updated.metadata.participants["pB"].names == ("Duty desk",)
    assert set(updated.metadata.participants) == {"pA", "pB"}
    assert closed.packets == {"1": srs.packets_in_pcap, "2": 0}
    assert srs.server.active_calls == frozenset()
    assert srs.sessions.open_sockets == 0


async def test_the_answer_is_a_plain_contact_and_a_recvonly_sdp_per_label(srs: Srs) -> None:
    run = await srs.run(
        "srs_call.xml",
    )

    assert run.returncode == 0, run.stderr
    ok = [r for r in run.responses("INVITE") if r.startswith("SIP/2.0 200")]
    assert len(ok) >= 2
    first = ok[0]
    contact = header(first, "Contact")
    assert contact == f"<sip:{HOST}:{srs.address[1]}>"
    assert "siprec" in (header(first, "Supported") or "")
    assert "UPDATE" in (header(first, "Allow") or "")
    body = first.split("\n\n", 1)[1]
    assert body.count("a=recvonly") == 2
    assert "a=label:1" in body
    assert "a=label:2" in body
    assert "m=audio 0 " not in body


async def test_the_bye_is_answered_only_once_the_recording_is_stored(srs: Srs) -> None:
    srs.sessions.store_delay_s = 1.0

    run = await srs.run(
        "srs_call.xml",
    )

    assert run.returncode == 0, run.stderr
    bye_sent = next(when for when, text in run.sent() if text.startswith("BYE "))
    bye_answered = next(
        when
        for when, text in run.received()
        if text.startswith("SIP/2.0 200") and header(text, "CSeq") == "3 BYE"
    )
    assert (bye_answered - bye_sent).total_seconds() >= 1.0


async def test_a_recording_that_cannot_be_stored_still_ends_the_dialog_and_is_counted(
    srs: Srs, caplog: pytest.LogCaptureFixture
) -> None:
    srs.sessions.fail_store = True

    with caplog.at_level(logging.ERROR, logger="recorder.siprec"):
        run = await srs.run(
            "srs_call.xml",
        )

    assert run.returncode == 0, run.stderr
    assert run.final_statuses("BYE") == [200]
    assert srs.server.unstored == 1
    assert "recording session not stored" in caplog.text


async def test_whole_sip_messages_and_numbers_never_reach_the_logs(
    srs: Srs, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.DEBUG):
        run = await srs.run(
            "srs_call.xml",
        )
        await asyncio.sleep(0.2)

    assert run.returncode == 0, run.stderr
    assert "sip in INVITE" in caplog.text  # the quiet log is there...
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert "447700900123" not in text  # ...but not the caller's number
        assert "rs-metadata" not in text
        assert "Call-ID" not in text
