"""What the recording server refuses, and with which status, before any media is opened.

RFC 7866 section 6.1.1: only an INVITE with both ``Require: siprec`` and a ``+sip.src``
Contact is a recording session (else 403); unknown Require tags get 420 with Unsupported;
strangers get 403 whatever they send; a bad body gets the status ``sip_status_of`` gives.
"""

from __future__ import annotations

import asyncio

import pytest

from recorder.siprec.errors import NoCapacity
from tests.recorder.siprec.conftest import MAX_SESSIONS
from tests.recorder.siprec.sipp_support import SIPPY_SOCKET_LEAK, Srs, header

pytestmark = SIPPY_SOCKET_LEAK

SIPREC_OFFER = {
    "require_line": "Require: siprec",
    "contact_params": ";+sip.src",
    "label2": "<label>2</label>",
    "pt": "8",
    "rtpmap": "8 PCMA/8000",
}


@pytest.mark.parametrize(
    ("change", "status"),
    [
        pytest.param({"require_line": "Supported: siprec"}, 403, id="no-require-siprec"),
        pytest.param({"contact_params": ""}, 403, id="contact-without-sip-src"),
        pytest.param({"require_line": "Require: siprec, timer"}, 420, id="require-timer"),
        pytest.param({"label2": ""}, 400, id="stream-without-label"),
        pytest.param({"label2": "<label>1</label>"}, 400, id="labels-shared"),
        pytest.param({"pt": "18", "rtpmap": "18 G729/8000"}, 488, id="no-codec-we-take"),
    ],
)
async def test_an_offer_that_is_not_ours_to_record_is_refused(
    srs: Srs, change: dict[str, str], status: int
) -> None:
    run = await srs.run(
        "offer_refused.xml",
        keys={**SIPREC_OFFER, **change},
    )

    assert run.returncode == 0, run.stderr
    assert run.final_statuses("INVITE") == [status]
    assert srs.sessions.events == []
    assert srs.sessions.open_sockets == 0
    assert srs.server.active_calls == frozenset()


async def test_a_refusal_for_an_unknown_extension_names_it(srs: Srs) -> None:
    run = await srs.run(
        "offer_refused.xml",
        keys={**SIPREC_OFFER, "require_line": "Require: siprec, 100rel"},
    )

    (refusal,) = [r for r in run.responses("INVITE") if r.startswith("SIP/2.0 420")]
    assert header(refusal, "Unsupported") == "100rel"


async def test_a_source_outside_the_allow_list_is_refused_whatever_it_sends(srs: Srs) -> None:
    invite = await srs.run(
        "offer_refused.xml",
        local_ip="127.0.0.2",
        keys=SIPREC_OFFER,
    )
    options = await srs.run("options.xml", subdir="options", local_ip="127.0.0.2")

    assert invite.final_statuses("INVITE") == [403]
    assert options.final_statuses("OPTIONS") == [403]
    assert srs.sessions.events == []


async def test_a_media_side_out_of_capacity_is_answered_503_with_retry_after(srs: Srs) -> None:
    srs.sessions.refuse_with = NoCapacity("no RTP ports left")

    run = await srs.run("offer_refused.xml", keys=SIPREC_OFFER)

    (refusal,) = [r for r in run.responses("INVITE") if r.startswith("SIP/2.0 503")]
    assert header(refusal, "Retry-After") == "30"
    assert srs.server.active_calls == frozenset()


async def test_beyond_the_session_limit_new_offers_get_503(srs: Srs) -> None:
    calls = asyncio.create_task(srs.run("srs_call.xml", calls=MAX_SESSIONS))
    for _ in range(MAX_SESSIONS):
        await asyncio.wait_for(srs.sessions.opened.get(), 10)

    refused = await srs.run("offer_refused.xml", subdir="extra", keys=SIPREC_OFFER)
    recorded = await calls

    assert refused.final_statuses("INVITE") == [503]
    assert recorded.returncode == 0, recorded.stderr
    closes = [e for e in srs.sessions.events if e.kind == "close"]
    assert [e.reason for e in closes] == ["bye"] * MAX_SESSIONS
    assert all(e.packets["1"] == srs.packets_in_pcap for e in closes)
