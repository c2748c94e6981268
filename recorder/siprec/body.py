"""Splitting a SIPREC INVITE's ``multipart/mixed`` body into its SDP and its metadata.

The stdlib email parser does the MIME work (boundaries, transfer encodings); this module
decides what a recording offer may hold: exactly one SDP part and exactly one metadata
part, nothing else, under a byte cap checked before parsing. An UPDATE (RFC 7866 section
7.3) may carry the metadata alone, bare or as the one part of a multipart body.
"""

from __future__ import annotations

import email.policy
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser

from recorder.siprec.errors import MalformedBody, MessageTooLarge, UnsupportedBody

# SIP over UDP keeps a message under a datagram; TCP/TLS SRCs send a few KiB (two or
# four m-lines and a metadata snapshot). Big enough for a conference, small enough to hold.
MAX_BODY_BYTES = 128 * 1024

SDP_TYPE = "application/sdp"
# RFC 7866's type, and the bare name AudioCodes' "legacy" metadata format is sent under.
METADATA_TYPES = frozenset({"application/rs-metadata+xml", "application/rs-metadata"})


@dataclass(frozen=True)
class SiprecBody:
    """The two parts of a recording offer, as bytes for their own parsers."""

    sdp: bytes
    metadata: bytes


@dataclass(frozen=True)
class MetadataUpdate:
    """An UPDATE's body: new metadata, and a new offer only when the SRC sent one."""

    metadata: bytes
    sdp: bytes | None = None


def split_siprec_body(content_type: str, body: bytes) -> SiprecBody:
    """The SDP and metadata parts of an INVITE whose Content-Type is ``content_type``.

    Raises MessageTooLarge, UnsupportedBody (not multipart/mixed, or a part of another
    type) or MalformedBody (no boundary, broken framing, a part missing or repeated).
    """
    found = _parts(content_type, body)
    for kind in ("sdp", "metadata"):
        if kind not in found:
            raise MalformedBody(f"the {kind} part is missing")
    return SiprecBody(sdp=found["sdp"], metadata=found["metadata"])


def split_update_body(content_type: str, body: bytes) -> MetadataUpdate:
    """An UPDATE's metadata and optional SDP: bare metadata, or multipart as for INVITE.

    Raises as ``split_siprec_body`` does; the metadata is required (an SDP alone is not a
    recording update), the SDP is not.
    """
    _check_head(content_type, body)
    if content_type.split(";", 1)[0].strip().lower() in METADATA_TYPES:
        if not body.strip():
            raise MalformedBody("the metadata body is empty")
        return MetadataUpdate(metadata=body)
    found = _parts(content_type, body)
    if "metadata" not in found:
        raise MalformedBody("the metadata part is missing")
    return MetadataUpdate(metadata=found["metadata"], sdp=found.get("sdp"))


def _check_head(content_type: str, body: bytes) -> None:
    if len(body) > MAX_BODY_BYTES:
        raise MessageTooLarge(f"the body is over {MAX_BODY_BYTES} bytes")
    if "\r" in content_type or "\n" in content_type or not content_type.isascii():
        raise UnsupportedBody("the Content-Type is not a single ASCII header value")


def _parts(content_type: str, body: bytes) -> dict[str, bytes]:
    """The parts of a multipart/mixed body by kind ("sdp", "metadata"), each at most once."""
    _check_head(content_type, body)
    message = _parse(content_type, body)
    if message.get_content_type() != "multipart/mixed":
        raise UnsupportedBody(
            f"a recording offer is multipart/mixed, not {message.get_content_type()}"
        )
    if not message.get_boundary():
        raise MalformedBody("the multipart Content-Type has no boundary")
    if message.defects:
        raise MalformedBody(f"broken multipart framing ({type(message.defects[0]).__name__})")
    parts = message.get_payload()
    if not isinstance(parts, list):
        raise MalformedBody("the multipart body has no parts")
    found: dict[str, bytes] = {}
    for part in parts:
        if not isinstance(part, Message):
            raise MalformedBody("the multipart body holds a part that is not a MIME entity")
        kind = _kind_of(part)
        if kind in found:
            raise MalformedBody(f"the {kind} part appears twice")
        found[kind] = _payload_of(part, kind)
    return found


def _parse(content_type: str, body: bytes) -> Message:
    # The SIP layer has read the headers; the email parser wants a whole message, so the
    # one header it needs is put back in front of the body.
    head = b"Content-Type: " + content_type.encode("ascii") + b"\r\n\r\n"
    return BytesParser(policy=email.policy.HTTP).parsebytes(head + body)


def _kind_of(part: Message) -> str:
    if part.defects:
        raise MalformedBody(f"a part is malformed ({type(part.defects[0]).__name__})")
    content_type = part.get_content_type()
    if content_type == SDP_TYPE:
        return "sdp"
    if content_type in METADATA_TYPES:
        return "metadata"
    raise UnsupportedBody(f"a recording offer holds no {content_type[:60]} part")


def _payload_of(part: Message, kind: str) -> bytes:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes) or not payload.strip():
        raise MalformedBody(f"the {kind} part is empty")
    return payload
