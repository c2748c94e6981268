"""A SIPREC INVITE body splits into SDP and metadata; anything else in it is refused.

An UPDATE's body may hold the metadata alone (bare or in a multipart), but not SDP alone.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recorder.siprec.body import MAX_BODY_BYTES, split_siprec_body, split_update_body
from recorder.siprec.errors import (
    MalformedBody,
    MessageTooLarge,
    SiprecError,
    UnsupportedBody,
    sip_status_of,
)
from recorder.siprec.metadata import parse_metadata
from recorder.siprec.sdp import parse_offer

VECTORS = Path(__file__).parent / "vectors"
RFC7866_TYPE = "multipart/mixed;boundary=foobar"


def rfc7866_body() -> bytes:
    """RFC 7866's example INVITE body, with SIP's CRLF line ends."""
    return (VECTORS / "rfc7866-invite-body.txt").read_bytes().replace(b"\n", b"\r\n")


def multipart(*parts: tuple[str, str], boundary: str = "b1") -> bytes:
    chunks = [f"--{boundary}\r\nContent-Type: {kind}\r\n\r\n{body}\r\n" for kind, body in parts]
    return ("".join(chunks) + f"--{boundary}--\r\n").encode()


SDP = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\na=label:1\r\n"
XML = "<recording xmlns='urn:ietf:params:xml:ns:recording:1'/>"


def test_the_rfc_7866_invite_body_yields_two_labelled_streams_and_their_metadata() -> None:
    body = split_siprec_body(RFC7866_TYPE, rfc7866_body())

    offer = parse_offer(body.sdp)
    metadata = parse_metadata(body.metadata)

    assert [s.label for s in offer.streams] == ["1", "2"]
    assert [s.port for s in offer.streams] == [12240, 12242]
    for stream in offer.streams:
        assert stream.label is not None
        described = metadata.stream_by_label(stream.label)
        assert described is not None
        assert [p.aors for p in metadata.senders_of(described.stream_id)] in (
            [("sip:alice@atlanta.com",)],
            [("sip:bob@biloxy.com",)],
        )


def test_bare_lf_line_ends_as_some_sbcs_send_them_are_accepted() -> None:
    # AudioCodes SBCs have been seen sending the multipart body with bare LF line ends.
    raw = (VECTORS / "rfc7866-invite-body.txt").read_bytes()
    assert b"\r\n" not in raw

    body = split_siprec_body(RFC7866_TYPE, raw)

    assert [s.label for s in parse_offer(body.sdp).streams] == ["1", "2"]
    assert parse_metadata(body.metadata).stream_by_label("2") is not None


def test_parameters_and_case_of_the_content_type_do_not_matter() -> None:
    body = split_siprec_body('Multipart/Mixed; boundary="foobar"; charset=utf-8', rfc7866_body())

    assert body.sdp.startswith(b"v=0")


def test_the_rs_metadata_xml_type_and_a_base64_part_are_accepted() -> None:
    raw = (
        "--b1\r\nContent-Type: application/sdp\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "dj0wDQo=\r\n"
        f"--b1\r\nContent-Type: application/rs-metadata+xml\r\n\r\n{XML}\r\n--b1--\r\n"
    ).encode()

    body = split_siprec_body("multipart/mixed; boundary=b1", raw)

    assert body.sdp == b"v=0\r\n"
    assert body.metadata.startswith(b"<recording")


@pytest.mark.parametrize(
    ("content_type", "body", "error", "detail"),
    [
        pytest.param(
            "application/sdp", SDP.encode(), UnsupportedBody, "not application/sdp", id="sdp-only"
        ),
        pytest.param(
            "multipart/alternative; boundary=b1",
            multipart(("application/sdp", SDP), ("application/rs-metadata+xml", XML)),
            UnsupportedBody,
            "not multipart/alternative",
            id="alternative",
        ),
        pytest.param(
            "multipart/mixed",
            multipart(("application/sdp", SDP)),
            MalformedBody,
            "no boundary",
            id="no-boundary",
        ),
        pytest.param(
            "multipart/mixed; boundary=other",
            multipart(("application/sdp", SDP), ("application/rs-metadata+xml", XML)),
            MalformedBody,
            "broken multipart framing",
            id="wrong-boundary",
        ),
        pytest.param(
            "multipart/mixed; boundary=b1",
            multipart(("application/sdp", SDP), ("application/rs-metadata+xml", XML))[:-9],
            MalformedBody,
            "broken multipart framing",
            id="truncated",
        ),
        pytest.param(
            "multipart/mixed; boundary=b1",
            multipart(("application/sdp", SDP)),
            MalformedBody,
            "metadata part is missing",
            id="no-metadata",
        ),
        pytest.param(
            "multipart/mixed; boundary=b1",
            multipart(("application/rs-metadata+xml", XML)),
            MalformedBody,
            "sdp part is missing",
            id="no-sdp",
        ),
        pytest.param(
            "multipart/mixed; boundary=b1",
            multipart(
                ("application/sdp", SDP),
                ("application/sdp", SDP),
                ("application/rs-metadata+xml", XML),
            ),
            MalformedBody,
            "sdp part appears twice",
            id="two-sdp",
        ),
        pytest.param(
            "multipart/mixed; boundary=b1",
            multipart(
                ("application/sdp", SDP),
                ("application/rs-metadata+xml", XML),
                ("application/rs-metadata+xml", XML),
            ),
            MalformedBody,
            "metadata part appears twice",
            id="two-metadata",
        ),
        pytest.param(
            "multipart/mixed; boundary=b1",
            multipart(("application/sdp", SDP), ("text/html", "<script>x</script>")),
            UnsupportedBody,
            "no text/html part",
            id="foreign-part",
        ),
        pytest.param(
            "multipart/mixed; boundary=b1",
            multipart(("application/sdp", SDP), ("application/rs-metadata+xml", " ")),
            MalformedBody,
            "metadata part is empty",
            id="empty-part",
        ),
        pytest.param(
            "multipart/mixed; boundary=b1\r\nContent-Type: text/plain",
            b"",
            UnsupportedBody,
            "single ASCII header value",
            id="header-injection",
        ),
        pytest.param(
            "multipart/mixed; boundary=b1",
            multipart(("application/sdp", SDP), ("application/rs-metadata+xml", XML))
            + b" " * MAX_BODY_BYTES,
            MessageTooLarge,
            "over 131072 bytes",
            id="oversize",
        ),
    ],
)
def test_a_body_that_is_not_one_sdp_and_one_metadata_part_is_refused(
    content_type: str, body: bytes, error: type[SiprecError], detail: str
) -> None:
    with pytest.raises(error, match=re.escape(detail)) as refused:
        split_siprec_body(content_type, body)

    assert sip_status_of(refused.value)[0] in (400, 413, 415)


def test_an_update_may_carry_metadata_alone_or_with_an_offer() -> None:
    bare = split_update_body("application/rs-metadata+xml; charset=utf-8", XML.encode())
    alone = split_update_body(
        "multipart/mixed;boundary=b1", multipart(("application/rs-metadata", XML))
    )
    both = split_update_body(RFC7866_TYPE, rfc7866_body())

    assert (bare.metadata, bare.sdp) == (XML.encode(), None)
    assert (alone.metadata.strip(), alone.sdp) == (XML.encode(), None)
    assert both.sdp is not None
    assert both.sdp.startswith(b"v=0")


@pytest.mark.parametrize(
    ("content_type", "body", "error"),
    [
        pytest.param("application/sdp", SDP.encode(), UnsupportedBody, id="sdp-only"),
        pytest.param(
            "multipart/mixed; boundary=b1",
            multipart(("application/sdp", SDP)),
            MalformedBody,
            id="no-metadata",
        ),
        pytest.param("application/rs-metadata+xml", b"  \r\n", MalformedBody, id="empty"),
        pytest.param(
            "application/rs-metadata+xml",
            b"x" * (MAX_BODY_BYTES + 1),
            MessageTooLarge,
            id="too-large",
        ),
    ],
)
def test_an_update_without_metadata_is_refused(
    content_type: str, body: bytes, error: type[SiprecError]
) -> None:
    with pytest.raises(error):
        split_update_body(content_type, body)
