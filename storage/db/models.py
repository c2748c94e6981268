"""SQLAlchemy 2 tables of the metadata database; no queries here (see repository.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so the same migrations work on SQLite (batch mode) and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend.

    SQLite has no time zones and hands back naive values; comparing those with aware
    deadlines would raise or, worse, silently shift a retention deadline.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RecordingState:
    """Lifecycle of a recording row; only ``STORED`` rows are visible to readers."""

    PENDING = "pending"  # idempotency key claimed, object being written
    STORED = "stored"  # object durable, keys committed, audited
    DELETING = "deleting"  # keys destroyed, object versions being removed
    DELETED = "deleted"  # tombstone without personal data


class Recording(Base):
    """One call recording and the facts about the call it holds."""

    __tablename__ = "recording"
    __table_args__ = (
        UniqueConstraint("source", "source_recording_id", name="uq_recording_source_id"),
        Index("ix_recording_team_started", "team", "started_at"),
        Index("ix_recording_deadline", "state", "retention_deadline"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    source_recording_id: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    direction: Mapped[str | None] = mapped_column(String(16))
    from_number: Mapped[str | None] = mapped_column(String(64))
    to_number: Mapped[str | None] = mapped_column(String(64))
    agent: Mapped[str | None] = mapped_column(String(128))
    team: Mapped[str | None] = mapped_column(String(128))
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    container: Mapped[str | None] = mapped_column(String(32))
    codec: Mapped[str | None] = mapped_column(String(32))
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    # What decodes (the playable length); the header's own claim when it differs.
    duration_s: Mapped[float | None] = mapped_column(Float)
    declared_duration_s: Mapped[float | None] = mapped_column(Float)
    # What was wrong with audio that was kept anyway: [{"code": ..., "detail": ...}].
    audio_problems: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    retention_deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stored_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The format marker of its data keys: NULL for a recording stored before key shares
    # (its data_key rows hold the keys themselves); otherwise the digest of the share in
    # the object store that unmasks them (storage/keys/key_shares.py), and that share's
    # store version where the store has versions, so deletion names that exact version.
    key_share_digest: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_share_version_id: Mapped[str | None] = mapped_column(String(1024))

    objects: Mapped[list[StoredObject]] = relationship(
        back_populates="recording", cascade="all, delete-orphan", lazy="selectin"
    )
    referrals: Mapped[list[Referral]] = relationship(
        secondary="recording_referral", lazy="selectin", order_by="Referral.reference"
    )


PERSONAL_FIELDS: tuple[str, ...] = ("from_number", "to_number", "agent", "extra")
"""The columns of ``Recording`` that are personal data: who called whom, who took the call,
and whatever else the provider sent about it. Deletion nulls exactly these, and what stays
is the tombstone (source, times, deadline, team, audio facts) that proves the deletion.
Every name must be a nullable column; ``personal_columns`` refuses anything else, at import
and at every deletion. Linked rows that are personal (referral links, no-referral decisions,
waveform peaks) are in ``PERSONAL_ROWS``."""


def personal_columns() -> tuple[str, ...]:
    """``PERSONAL_FIELDS``, each checked to be a nullable column of ``Recording``.

    A name that is no column, or a column that cannot be NULL, would otherwise leave
    personal data behind in silence; it is a ValueError instead.
    """
    columns = Recording.__mapper__.columns
    for name in PERSONAL_FIELDS:
        if name not in columns:
            raise ValueError(f"PERSONAL_FIELDS names {name!r}, which is not a recording column")
        if not columns[name].nullable:
            raise ValueError(
                f"PERSONAL_FIELDS names {name!r}, which is NOT NULL: it cannot be emptied"
            )
    return PERSONAL_FIELDS


class Referral(Base):
    """A safeguarding referral, known by the hub's own reference (e.g. MASH-2026-004211)."""

    __tablename__ = "referral"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(64), unique=True)


class RecordingReferral(Base):
    """Many-to-many link between recordings and referrals, with who linked it and when."""

    __tablename__ = "recording_referral"

    recording_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("recording.id", ondelete="CASCADE"), primary_key=True
    )
    referral_id: Mapped[int] = mapped_column(
        ForeignKey("referral.id", ondelete="CASCADE"), primary_key=True
    )
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    linked_by: Mapped[str] = mapped_column(String(200))


class RecordingNoReferral(Base):
    """A supervisor's decision that a recording linked to no referral needs none, and why.

    At most one per recording. The reason is free text that may describe the call, so it
    is personal: deletion removes the row (``PERSONAL_ROWS``).
    """

    __tablename__ = "recording_no_referral"

    recording_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("recording.id", ondelete="CASCADE"), primary_key=True
    )
    reason: Mapped[str] = mapped_column(String(1000))
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StoredObject(Base):
    """One encrypted object in the object store, with the facts needed to trust it.

    ``id`` is also the object id bound into the ciphertext, so a segment moved between
    objects fails authentication.
    """

    __tablename__ = "stored_object"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    recording_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("recording.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # ObjectKind: "original" or "playback"
    object_key: Mapped[str] = mapped_column(String(255), unique=True)
    content_type: Mapped[str] = mapped_column(String(64))
    plaintext_size: Mapped[int] = mapped_column(BigInteger)
    plaintext_sha256: Mapped[str] = mapped_column(String(64))
    # The trusted length: reads refuse an object whose stored size differs from this.
    ciphertext_size: Mapped[int] = mapped_column(BigInteger)
    # The store's version of the object (S3 VersionId), so deletion can name it exactly.
    version_id: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    recording: Mapped[Recording] = relationship(back_populates="objects")
    data_key: Mapped[DataKey | None] = relationship(
        back_populates="stored_object", cascade="all, delete-orphan", lazy="selectin"
    )


class RecordingPeaks(Base):
    """Waveform peaks of a recording, for drawing: min/max per channel per time bucket.

    ``data`` holds signed bytes, bucket by bucket: for each channel its min then max,
    scaled to -127..127. Deleted with the recording's personal data.
    """

    __tablename__ = "recording_peaks"

    recording_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("recording.id", ondelete="CASCADE"), primary_key=True
    )
    per_second: Mapped[float] = mapped_column(Float)
    channels: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


