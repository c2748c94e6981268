"""SIP datagrams made safe for sippy's parser before it reads them.

sippy decodes a datagram to text and then takes Content-Length *characters* of body, not
bytes: metadata naming "Zoë" or "Siân" (UTF-8, two bytes for one character) makes the body
look truncated, and the INVITE is dropped without an answer. Rewriting Content-Length to
the body's length in characters lets sippy cut it where the sender meant; the body is
re-encoded to the very same bytes before ``split_siprec_body`` reads it.
"""

from __future__ import annotations

import re

_HEADER_END = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(
    rb"^(?P<name>content-length|l)[ \t]*:[ \t]*(?P<value>\d{1,9})[ \t]*\r?$",
    re.IGNORECASE | re.MULTILINE,
)


def declared_content_length(head: bytes) -> int | None:
    """The Content-Length (in bytes, as RFC 3261 means it) a message head declares, if any.

    Over TCP and TLS this is what cuts the byte stream into messages.
    """
    match = _CONTENT_LENGTH.search(head)
    return int(match.group("value")) if match else None


class NotUtf8(ValueError):
    """The datagram is not UTF-8 text: sippy cannot read it, so it is dropped unanswered."""


def content_length_in_characters(datagram: bytes) -> bytes:
    """``datagram`` with Content-Length counted in characters; unchanged when ASCII.

    Raises NotUtf8 when the datagram does not decode (sippy would raise on it too).
    """
    if datagram.isascii():
        return datagram
    try:
        datagram.decode("utf-8")
    except UnicodeDecodeError:
        raise NotUtf8("a SIP datagram that is not UTF-8") from None
    head, separator, body = datagram.partition(_HEADER_END)
    match = _CONTENT_LENGTH.search(head)
    if not separator or match is None:
        return datagram
    declared = int(match.group("value"))
    try:
        characters = len(body[:declared].decode("utf-8"))
    except UnicodeDecodeError:
        return datagram  # cut inside a character: let sippy judge the length as sent
    if characters == declared:
        return datagram
    line = b"%s: %d" % (match.group("name"), characters)
    return head[: match.start("name")] + line + head[match.end("value") :] + separator + body
