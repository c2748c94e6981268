"""SIPREC (RFC 7866) recording sessions: the offer's body, its SDP and its metadata, and
the recording server that answers SRCs (``SiprecServer``, SIP on sippy in a thread of its
own), and the media (RTP in, an encrypted two-channel recording out), which plugs into
the server through ``RecordingSessions``.
"""

from recorder.siprec.admission import AdmissionPolicy
from recorder.siprec.body import SiprecBody, split_siprec_body
from recorder.siprec.errors import (
    InconsistentMetadata,
    MalformedBody,
    MalformedMetadata,
    MalformedSdp,
    MessageTooLarge,
    NoCapacity,
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
from recorder.siprec.server import SiprecServer
from recorder.siprec.sessions import EndReason, RecordingSessions

__all__ = [
    "AcceptedStream",
    "AdmissionPolicy",
    "Codec",
    "CommunicationSession",
    "Crypto",
    "Dialect",
    "EndReason",
    "Group",
    "InconsistentMetadata",
    "MalformedBody",
    "MalformedMetadata",
    "MalformedSdp",
    "MediaSession",
    "MessageTooLarge",
    "NoCapacity",
    "NoUsableStream",
    "OfferedStream",
    "Participant",
    "RecordedMedia",
    "RecordingMetadata",
    "RecordingSessions",
    "SdpOffer",
    "SiprecBody",
    "SiprecError",
    "SiprecServer",
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