PERSONAL_ROWS: tuple[
    type[RecordingReferral] | type[RecordingNoReferral] | type[RecordingPeaks], ...
] = (
    RecordingReferral,
    RecordingNoReferral,
    RecordingPeaks,
)
"""Rows about a recording that are personal (which cases it belongs to, why it belongs to
none, what its audio looks like); deletion deletes every one of them, keyed by
``recording_id``."""

personal_columns()


class RecordingHold(Base):
    """One hold on a recording: in force from placing until released or its review date.

    At most one hold of each kind is in force per recording; renewing it replaces the
    reason and review date (the audit trail keeps the history).
    """

    __tablename__ = "recording_hold"
    __table_args__ = (Index("ix_recording_hold_active", "recording_id", "released_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    recording_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("recording.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(1000))
    review_by: Mapped[datetime] = mapped_column(UTCDateTime)
    placed_by: Mapped[str] = mapped_column(String(200))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_by: Mapped[str | None] = mapped_column(String(200))


class DataKey(Base):
    """The wrapped data key of one object; it lives only here, so deleting it shreds the object.

    ``kek_id`` names the key it is wrapped under: an epoch key (``ep-...``, see EpochKey),
    or, for keys wrapped before epochs existed, a root key-encryption key.
    """

    __tablename__ = "data_key"
    __table_args__ = (Index("ix_data_key_kek_id", "kek_id"),)

    object_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("stored_object.id", ondelete="CASCADE"), primary_key=True
    )
    kek_id: Mapped[str] = mapped_column(String(64))
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    stored_object: Mapped[StoredObject] = relationship(back_populates="data_key")


class EpochKey(Base):
    """What is known about one epoch key: never the key itself.

    The key, wrapped by the root key-encryption key, lives in the epoch-key store outside
    this database, so destroying it there shreds every data key of its epoch in every copy
    of this database as well. ``epoch`` is an ISO week of call start (``2026-W48``) or
    ``hold``; ``generation`` is the rotation it belongs to.
    """

    __tablename__ = "epoch_key"
    __table_args__ = (Index("ix_epoch_key_epoch", "epoch", "generation"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[str] = mapped_column(String(16))
    generation: Mapped[int] = mapped_column(Integer)
    root_kek_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class KeyRotation(Base):
    """One rotation: from ``rotated_at``, new data keys go under epoch keys of ``generation``."""

    __tablename__ = "key_rotation"

    generation: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    root_kek_id: Mapped[str] = mapped_column(String(64))
    rotated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rotated_by: Mapped[str] = mapped_column(String(200))


class SharedSecret(Base):
    """A secret every replica must agree on (grant signing, token and receipt signing keys).

    Held wrapped by the root key-encryption-key provider (the KMS in production), bound to
    its ``name``, so this table alone opens nothing. Created once: the first replica to
    start inserts it, every other reads the same row back.
    """

    __tablename__ = "shared_secret"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kek_id: Mapped[str] = mapped_column(String(64))
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReceiptKey(Base):
    """The public half of a key that has signed deletion receipts: append-only, never edited.

    Every receipt names its ``key_id``; with this list a receipt verifies on any replica,
    and after the key that signed it has been replaced.
    """

    __tablename__ = "receipt_key"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_pem: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebSession(Base):
    """A signed-in person's session on the review page; the cookie holds the secret.

    ``id`` is the SHA-256 of the cookie's value, so a copy of this table opens no session.
    """

    __tablename__ = "web_session"
    __table_args__ = (Index("ix_web_session_expires", "expires_at"),)

    id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(JSON)
    teams: Mapped[list[str]] = mapped_column(JSON)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    """One append-only, hash-chained audit event (see audit.py for the hashing)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_recording", "recording_id"),
        Index("ix_audit_event_actor", "actor"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    recording_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # no FK: outlives deletion
    purpose: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    details_sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    leaf: Mapped[bytes] = mapped_column(LargeBinary(32))
    chain: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditHead(Base):
    """The single row holding the chain's tip; locking it serialises appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    chain: Mapped[bytes] = mapped_column(LargeBinary(32))


# The job queues' tables live in job_models.py, the erasure requests' in erasure_models.py.
# Importing them here registers them with ``Base.metadata`` wherever the schema is used
# (migrations, the tests' clean-up).
from storage.db import erasure_models as _erasure_models  # noqa: E402,F401
from storage.db import job_models as _job_models  # noqa: E402,F401
from storage.db import sar_models as _sar_models  # noqa: E402,F401
