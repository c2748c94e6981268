"""The signed-push capture: spool encrypted while checking the signature, then validate,
decode and render in a media worker, store and audit.

Written against a small protocol of what it needs from storage, and free of aiohttp, so
the same flow serves the webhook handler, tests and the benchmark.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from recorder.errors import (
    Busy,
    NotMultipart,
    PayloadTooLarge,
    RecorderError,
    Unauthenticated,
)
from recorder.form import PushFormReader, boundary_of
from recorder.metadata import parse_push_metadata
from recorder.signatures import REFUSAL, PushSignatureCheck
from recorder.storing import CaptureSink, MediaProcessor, SpooledCapture
from storage import (
    PAST_RETENTION,
    EncryptedSpool,
    NewRecording,
    past_retention,
    retention_deadline,
)

DEFAULT_MAX_METADATA_BYTES = 64 * 1024
DEFAULT_MAX_CONCURRENT = 32
# Headers of an unknown source are judged against this, exactly like a known source's.
_NO_SECRET = b"\x00" * 32


@dataclass(frozen=True, slots=True)
class PushDelivery:
    """One delivery as it arrived: the source named in the URL, headers, and the raw body."""

    source: str
    timestamp: str | None
    signature: str | None
    content_type: str
    content_encoding: str | None
    content_length: int | None
    body: AsyncIterator[bytes]


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
        media: MediaProcessor,
        secrets: Mapping[str, bytes],
        spool_dir: Path,
        retention_period: timedelta,
        clock: Callable[[], datetime],
        max_body_bytes: int,
        max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
    ) -> None:
        self._recordings = recordings
        self._storing = SpooledCapture(recordings, media)
        self._secrets = dict(secrets)
        self._spool_dir = spool_dir
        self._retention_period = retention_period
        self._clock = clock
        self._max_body = max_body_bytes
        self._max_metadata = max_metadata_bytes
        self._slots = asyncio.Semaphore(max_concurrent)

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
        if self._slots.locked():
            raise Busy("too many recordings are being received at once; retry shortly")
        async with self._slots:
            spool = EncryptedSpool(self._spool_dir)
            try:
                return await self._capture_into(spool, delivery, signature, boundary)
            finally:
                await spool.discard()

    async def _capture_into(
        self,
        spool: EncryptedSpool,
        delivery: PushDelivery,
        signature: PushSignatureCheck,
        boundary: bytes,
    ) -> PushResult:
        form_reader = PushFormReader(boundary, max_metadata_bytes=self._max_metadata)
        received = 0
        refusal: RecorderError | None = None
        async for chunk in delivery.body:
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
