"""The media of one recording session: a receiver per participant's stream, the
two-channel recording they feed, and the watch for a call that ended without a BYE.

Free of SIP: the signalling layer opens a session with what its SDP answer accepted,
watches ``ended`` (the RTP timeout sets it), and on BYE or that calls ``finish`` and
stores the spool it gets back like any other capture (``SpooledCapture.store``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from recorder.siprec.codecs import recording_rate
from recorder.siprec.recording_writer import CHANNELS, TwoChannelRecording
from recorder.siprec.rtp import RtpStreamReceiver, StreamCounters, open_stream_receiver
from recorder.siprec.sdp import AcceptedStream, Codec, Crypto, OfferedStream
from storage import EncryptedSpool

DEFAULT_RTP_TIMEOUT_S = 30.0
DEFAULT_TICK_S = 0.05


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """What to receive on one channel: where to listen, from whom, in what, with which key.

    ``local_port`` 0 lets the system choose (read it back from ``MediaSession.ports``).
    ``crypto`` is the offerer's SDES key (``AcceptedStream.remote_crypto``): never log it.
    """

    channel: int
    codec: Codec
    local_port: int = 0
    remote_address: str | None = None
    crypto: Crypto | None = None
    telephone_event_pt: int | None = None

    def __repr__(self) -> str:
        return f"StreamPlan(channel={self.channel}, {self.codec.name}, port={self.local_port})"

    @classmethod
    def from_answer(
        cls, channel: int, accepted: AcceptedStream, offered: OfferedStream | None = None
    ) -> StreamPlan:
        """The plan for a stream the SDP answer accepted (the offer names its DTMF type)."""
        events = None
        if offered is not None:
            events = next(
                (
                    pt
                    for pt, codec in offered.codecs.items()
                    if codec.name.lower() == "telephone-event"
                ),
                None,
            )
        return cls(
            channel=channel,
            codec=accepted.codec,
            local_port=accepted.port,
            remote_address=accepted.remote_address,
            crypto=accepted.remote_crypto,
            telephone_event_pt=events,
        )


@dataclass(frozen=True, slots=True)
class RecordedMedia:
    """A finished session's audio, ready to store as an ordinary recording.

    ``spool`` holds the whole WAV and is not yet finished: pass it to
    ``SpooledCapture.store`` with a ``NewRecording`` (started and ended at these times),
    which finishes, checks and stores it, then ``discard`` it as the push capture does.
    ``ended_without_bye`` says the call was ended by the RTP timeout.
    """

    spool: EncryptedSpool
    started_at: datetime
    ended_at: datetime
    sample_rate: int
    channels: int
    frames: int
    counters: dict[int, StreamCounters]
    ended_without_bye: bool

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


class MediaSession:
    """Receivers for up to two streams writing one encrypted two-channel recording."""

    def __init__(
        self,
        plans: Sequence[StreamPlan],
        *,
        spool_dir: Path,
        rtp_timeout_s: float = DEFAULT_RTP_TIMEOUT_S,
        tick_s: float = DEFAULT_TICK_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Not yet listening: ``start`` binds the ports. ValueError for a bad channel plan."""
        channels = [plan.channel for plan in plans]
        if not plans or len(set(channels)) != len(channels) or not set(channels) <= {0, 1}:
            raise ValueError(f"one or two streams, on distinct channels of {CHANNELS}")
        self._plans = tuple(plans)
        self._spool_dir = spool_dir
        self._rtp_timeout_s = rtp_timeout_s
        self._tick_s = tick_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._receivers: list[RtpStreamReceiver] = []
        self._recording: TwoChannelRecording | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._started_at = wall_clock()
        self._opened = clock()
        self.ended = asyncio.Event()
        """Set when the media ended by itself: no packet on any stream for
        ``rtp_timeout_s`` (``rtp_timed_out``), or a spool that cannot be written (then
        the ports are closed at once and ``finish`` raises)."""
        self._timed_out = False

    @property
    def rtp_timed_out(self) -> bool:
        """Whether the call went quiet for ``rtp_timeout_s``: ended without a BYE."""
        return self._timed_out

    @property
    def ports(self) -> dict[int, int]:
        """The local UDP port of each channel's receiver."""
        return {receiver.channel: receiver.local_port for receiver in self._receivers}

    async def start(self, host: str) -> None:
        """Open the spool and bind every stream's port on ``host``; OSError or
        StoreUnavailable if either cannot be had (nothing is left open then)."""
        spool = EncryptedSpool(self._spool_dir)
        rate = recording_rate([plan.codec for plan in self._plans])
        self._recording = TwoChannelRecording(spool, rate, clock=self._clock)
        self._started_at = self._wall_clock()
        self._opened = self._clock()
        try:
            for plan in self._plans:
                receiver = RtpStreamReceiver(
                    channel=plan.channel,
                    codec=plan.codec,
                    timeline=self._recording,
                    remote_address=plan.remote_address,
                    crypto=plan.crypto,
                    telephone_event_pt=plan.telephone_event_pt,
                    clock=self._clock,
                )
                self._receivers.append(
                    await open_stream_receiver(receiver, host=host, port=plan.local_port)
                )
        except BaseException:
            await self.discard()
            raise
        self._ticker = asyncio.ensure_future(self._tick())

    def counters(self) -> dict[int, StreamCounters]:
        """Each channel's counters so far."""
        return {receiver.channel: receiver.counters for receiver in self._receivers}

    async def finish(self) -> RecordedMedia:
        """Stop receiving, write what is held, and hand over the spool (not yet finished).

        StoreUnavailable if the spool could not be written meanwhile (``discard`` then).
        """
        recording = self._require_recording()
        await self._stop_ticker()
        counters = {receiver.channel: receiver.finish() for receiver in self._receivers}
        if self._failure is not None:
            raise self._failure
        await recording.flush(final=True)
        ended_without_bye = self._timed_out
        # A call that went quiet ended with its last packet, not when the quiet was noticed.
        ended = self._last_heard() if ended_without_bye else self._clock()
        elapsed = timedelta(seconds=max(0.0, ended - self._opened))
        return RecordedMedia(
            spool=recording.spool,
            started_at=self._started_at,
            ended_at=self._started_at + elapsed,
            sample_rate=recording.sample_rate,
            channels=CHANNELS,
            frames=recording.frames_written,
            counters=counters,
            ended_without_bye=ended_without_bye,
        )

    async def discard(self) -> None:
        """Stop and remove the spool: the call is not kept. Safe to call more than once."""
        await self._stop_ticker()
        for receiver in self._receivers:
            receiver.finish()
        if self._recording is not None:
            await self._recording.spool.discard()

    def _require_recording(self) -> TwoChannelRecording:
        if self._recording is None:
            raise RuntimeError("the media session was not started")
        return self._recording

    async def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

    async def _tick(self) -> None:
        recording = self._require_recording()
        try:
            while True:
                await asyncio.sleep(self._tick_s)
                for receiver in self._receivers:
                    receiver.release_overdue()
                await recording.flush()
                self._watch_timeout()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # kept for finish(): a spool that cannot be written
            self._failure = exc
            # Receiving on would only pile audio up in memory with nowhere to go.
            for receiver in self._receivers:
                receiver.finish()
            self.ended.set()

    def _last_heard(self) -> float:
        heard = [r.last_packet_at for r in self._receivers if r.last_packet_at is not None]
        return max(heard, default=self._opened)

    def _watch_timeout(self) -> None:
        if self._clock() - self._last_heard() >= self._rtp_timeout_s:
            self._timed_out = True
            self.ended.set()
