"""SIPREC (RFC 7866) recording sessions: the offer's body, its SDP and its metadata, and
the media (RTP in, an encrypted two-channel recording out).

No SIP transport here: the signalling layer calls these.
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
from recorder.siprec.media_session import MediaSession, RecordedMedia, StreamPlan
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
from recorder.siprec.rtp import StreamCounters
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
    "MediaSession",
    "MessageTooLarge",
    "NoUsableStream",
    "OfferedStream",
    "Participant",
    "RecordedMedia",
    "RecordingMetadata",
    "SdpOffer",
    "SiprecBody",
    "SiprecError",
    "Stream",
    "StreamAssociation",
    "StreamCounters",
    "StreamPlan",
    "UnsupportedBody",
    "build_answer",
    "choose_codec",
    "merge_metadata",
    "parse_metadata",
    "parse_offer",
    "sip_status_of",
    "split_siprec_body",
]
