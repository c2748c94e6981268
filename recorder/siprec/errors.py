"""Why a SIPREC offer (RFC 7866) was refused, as facts, and the SIP status for each.

SiprecError (a RecorderError: ``detail`` is safe to show and to log)
├── MessageTooLarge          the body, the SDP or the metadata is over its cap     413
├── UnsupportedBody          not multipart/mixed, or a part of an unexpected type   415
├── MalformedBody            broken multipart framing, a part missing or repeated   400
├── MalformedMetadata        not well-formed XML, a DTD or entity, wrong namespace  400
├── InconsistentMetadata     a reference to an unknown id, a stream with no label   400
├── MalformedSdp             SDP that does not follow RFC 4566's line grammar       400
├── NoUsableStream           no offered stream the recorder can receive             488
└── NoCapacity               no ports or workers free for another session now      503

The table lives here, not in a SIP handler, so the parsers' tests can check that every
refusal has a status; the handler will answer with ``sip_status_of(exc)`` only.
"""

from __future__ import annotations

from recorder.errors import RecorderError


class SiprecError(RecorderError):
    """Base of every refusal of a recording session's offer."""


class MessageTooLarge(SiprecError):
    """A body, SDP or metadata document is over its byte or element cap."""


class UnsupportedBody(SiprecError):
    """The body is not ``multipart/mixed`` with a boundary, or holds a part of another type."""


class MalformedBody(SiprecError):
    """Broken multipart framing, or the SDP or metadata part is missing or repeated."""


class MalformedMetadata(SiprecError):
    """The metadata is not well-formed XML in a recording namespace, or holds a DTD/entity."""


class InconsistentMetadata(SiprecError):
    """Well-formed metadata that contradicts itself: dangling references, unlabelled streams."""


class MalformedSdp(SiprecError):
    """The SDP does not follow the line grammar of RFC 4566."""


class NoUsableStream(SiprecError):
    """No offered stream uses a profile, codec and key exchange the recorder accepts."""


class NoCapacity(SiprecError):
    """The recorder cannot take another session now (sessions, ports, workers); retry later."""


_SIP_STATUS: dict[type[SiprecError], tuple[int, str]] = {
    MessageTooLarge: (413, "Request Entity Too Large"),
    UnsupportedBody: (415, "Unsupported Media Type"),
    MalformedBody: (400, "Bad Request"),
    MalformedMetadata: (400, "Bad Request"),
    InconsistentMetadata: (400, "Bad Request"),
    MalformedSdp: (400, "Bad Request"),
    NoUsableStream: (488, "Not Acceptable Here"),
    NoCapacity: (503, "Service Unavailable"),
}


def sip_status_of(exc: SiprecError) -> tuple[int, str]:
    """The SIP status code and reason phrase that answer ``exc``."""
    return next(
        (_SIP_STATUS[kind] for kind in type(exc).__mro__ if kind in _SIP_STATUS),
        (500, "Server Internal Error"),
    )
