"""Content-Length is rewritten in characters for sippy, and only when it has to be."""

from __future__ import annotations

import pytest

from recorder.siprec.wire import NotUtf8, content_length_in_characters, declared_content_length

HEAD = b"INVITE sip:srs@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2\r\n"


def datagram(body: bytes, length_line: bytes | None = None) -> bytes:
    line = length_line if length_line is not None else b"Content-Length: %d" % len(body)
    return HEAD + line + b"\r\n\r\n" + body


def test_ascii_datagrams_pass_untouched() -> None:
    data = datagram(b"v=0\r\n")
    assert content_length_in_characters(data) is data


def test_a_utf8_body_is_measured_in_characters_and_its_bytes_kept() -> None:
    body = "<name>Zoë Siân</name>".encode()
    rewritten = content_length_in_characters(datagram(body))
    head, _, kept = rewritten.partition(b"\r\n\r\n")
    assert kept == body
    assert head.endswith(b"Content-Length: %d" % len(body.decode()))


def test_the_compact_form_and_any_case_are_rewritten_too() -> None:
    body = "é".encode() * 3
    rewritten = content_length_in_characters(datagram(body, b"l:6"))
    assert b"\r\nl: 3\r\n" in rewritten


def test_a_length_that_cuts_a_character_is_left_for_sippy_to_judge() -> None:
    body = "é".encode() * 3
    data = datagram(body, b"Content-Length: 5")
    assert content_length_in_characters(data) == data


def test_a_datagram_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(NotUtf8):
        content_length_in_characters(datagram(b"caf\xe9"))


def test_content_length_is_found_wherever_it_stands_among_the_headers() -> None:
    body = "Åsé".encode()
    data = HEAD + b"Content-Length: %d\r\nContent-Type: application/sdp\r\n\r\n" % len(body)
    rewritten = content_length_in_characters(data + body)
    assert b"\r\nContent-Length: 3\r\nContent-Type: application/sdp\r\n\r\n" in rewritten
    assert rewritten.endswith(body)


def test_a_stream_is_cut_by_the_declared_length_in_bytes() -> None:
    assert declared_content_length(b"INVITE sip:a SIP/2.0\r\nl: 12\r\n\r\n") == 12
    assert declared_content_length(b"INVITE sip:a SIP/2.0\r\nCONTENT-LENGTH:7\r\n\r\n") == 7
    assert declared_content_length(b"INVITE sip:a SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n") is None
