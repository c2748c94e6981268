"""A SIPREC session from offer to stored recording: the media opened for what the SDP
offers, and at BYE (or the RTP timeout) the two-channel recording stored as any capture.

The signalling layer calls ``open`` before it answers (the ports go into its SDP),
``update`` on a re-INVITE, and ``close`` when the session ends; the 200 to a BYE is sent
once ``close`` has stored the recording, so an SRC's BYE is acknowledged as a push is:
once the audio is durable. Participants become channels in the order their streams are
offered (the SRC's first stream is channel 0), their AORs the recording's parties (phone
numbers in E.164 by storage's rule), the session's ``sipSessionID`` (or, without one, the
dialog's Call-ID) its source recording id, so a session sent twice is stored once, and the
SBC's extension data maps to agent, team and referrals by configured keys.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from recorder.siprec.errors import NoCapacity, NoUsableStream
from recorder.siprec.media_session import MediaSession, RecordedMedia, StreamPlan
from recorder.siprec.models import RecordingMetadata
from recorder.siprec.ports import PortRange
from recorder.siprec.sdp import SdpOffer, choose_codec, usable_crypto
from storage import CaptureOutcome, EncryptedSpool, NewRecording, retention_deadline

log = logging.getLogger(__name__)

SOURCE = "siprec"
MAX_BIND_TRIES = 8
MAX_STREAMS = 2
ENDED_WITHOUT_BYE = "ended_without_bye"


class CaptureStore(Protocol):
    """Where a finished recording goes (SpooledCapture)."""

    async def store(
        self, spool: EncryptedSpool, recording: NewRecording, *, actor: str
    ) -> CaptureOutcome: ...


@dataclass(frozen=True, slots=True)
class ExtensionRules:
    """Which keys of the SBC's extension data (``callData.agentId``...) carry the agent,
    the team and a referral; empty: none is read."""

    agent: str | None = None
    team: str | None = None
    referral: str | None = None

    @classmethod
    def from_mapping(cls, rules: Mapping[str, str]) -> ExtensionRules:
        unknown = set(rules) - {"agent", "team", "referral"}
        if unknown:
            raise ValueError(f"extension rules name agent, team or referral, not {sorted(unknown)}")
        return cls(rules.get("agent"), rules.get("team"), rules.get("referral"))


@dataclass
class _Session:
    media: MediaSession
    metadata: RecordingMetadata
    labels: dict[str, int] = field(default_factory=dict)  # stream label -> channel
    watch: asyncio.Task[None] | None = None


class SiprecRecordings:
    """The recording sessions of one replica's SIPREC server."""

    def __init__(
        self,
        capture: CaptureStore,
        *,
        spool_dir: Path,
        host: str,
        retention_period: timedelta,
        rules: ExtensionRules = ExtensionRules(),
        rtp_timeout_s: float = 30.0,
        ports: PortRange | None = None,
    ) -> None:
        self._capture = capture
        self._spool_dir = spool_dir
        self._host = host
        self._rules = rules
        self._rtp_timeout_s = rtp_timeout_s
        self._sessions: dict[str, _Session] = {}
        self._period = retention_period
        # None: the system picks each port (tests); a service is given its range.
        self._ports = ports
        self._end_session: Callable[[str], Awaitable[None]] | None = None

    @property
    def active(self) -> int:
        """Sessions being recorded now."""
        return len(self._sessions)

    def ended(self, call_id: str) -> MediaSession | None:
        """The media of a session, whose ``ended`` event the signalling layer watches."""
        session = self._sessions.get(call_id)
        return None if session is None else session.media

    async def open(
        self,
        call_id: str,
        offer: SdpOffer,
        metadata: RecordingMetadata,
        source: tuple[str, int],
    ) -> dict[str, int]:
        """Listen for the offered streams: label -> local RTP port, for the answer.

        NoUsableStream (488) when no offered stream can be recorded. A retransmitted
        INVITE of a session already open gets the same ports.
        """
        existing = self._sessions.get(call_id)
        if existing is not None:
            return {
                label: existing.media.ports[channel] for label, channel in existing.labels.items()
            }
        plans, labels = _plans(offer)
        media = await self._start(plans)
        session = _Session(media, metadata, labels)
        session.watch = asyncio.ensure_future(self._watch(call_id, media))
        self._sessions[call_id] = session
        log.info("siprec session opened", extra={"streams": len(plans), "source": source[0]})
        return {label: media.ports[channel] for label, channel in labels.items()}

    async def update(
        self, call_id: str, offer: SdpOffer, metadata: RecordingMetadata
    ) -> dict[str, int]:
        """A re-INVITE: the metadata replaced (already merged by the caller); the streams
        kept on their ports (a changed codec or address is not followed yet)."""
        session = self._sessions.get(call_id)
        if session is None:
            raise NoUsableStream("no recording session for this dialog")
        session.metadata = metadata
        return _ports(session)

    def when_media_ends(self, end_session: Callable[[str], Awaitable[None]]) -> None:
        """Who is told that a session's media ended by itself (the RTP timeout): the SIP
        server, which then ends the dialog and closes the session here."""
        self._end_session = end_session

    async def close(self, call_id: str, reason: str) -> None:
        """``RecordingSessions.close``: returns once the recording is stored."""
        await self.store(call_id, reason)

    async def store(self, call_id: str, reason: str) -> CaptureOutcome | None:
        """End the session: a cancelled one is discarded; any other is stored, flagged when
        it ended without a BYE. None when there was nothing to store."""
        session = self._sessions.pop(call_id, None)
        if session is not None and session.watch is not None:
            session.watch.cancel()
        if session is None:
            return None
        if self._ports is not None:
            for port in session.media.ports.values():
                self._ports.release(port)
        if reason == "cancel":
            await session.media.discard()
            return None
        try:
            recorded = await session.media.finish()
        except Exception:
            await session.media.discard()
            raise
        try:
            return await self._capture.store(
                recorded.spool, self._recording(call_id, session, recorded, reason), actor=SOURCE
            )
        finally:
            await recorded.spool.discard()

    async def _watch(self, call_id: str, media: MediaSession) -> None:
        await media.ended.wait()
        if self._end_session is not None:
            await self._end_session(call_id)

    async def _start(self, plans: list[StreamPlan]) -> MediaSession:
        """The session listening: on ports of the range when there is one, trying the next
        free ones when another process holds a port; NoCapacity when the range is spent."""
        if self._ports is None:
            media = self._media(plans)
            await media.start(self._host)
            return media
        pool = list(self._ports.candidates())
        for _ in range(MAX_BIND_TRIES):
            if len(pool) < len(plans):
                break
            chosen = pool[: len(plans)]
            placed = zip(plans, chosen, strict=True)
            media = self._media(
                [dataclasses.replace(plan, local_port=port) for plan, port in placed]
            )
            try:
                await media.start(self._host)
            except OSError:
                # Some other process holds one of them: leave out those that will not bind
                # now (at least the first, so every try moves on) and try again.
                taken = [port for port in chosen if not _bindable(self._host, port)] or chosen[:1]
                pool = [port for port in pool if port not in taken]
                continue
            for port in chosen:
                self._ports.hold(port)
            return media
        raise NoCapacity("no RTP ports are free in the configured range")

    def _media(self, plans: list[StreamPlan]) -> MediaSession:
        return MediaSession(plans, spool_dir=self._spool_dir, rtp_timeout_s=self._rtp_timeout_s)

    async def close_all(self) -> None:
        """At shutdown: what has been recorded so far is stored, as if each call had ended."""
        for call_id in list(self._sessions):
            try:
                await self.store(call_id, "shutdown")
            except Exception:
                log.exception("a SIPREC recording could not be stored at shutdown")

    def _recording(
        self, call_id: str, session: _Session, recorded: RecordedMedia, reason: str
    ) -> NewRecording:
        metadata = session.metadata
        parties = _parties(metadata, session.labels)
        extensions = metadata.extensions
        referral = extensions.get(self._rules.referral) if self._rules.referral else None
        session_ids = [
            sip_id for each in metadata.sessions.values() for sip_id in each.sip_session_ids
        ]
        flags = {ENDED_WITHOUT_BYE: True} if recorded.ended_without_bye else {}
        return NewRecording(
            source=SOURCE,
            source_recording_id=(session_ids[0] if session_ids else call_id)[:200],
            started_at=recorded.started_at,
            ended_at=recorded.ended_at,
            retention_deadline=retention_deadline(recorded.started_at, self._period),
            from_number=parties[0],
            to_number=parties[1],
            agent=extensions.get(self._rules.agent) if self._rules.agent else None,
            team=extensions.get(self._rules.team) if self._rules.team else None,
            referrals=(referral,) if referral else (),
            extra={
                "siprec": {
                    "call_id": call_id,
                    "ended_by": "rtp_timeout" if recorded.ended_without_bye else reason,
                    **flags,
                    "streams": {
                        str(channel): counters.as_dict()
                        for channel, counters in recorded.counters.items()
                    },
                }
            },
        )


