"""The table of early-erasure requests: a DPO asks, a second DPO approves or rejects.

A request is kept after its decision, as the record of who asked, who decided and why;
the audit trail holds the same facts in its chain. Queries live in storage/erasure_requests.py.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from storage.db.models import Base, UTCDateTime


class ErasureState:
    """Lifecycle of an erasure request: pending until a second DPO decides it."""

    PENDING = "pending"  # asked for; nothing destroyed
    APPROVED = "approved"  # approved by another DPO; the recording's deletion began then
    REJECTED = "rejected"  # refused by another DPO, with a reason; the recording stays


class ErasureRequest(Base):
    """One DPO's request to erase one recording early, and its decision.

    At most one request per recording is pending: opening one locks the recording's row
    and looks for another first.
    """

    __tablename__ = "erasure_request"
    __table_args__ = (Index("ix_erasure_request_open", "state", "recording_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    recording_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("recording.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(1000))
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(String(1000))
