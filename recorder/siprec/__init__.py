"""SIPREC (RFC 7866) recording sessions: the offer's body, its SDP and its metadata.

Parsers and the SDP answer only; no SIP transport and no media here.
"""

from recorder.siprec.body import SiprecBody, split_siprec_body
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
from recorder.siprec.sdp import (
    AcceptedStream,
    Codec,
    Crypto,
    OfferedStream,
    SdpOffer,
    build_answer,
    choose_codec,
    parse_offer,
)

__all__ = [
    "AcceptedStream",
    "Codec",
    "CommunicationSession",
    "Crypto",
    "Dialect",
    "Group",
    "InconsistentMetadata",
    "MalformedBody",
    "MalformedMetadata",
    "MalformedSdp",
    "MessageTooLarge",
    "NoUsableStream",
    "OfferedStream",
    "Participant",
    "RecordingMetadata",
    "SdpOffer",
    "SiprecBody",
    "SiprecError",
    "Stream",
    "StreamAssociation",
    "UnsupportedBody",
    "build_answer",
    "choose_codec",
    "merge_metadata",
    "parse_metadata",
    "parse_offer",
    "sip_status_of",
    "split_siprec_body",
]
