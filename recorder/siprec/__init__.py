"""SIPREC (RFC 7866) recording sessions: the offer's body, its SDP and its metadata.

Parsers and the SDP answer only; no SIP transport and no media here.
"""

from recorder.siprec.errors import (
    InconsistentMetadata,
    MalformedBody,
    MalformedMetadata,
    MalformedSdp,
    MessageTooLarge,
    NoUsableStream,
    SiprecError,
    UnsupportedBody,
    sip_status_of,
)
from recorder.siprec.metadata import parse_metadata
from recorder.siprec.models import (
    CommunicationSession,
    Dialect,
    Group,
    Participant,
    RecordingMetadata,
    Stream,
    StreamAssociation,
    merge_metadata,
)

__all__ = [
    "CommunicationSession",
    "Dialect",
    "Group",
    "InconsistentMetadata",
    "MalformedBody",
    "MalformedMetadata",
    "MalformedSdp",
    "MessageTooLarge",
    "NoUsableStream",
    "Participant",
    "RecordingMetadata",
    "SiprecError",
    "Stream",
    "StreamAssociation",
    "UnsupportedBody",
    "merge_metadata",
    "parse_metadata",
    "sip_status_of",
]
