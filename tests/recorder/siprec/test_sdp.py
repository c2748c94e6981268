"""SIPREC offers are read, a codec is chosen per stream and a recvonly answer is built."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.siprec.errors import (
    MalformedSdp,
    MessageTooLarge,
    NoUsableStream,
    SiprecError,
    sip_status_of,
)
from recorder.siprec.sdp import (
    MAX_SDP_BYTES,
    SdpOffer,
    build_answer,
    choose_codec,
    parse_offer,
)

# Shaped after AudioCodes' published SIPREC INVITE: PCMA plus telephone-event per stream.
AUDIOCODES_OFFER = b"""v=0\r
o=AudioCodesGW 921244928 921244893 IN IP4 10.33.8.70\r
s=SBC-Call\r
c=IN IP4 10.33.8.70\r
t=0 0\r
m=audio 6020 RTP/AVP 8 96\r
c=IN IP4 10.33.8.71\r
a=ptime:20\r
a=sendonly\r
a=label:1\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:96 telephone-event/8000\r
a=fmtp:96 0-15\r
m=audio 6030 RTP/AVP 8 96\r
a=ptime:20\r
a=sendonly\r
a=label:2\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:96 telephone-event/8000\r
a=fmtp:96 0-15\r
"""

SRTP_OFFER = b"""v=0\r
o=src 1 1 IN IP6 2001:db8::5\r
s=-\r
c=IN IP6 2001:db8::5\r
t=0 0\r
m=audio 7000 RTP/SAVP 111 0\r
a=rtpmap:111 opus/48000/2\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4\r
a=crypto:2 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm\r
a=sendonly\r
a=label:caller\r
m=audio 7002 RTP/SAVP 0\r
a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR KDR=1\r
a=sendonly\r
a=label:callee\r
"""

KEY30 = bytes(range(30))


def fixed_key(suite: str) -> bytes:
    return KEY30


def test_streams_connections_labels_and_codecs_are_read() -> None:
    offer = parse_offer(AUDIOCODES_OFFER)

    first, second = offer.streams
    assert (first.label, first.port, first.address) == ("1", 6020, "10.33.8.71")
    assert (second.label, second.port, second.address) == ("2", 6030, "10.33.8.70")
    assert first.direction == "sendonly"
    assert first.ptime == 20
    assert first.codecs[96].fmtp == "0-15"
    assert choose_codec(first) == first.codecs[8]


def test_static_payload_types_need_no_rtpmap_and_the_preference_order_wins() -> None:
    offer = parse_offer(b"v=0\nc=IN IP4 192.0.2.1\nm=audio 4000 RTP/AVP 9 8 0\na=label:x\n")

    chosen = choose_codec(offer.streams[0])

    assert chosen is not None
    assert (chosen.payload_type, chosen.name) == (0, "PCMU")
    g722 = choose_codec(offer.streams[0], [("G722", 8000), ("PCMU", 8000)])
    assert g722 is not None
    assert g722.payload_type == 9


def test_the_answer_has_one_recvonly_line_per_offered_stream_with_the_label_echoed() -> None:
    answer, accepted = build_answer(
        parse_offer(AUDIOCODES_OFFER),
        address="192.0.2.50",
        ports={"1": 40000, "2": 40002},
        srtp_key=fixed_key,
        session_version=7,
    )

    assert answer.endswith("\r\n")
    assert answer.split("\r\n")[:5] == [
        "v=0",
        "o=callrec 7 7 IN IP4 192.0.2.50",
        "s=callrec",
        "c=IN IP4 192.0.2.50",
        "t=0 0",
    ]
    assert answer.count("a=recvonly") == 2
    assert "m=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20" in answer
    assert "a=label:2" in answer
    assert [(a.label, a.port, a.remote_port, a.codec.name) for a in accepted] == [
        ("1", 40000, 6020, "PCMA"),
        ("2", 40002, 6030, "PCMA"),
    ]


def test_srtp_is_answered_with_the_callers_key_and_unusable_crypto_is_rejected() -> None:
    answer, accepted = build_answer(
        parse_offer(SRTP_OFFER),
        address="2001:db8::50",
        ports={"caller": 41000, "callee": 41002},
        srtp_key=fixed_key,
        session_version=1,
    )

    (caller,) = accepted
    assert caller.codec.name == "PCMU"  # preferred over opus, though offered second
    assert caller.remote_crypto is not None
    assert caller.remote_crypto.key_params.startswith("inline:PS1uQCVeeCFCanVmcjkpPywj")
    inline = "inline:" + base64.b64encode(KEY30).decode()
    assert f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 {inline}" in answer
    # The second stream sets a key derivation rate, which we do not do: rejected, port 0.
    assert "m=audio 0 RTP/SAVP 0" in answer
    assert "c=IN IP6 2001:db8::50" in answer
    assert "PS1uQCVee" not in repr(caller)


def test_a_key_of_the_wrong_length_from_the_caller_is_a_bug_not_a_refusal() -> None:
    with pytest.raises(ValueError, match="needs 30 key bytes"):
        build_answer(
            parse_offer(SRTP_OFFER),
            address="2001:db8::50",
            ports={"caller": 41000},
            srtp_key=lambda suite: b"short",
            session_version=1,
        )


@pytest.mark.parametrize(
    "offer",
    [
        pytest.param(b"v=0\nc=IN IP4 192.0.2.1\nm=video 5000 RTP/AVP 96\na=label:1\n", id="video"),
        pytest.param(b"v=0\nc=IN IP4 192.0.2.1\nm=audio 5000 RTP/AVP 18\na=label:1\n", id="g729"),
        pytest.param(b"v=0\nc=IN IP4 192.0.2.1\nm=audio 5000 RTP/AVP 0\n", id="no-label"),
        pytest.param(b"v=0\nc=IN IP4 192.0.2.1\nm=audio 0 RTP/AVP 0\na=label:1\n", id="port-0"),
        pytest.param(
            b"v=0\nc=IN IP4 192.0.2.1\nm=audio 5000 UDP/TLS/RTP/SAVP 0\na=label:1\n", id="dtls"
        ),
        pytest.param(b"v=0\nc=IN IP4 192.0.2.1\nm=audio 5000 RTP/SAVP 0\na=label:1\n", id="no-key"),
        pytest.param(b"v=0\nc=IN IP4 192.0.2.1\nm=audio 5000 RTP/AVP 0\na=label:9\n", id="no-port"),
    ],
)
def test_an_offer_with_no_usable_stream_maps_to_488(offer: bytes) -> None:
    with pytest.raises(NoUsableStream) as refused:
        build_answer(
            parse_offer(offer),
            address="192.0.2.50",
            ports={"1": 40000},
            srtp_key=fixed_key,
            session_version=1,
        )

    assert sip_status_of(refused.value) == (488, "Not Acceptable Here")


@pytest.mark.parametrize(
    ("sdp", "error", "detail"),
    [
        pytest.param(b"", MalformedSdp, "does not start with v=0", id="empty"),
        pytest.param(b"v=1\n", MalformedSdp, "does not start with v=0", id="version"),
        pytest.param(b"v=0\nthis is not sdp\n", MalformedSdp, "line 2", id="garbage"),
        pytest.param(b"v=0\nM=audio 1 RTP/AVP 0\n", MalformedSdp, "line 2", id="upper"),
        pytest.param(b"v=0\nc=IN IP4\n", MalformedSdp, "c= line", id="short-c"),
        pytest.param(b"v=0\nm=audio x RTP/AVP 0\n", MalformedSdp, "m= line", id="port"),
        pytest.param(b"v=0\nm=audio 5000 RTP/AVP 0\n", MalformedSdp, "no c= line", id="no-c"),
        pytest.param(
            b"v=0\nc=IN IP4 192.0.2.1\nm=audio 5000 RTP/AVP 0\na=rtpmap:zero PCMU\n",
            MalformedSdp,
            "rtpmap",
            id="rtpmap",
        ),
        pytest.param(
            b"v=0\nc=IN IP4 192.0.2.1\nm=audio 5000 RTP/SAVP 0\na=crypto:1 AES\n",
            MalformedSdp,
            "a=crypto",
            id="crypto",
        ),
        pytest.param(b"v=0\n\xff\n", MalformedSdp, "not UTF-8", id="bytes"),
        pytest.param(
            b"v=0\nc=IN IP4 192.0.2.1\n" + b"m=audio 1 RTP/AVP 0\n" * 17,
            MessageTooLarge,
            "more than 16 media sections",
            id="sections",
        ),
        pytest.param(b"v=0\n" + b"a=x\n" * MAX_SDP_BYTES, MessageTooLarge, "over", id="huge"),
    ],
)
def test_malformed_sdp_is_refused_with_a_precise_error(
    sdp: bytes, error: type[SiprecError], detail: str
) -> None:
    with pytest.raises(error, match=re.escape(detail)):
        parse_offer(sdp)


_labels = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12),
    min_size=1,
    max_size=8,
    unique=True,
)
_codec_lists = st.lists(st.sampled_from(["0", "8", "9", "18", "101"]), min_size=1, unique=True)


@settings(max_examples=80, deadline=None)
@given(labels=_labels, formats=st.data())
def test_an_answer_reads_back_as_the_streams_it_accepted(
    labels: list[str], formats: st.DataObject
) -> None:
    sections = []
    for label in labels:
        pts = formats.draw(_codec_lists)
        sections.append(f"m=audio 5000 RTP/AVP {' '.join(pts)}\na=sendonly\na=label:{label}\n")
    offer_text = "v=0\nc=IN IP4 192.0.2.1\n" + "".join(sections)
    offer = parse_offer(offer_text.encode())
    ports = {label: 30000 + 2 * i for i, label in enumerate(labels)}

    try:
        answer, accepted = build_answer(
            offer, address="192.0.2.9", ports=ports, srtp_key=fixed_key, session_version=1
        )
    except NoUsableStream:
        assert all(choose_codec(s) is None for s in offer.streams)
        return

    echoed = parse_offer(answer.encode())
    assert len(echoed.streams) == len(offer.streams)
    by_label = {a.label: a for a in accepted}
    for offered, answered in zip(offer.streams, echoed.streams, strict=True):
        chosen = choose_codec(offered)
        if chosen is None:
            assert answered.port == 0
            continue
        assert answered.label == offered.label
        assert answered.direction == "recvonly"
        assert answered.formats == (str(chosen.payload_type),)
        assert answered.port == ports[offered.label or ""] == by_label[answered.label or ""].port


def test_an_offer_with_no_media_is_not_acceptable() -> None:
    with pytest.raises(NoUsableStream):
        build_answer(
            SdpOffer(()), address="192.0.2.9", ports={}, srtp_key=fixed_key, session_version=1
        )
