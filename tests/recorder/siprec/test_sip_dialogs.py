"""How a recording session's dialog ends and what it answers in between, against sipp.

CANCEL before the answer releases what the media side opened (even while it is still
opening); in-dialog UPDATE merges new metadata, INFO gets 501, REFER 403, OPTIONS 200 with
what we allow; a
session whose RTP stops is ended by the recorder with a BYE of its own.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.recorder.siprec.sipp_support import SIPPY_SOCKET_LEAK, Srs, header

pytestmark = SIPPY_SOCKET_LEAK


async def test_a_cancel_while_the_media_side_is_opening_releases_its_ports(srs: Srs) -> None:
    srs.sessions.open_delay_s = 1.0  # the CANCEL lands 0.3 s in

    run = await srs.run("cancel_before_answer.xml")
    closed = await asyncio.wait_for(srs.sessions.closed.get(), 5)

    assert run.returncode == 0, run.stderr
    assert closed.reason == "cancel"
    assert run.final_statuses("CANCEL") == [200]
    assert run.final_statuses("INVITE") == [487]
    assert [(e.kind, e.reason) for e in srs.sessions.events] == [
        ("open", None),
        ("close", "cancel"),
    ]
    assert srs.sessions.open_sockets == 0
    assert srs.server.active_calls == frozenset()


async def test_in_dialog_requests_are_answered_as_a_recorder_should(srs: Srs) -> None:
    run = await srs.run("in_dialog.xml")

    assert run.returncode == 0, run.stderr
    assert run.final_statuses("UPDATE") == [200]  # a session-timer refresh
    assert run.final_statuses("OPTIONS") == [200]
    assert run.final_statuses("REFER") == [403]
    assert run.final_statuses("INFO") == [501]
    assert run.final_statuses("BYE") == [200]
    (refreshed,) = run.responses("UPDATE")
    assert header(refreshed, "Contact") is not None
    assert refreshed.split("\n\n", 1)[1].strip() == ""
    assert [(e.kind, e.reason) for e in srs.sessions.events] == [("open", None), ("close", "bye")]


async def test_an_update_merges_new_metadata_and_a_bad_one_changes_nothing(srs: Srs) -> None:
    run = await srs.run("update.xml")

    assert run.returncode == 0, run.stderr
    assert run.final_statuses("UPDATE") == [200, 200, 200, 400]
    by_cseq = {header(r, "CSeq"): r for r in run.responses("UPDATE")}
    with_offer, metadata_only, refresh = (by_cseq[f"{n} UPDATE"] for n in (2, 3, 4))
    assert "a=label:1" in with_offer.split("\n\n", 1)[1]
    assert metadata_only.split("\n\n", 1)[1].strip() == ""
    assert refresh.split("\n\n", 1)[1].strip() == ""
    (options,) = run.responses("OPTIONS")
    assert "UPDATE" in (header(options, "Allow") or "")
    kinds = [(e.kind, e.reason) for e in srs.sessions.events]
    assert kinds == [("open", None), ("update", None), ("update", None), ("close", "bye")]
    names = [e.metadata.participants["pA"].names for e in srs.sessions.events[:3] if e.metadata]
    assert names == [("Caller",), ("Caller Renamed",), ("Caller Again",)]
    assert srs.server.active_calls == frozenset()


async def test_an_update_outside_any_dialog_gets_481(srs: Srs) -> None:
    run = await srs.run("update_outside_dialog.xml")

    assert run.returncode == 0, run.stderr
    assert run.final_statuses("UPDATE") == [481, 481]
    assert srs.sessions.events == []


async def test_options_outside_a_dialog_lists_what_the_recorder_allows(srs: Srs) -> None:
    run = await srs.run("options.xml")

    assert run.returncode == 0, run.stderr
    (ok,) = run.responses("OPTIONS")
    assert ok.startswith("SIP/2.0 200")
    assert header(ok, "Allow") == "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE"
    assert header(ok, "Supported") == "siprec"
    assert srs.sessions.events == []


async def test_a_session_whose_rtp_stops_is_ended_by_the_recorder(srs: Srs) -> None:
    srs.sessions.rtp_timeout_s = 1.0
    srs.sessions.on_rtp_timeout = srs.server.end_session

    run = await srs.run("ended_by_recorder.xml")

    assert run.returncode == 0, run.stderr
    bye = next(text for _, text in run.received() if text.startswith("BYE "))
    assert header(bye, "CSeq") is not None
    (closed,) = [e for e in srs.sessions.events if e.kind == "close"]
    assert closed.reason == "rtp_timeout"
    assert closed.packets["1"] == srs.packets_in_pcap
    assert srs.server.active_calls == frozenset()


async def test_a_refused_re_invite_leaves_the_session_as_it_was(srs: Srs) -> None:
    run = await srs.run("reinvite_refused.xml")

    assert run.returncode == 0, run.stderr
    assert run.final_statuses("INVITE") == [200, 400]
    assert run.final_statuses("BYE") == [200]
    assert [(e.kind, e.reason) for e in srs.sessions.events] == [("open", None), ("close", "bye")]
    (closed,) = [e for e in srs.sessions.events if e.kind == "close"]
    assert closed.packets["1"] == srs.packets_in_pcap


async def test_stopping_the_server_ends_its_sessions_with_a_bye_and_stores_them(
    srs: Srs, caplog: pytest.LogCaptureFixture
) -> None:
    call = asyncio.create_task(srs.run("ended_by_recorder.xml"))
    await asyncio.wait_for(srs.sessions.opened.get(), 10)
    await asyncio.sleep(0.5)  # the ACK and some RTP

    with caplog.at_level(logging.WARNING, logger="recorder.siprec"):
        await srs.server.stop()
        run = await call
        await asyncio.sleep(1.0)  # sippy's timers of the BYE we sent must find nothing amiss

    assert run.returncode == 0, run.stderr
    (closed,) = [e for e in srs.sessions.events if e.kind == "close"]
    assert closed.reason == "shutdown"
    assert srs.server.active_calls == frozenset()
    assert caplog.records == []


async def test_a_re_invite_without_an_offer_gets_the_recorders_sdp(srs: Srs) -> None:
    run = await srs.run("offerless_reinvite.xml")

    assert run.returncode == 0, run.stderr
    first, refresh = [r for r in run.responses("INVITE") if r.startswith("SIP/2.0 200")][:2]
    assert refresh.split("\n\n", 1)[1] == first.split("\n\n", 1)[1]
    assert [(e.kind, e.reason) for e in srs.sessions.events] == [("open", None), ("close", "bye")]
