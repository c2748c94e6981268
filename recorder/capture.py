"""The signed-push capture: spool encrypted while checking the signature, then check the
audio in a media worker, store and audit (the rendition is queued, not waited for).

Written against a small protocol of what it needs from storage, and free of aiohttp, so
the same flow serves the webhook handler, tests and the benchmark.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from recorder.errors import (
    BodyStalled,
    Busy,
    NotMultipart,
    PayloadTooLarge,
    RecorderError,
    Unauthenticated,
)
from recorder.form import PushFormReader, boundary_of
from recorder.metadata import parse_push_metadata
from recorder.pace import PROOF_BYTES, PROOF_POLL_S, PROOF_WAIT_S
from recorder.signatures import REFUSAL, PushSignatureCheck, preauthenticated
from recorder.slots import CaptureSlots, Slot
from recorder.storing import CaptureSink, SpooledCapture
from storage import (
    PAST_RETENTION,
    EncryptedSpool,
    NewRecording,
    past_retention,
    retention_deadline,
)

DEFAULT_MAX_METADATA_BYTES = 64 * 1024
DEFAULT_MAX_CONCURRENT = 32
PACE_TICK_S = 0.5
"""How often a body that is waited for is asked whether it is too slow or displaced."""
TOO_SLOW = "the body is arriving too slowly to finish"
# Headers of an unknown source are judged against this, exactly like a known source's.
_NO_SECRET = b"\x00" * 32


@dataclass(frozen=True, slots=True)
class PushDelivery:
    """One delivery as it arrived: the source named in the URL, headers, and the raw body."""

    source: str
    timestamp: str | None
    signature: str | None
    preauth: str | None
    content_type: str
    content_encoding: str | None
    content_length: int | None
    body: AsyncIterator[bytes]
    arrived: Callable[[], tuple[int, bool]] = lambda: (0, False)
    """Bytes of the body the connection has received so far, read or not, and whether
    that is all of it: how a newcomer shows its pace before it has a slot."""


@dataclass(frozen=True, slots=True)
class PushResult:
    """What became of a delivery."""

    status: Literal["stored", "duplicate", "discarded"]
    recording_id: uuid.UUID | None = None
    retention_deadline: datetime | None = None


class PushCapture:
    """Turns signed pushes into stored recordings; one instance serves every source."""

    def __init__(
        self,
        *,
        recordings: CaptureSink,
        storing: SpooledCapture,
        secrets: Mapping[str, bytes],
        spool_dir: Path,
        retention_period: timedelta,
        clock: Callable[[], datetime],
        max_body_bytes: int,
        max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        max_unauthenticated: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._recordings = recordings
        self._storing = storing
        self._secrets = dict(secrets)
        self._spool_dir = spool_dir
        self._retention_period = retention_period
        self._clock = clock
        self._max_body = max_body_bytes
        self._max_metadata = max_metadata_bytes
        self._monotonic = monotonic
        self._slots = CaptureSlots(
            max_concurrent,
            max_unauthenticated or default_unauthenticated_budget(max_concurrent),
            monotonic,
        )

    async def capture(self, delivery: PushDelivery) -> PushResult:
        """Store the delivery or say why not; raises RecorderError or storage Unavailable.

        Idempotent per (source, recording_id): a repeat returns the first result.
        """
        secret = self._secrets.get(delivery.source)
        signature = PushSignatureCheck(
            secret or _NO_SECRET,
            timestamp=delivery.timestamp,
            signature=delivery.signature,
            now=self._clock(),
        )
        if secret is None:
            raise Unauthenticated(REFUSAL)
        if (delivery.content_encoding or "identity").lower() != "identity":
            # The signature covers the bytes sent; and a compressed body could unpack
            # to a thousand times its size before the signature is checked.
            raise NotMultipart("compressed bodies are not accepted: send the file as it is")
        boundary = boundary_of(delivery.content_type)
        if delivery.content_length is not None and delivery.content_length > self._max_body:
            raise PayloadTooLarge(f"the body is over {self._max_body} bytes")
        vouched = preauthenticated(
            secret,
            header=delivery.preauth,
            timestamp=delivery.timestamp,
            content_length=delivery.content_length,
            source=delivery.source,
        )
        slot = await self._take_slot(delivery, authenticated=vouched)
        try:
            spool = EncryptedSpool(self._spool_dir)
            try:
                return await self._capture_into(spool, delivery, signature, boundary, slot)
            finally:
                await spool.discard()
        finally:
            slot.release()

    async def _capture_into(
        self,
        spool: EncryptedSpool,
        delivery: PushDelivery,
        signature: PushSignatureCheck,
        boundary: bytes,
        slot: Slot,
    ) -> PushResult:
        form_reader = PushFormReader(boundary, max_metadata_bytes=self._max_metadata)
        received = 0
        refusal: RecorderError | None = None
        async for chunk in self._paced(delivery, slot):
            received += len(chunk)
            if received > self._max_body:
                raise PayloadTooLarge(f"the body is over {self._max_body} bytes")
            signature.update(chunk)
            if refusal is not None:
                continue
            try:
                pieces = form_reader.feed(chunk)
            except RecorderError as exc:
                # Kept until the signature is checked: an unsigned body is told 401 and
                # nothing about how far the parser got.
                refusal = exc
                continue
            for piece in pieces:
                await spool.write(piece)
        signature.verify()
        slot.authenticate()
        if refusal is not None:
            raise refusal
        form = form_reader.finish()

        now = self._clock()
        metadata = parse_push_metadata(form.metadata, now=now)
        actor = f"source:{delivery.source}"
        if past_retention(metadata.started_at, self._retention_period, now):
            await self._recordings.record_discard(
                actor=actor, source_recording_id=metadata.recording_id, reason=PAST_RETENTION
            )
            return PushResult("discarded")
        existing = await self._recordings.find_existing(delivery.source, metadata.recording_id)
        if existing is not None:
            return PushResult("duplicate", existing.recording_id, existing.retention_deadline)

        outcome = await self._storing.store(
            spool,
            NewRecording(
                source=delivery.source,
                source_recording_id=metadata.recording_id,
                started_at=metadata.started_at,
                ended_at=metadata.ended_at,
                retention_deadline=retention_deadline(metadata.started_at, self._retention_period),
                direction=metadata.direction,
                from_number=metadata.from_,
                to_number=metadata.to,
                agent=metadata.agent,
                team=metadata.team,
                referrals=tuple(metadata.referrals),
                extra=metadata.extra,
            ),
            actor=actor,
        )
        status: Literal["stored", "duplicate"] = "stored" if outcome.created else "duplicate"
        return PushResult(status, outcome.recording_id, outcome.retention_deadline)

    async def _take_slot(self, delivery: PushDelivery, *, authenticated: bool) -> Slot:
        """A slot at once if one is free; else, once the body shows a real sender's pace,
        a crawler's; Busy if neither comes within PROOF_WAIT_S."""
        deadline = self._monotonic() + PROOF_WAIT_S
        while True:
            try:
                return self._slots.take(authenticated=authenticated, proven=_shows_pace(delivery))
            except Busy:
                if self._monotonic() >= deadline:
                    raise
            await asyncio.sleep(PROOF_POLL_S)

    async def _paced(self, delivery: PushDelivery, slot: Slot) -> AsyncIterator[bytes]:
        """The body's chunks; BodyStalled as soon as it is too slow or its slot was taken.

        Asked every PACE_TICK_S while a chunk is awaited, not only when one comes, so a
        sender that trickles or goes quiet is cut within seconds of falling behind. A
        chunk already received is taken at once, with no task or timer: a fast upload
        arrives in thousands of chunks, and each wait costs the event loop what every
        other upload and request is waiting on.
        """
        displaced = asyncio.ensure_future(slot.displaced.wait())
        consumed = 0
        try:
            while True:
                slot.check_displaced()
                if slot.pace.too_slow(self._monotonic()):
                    raise BodyStalled(TOO_SLOW)
                received, complete = delivery.arrived()
                if received > consumed or complete:
                    chunk = await _next_chunk_or_none(delivery.body)
                else:
                    chunk = await self._awaited_chunk(delivery.body, slot, displaced)
                if chunk is None:
                    return
                consumed += len(chunk)
                slot.pace.arrived(self._monotonic(), len(chunk))
                yield chunk
        finally:
            displaced.cancel()

    async def _awaited_chunk(
        self, body: AsyncIterator[bytes], slot: Slot, displaced: asyncio.Future[Literal[True]]
    ) -> bytes | None:
        """The next chunk, not yet received: asked after every PACE_TICK_S while it comes."""
        following = asyncio.ensure_future(_next_chunk_or_none(body))
        try:
            while not following.done():
                slot.check_displaced()
                if slot.pace.too_slow(self._monotonic()):
                    raise BodyStalled(TOO_SLOW)
                await asyncio.wait(
                    (following, displaced),
                    timeout=PACE_TICK_S,
                    return_when=asyncio.FIRST_COMPLETED,
                )
        except BaseException:
            following.cancel()
            await asyncio.wait((following,))
            raise
        return following.result()


def _shows_pace(delivery: PushDelivery) -> bool:
    received, complete = delivery.arrived()
    wanted = PROOF_BYTES
    if delivery.content_length is not None:
        wanted = min(wanted, delivery.content_length)
    return complete or received >= wanted


def default_unauthenticated_budget(max_concurrent: int) -> int:
    """Half the slots, at least one: the other half is kept for proven senders."""
    return max(1, max_concurrent // 2)


async def _next_chunk_or_none(body: AsyncIterator[bytes]) -> bytes | None:
    return await anext(body, None)
