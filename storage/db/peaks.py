"""Waveform peaks as stored with a recording, and reading them back for drawing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from storage.db.database import Database
from storage.db.models import Recording, RecordingPeaks, RecordingState


@dataclass(frozen=True, slots=True)
class Peaks:
    """Signed bytes, bucket by bucket, each channel's min then max, scaled to -127..127."""

    per_second: float
    channels: int
    data: bytes

    @property
    def buckets(self) -> int:
        """How many time buckets the data holds."""
        return len(self.data) // (2 * self.channels) if self.channels else 0

    def channel(self, index: int) -> tuple[list[int], list[int]]:
        """The mins and maxes of one channel, in time order."""
        signed = memoryview(self.data).cast("b")
        step = 2 * self.channels
        return list(signed[2 * index :: step]), list(signed[2 * index + 1 :: step])


class PeakReader:
    """Reads the peaks of a stored recording."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def peaks(self, recording_id: uuid.UUID) -> Peaks | None:
        """The recording's peaks, or None if it has none or is no longer stored."""
        async with self._database.read() as session:
            row = await session.get(RecordingPeaks, recording_id)
            recording = await session.get(Recording, recording_id)
            if row is None or recording is None or recording.state != RecordingState.STORED:
                return None
            return Peaks(row.per_second, row.channels, row.data)