def _bindable(host: str, port: int) -> bool:
    """Whether a UDP socket can be bound to ``host:port`` at this moment."""
    with socket.socket(
        socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM
    ) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _ports(session: _Session) -> dict[str, int]:
    ports = session.media.ports
    return {label: ports[channel] for label, channel in session.labels.items()}


def _plans(offer: SdpOffer) -> tuple[list[StreamPlan], dict[str, int]]:
    """A plan per recordable stream, channels in offer order; NoUsableStream if none."""
    plans: list[StreamPlan] = []
    labels: dict[str, int] = {}
    for stream in offer.streams:
        if len(plans) == MAX_STREAMS:
            break
        if stream.media != "audio" or stream.port == 0 or stream.label is None:
            continue
        codec = choose_codec(stream)
        crypto = usable_crypto(stream) if stream.profile == "RTP/SAVP" else None
        if codec is None or (stream.profile == "RTP/SAVP" and crypto is None):
            continue
        events = next(
            (pt for pt, each in stream.codecs.items() if each.name.lower() == "telephone-event"),
            None,
        )
        channel = len(plans)
        plans.append(
            StreamPlan(
                channel=channel,
                codec=codec,
                remote_address=stream.address,
                crypto=crypto,
                telephone_event_pt=events,
            )
        )
        labels[stream.label] = channel
    if not plans:
        raise NoUsableStream("no offered stream is labelled audio in a codec the recorder takes")
    return plans, labels


def _parties(
    metadata: RecordingMetadata, labels: Mapping[str, int]
) -> tuple[str | None, str | None]:
    """The AOR of the participant sending each channel's stream (None when unnamed)."""
    found: list[str | None] = [None, None]
    stream_of_label = {
        stream.label: stream.stream_id for stream in metadata.streams.values() if stream.label
    }
    for label, channel in labels.items():
        stream_id = stream_of_label.get(label)
        for association in metadata.associations.values():
            if stream_id is not None and stream_id in association.send:
                participant = metadata.participants.get(association.participant_id)
                if participant is not None and participant.aors:
                    found[channel] = participant.aors[0]
    return found[0], found[1]
