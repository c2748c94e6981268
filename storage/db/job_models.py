"""The tables of the service's durable job queues: provider fetches and playback renditions.

Both are queues in the database, not in memory, so work acknowledged to a sender or a
platform survives a restart and is shared by every replica: a job is claimed with a
lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), renewed while it runs, and claimed again
by anyone once a dead worker's lease runs out. Queries live with each queue
(fetch_queue.py, rendition_queue.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from storage.db.models import Base, UTCDateTime


class FetchState:
    """Lifecycle of a provider fetch: queued until claimed, then done or back to queued;
    dead after the last attempt, until retried (queued again) or discarded."""

    QUEUED = "queued"  # waiting for its next attempt (``next_attempt_at``)
    RUNNING = "running"  # claimed by a worker until ``lease_until``
    DONE = "done"  # fetched and stored (``recording_id``), or nothing to fetch
    DEAD = "dead"  # given up: dead-lettered for an operator, audited
    DISCARDED = "discarded"  # a dead letter an operator gave up for good, with a reason


class FetchJob(Base):
    """A recording a cloud platform announced and the service must fetch: the durable queue.

    One row per (provider, provider's recording id): a repeated callback finds it and
    queues nothing new. ``details`` is what the callback said about the call; it is
    cleared once the recording is stored.
    """

    __tablename__ = "fetch_job"
    __table_args__ = (
        UniqueConstraint("provider", "external_id", name="uq_fetch_job_provider_external"),
        Index("ix_fetch_job_due", "state", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2048))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    recording_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RenditionState:
    """Lifecycle of a playback rendition: queued when its recording is stored, running
    while a worker holds it, done once the rendition is stored; dead after the last
    attempt, until an operator retries it (the original plays meanwhile)."""

    QUEUED = "queued"  # waiting for its next attempt (``next_attempt_at``)
    RUNNING = "running"  # claimed by a worker until ``lease_until``
    DONE = "done"  # the rendition is stored with the recording
    DEAD = "dead"  # given up: logged, audited, counted in the metrics


class RenditionJob(Base):
    """The browser rendition (and nothing else) still to be made for a stored recording.

    One row per recording, committed in the same transaction that makes the recording
    ``stored``, so an acknowledged recording always has its rendition made in the end.
    ``object_id`` is the object the current claim writes: a claim that loses its lease, or
    a deletion that overtakes it, deletes that key, so no rendition outlives its recording.
    The row goes when the recording is deleted.
    """

    __tablename__ = "rendition_job"
    __table_args__ = (Index("ix_rendition_job_due", "state", "next_attempt_at"),)

    recording_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("recording.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    # The original's playable length: what the queue's wait and throughput are told in.
    audio_seconds: Mapped[float] = mapped_column(Float)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    object_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
