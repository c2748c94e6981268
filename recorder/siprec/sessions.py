"""The boundary between SIPREC signalling and the media it records: ``RecordingSessions``.

The signalling layer (``server.py``) decides whether a recording session may start and what
its SDP answer says; the media side (RTP receivers, the recording writer, storage) is
asked for ports, told what changed, and told when the session ends. Nothing here knows
SIP or sippy, so the media side can be built and tested on its own.
"""

from __future__ import annotations

from typing import Literal, Protocol

from recorder.siprec.models import RecordingMetadata
from recorder.siprec.sdp import SdpOffer

# Why a session ended: the SRC's BYE; a CANCEL (or the INVITE expiring) before the answer;
# no RTP for too long (the SRC vanished without a BYE); a failure on our side (no ACK to
# the 200, a media error); the service stopping.
EndReason = Literal["bye", "cancel", "rtp_timeout", "error", "shutdown"]


class RecordingSessions(Protocol):
    """What the media side offers the signalling layer, one call per recording session.

    ``call_id`` is the SIP Call-ID of the recording session's dialog: unique per session,
    stable across retransmissions, the SRC's own idempotency key. The signalling layer
    guarantees the order ``open`` -> ``update``* -> ``close`` for a call, never two calls
    for the same ``call_id`` at once, and exactly one ``close`` for every ``open`` that
    returned (and one for an ``open`` still running when the session ends: it is awaited
    first).
    """

    async def open(
        self,
        call_id: str,
        offer: SdpOffer,
        metadata: RecordingMetadata,
        source: tuple[str, int],
    ) -> dict[str, int]:
        """Open receivers for the offer's labelled streams: label -> local RTP port.

        A label left out is answered with port 0 (not recorded). Raise a SiprecError
        (``NoCapacity`` when out of ports or workers) to refuse the session.
        """
        ...

    async def update(
        self, call_id: str, offer: SdpOffer, metadata: RecordingMetadata
    ) -> dict[str, int]:
        """A re-INVITE's or UPDATE's offer and the merged metadata: label -> local RTP port.

        An UPDATE that brings metadata alone passes the offer already in force.
        """
        ...

    async def close(self, call_id: str, reason: EndReason) -> None:
        """End the session; return once what was recorded is stored (or raise if it wasn't).

        The SRC's BYE is answered only after this returns, so its 200 is the
        acknowledgement that the recording is safe.
        """
        ...
