"""The tables of subject access requests: a case per request, and the recordings it covers.

A case is the council's answer to one person's right of access, with its statutory
clock. The requester's numbers are kept only while the case is open (they are how its
recordings were found); a closed case keeps its reference, dates and decisions as the
record of what was answered. Queries live in storage/subject_access.py.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from storage.db.models import Base, UTCDateTime


class CaseState:
    """Lifecycle of a case: open (its recordings held) until the DPO closes it."""

    OPEN = "open"
    CLOSED = "closed"


class SubjectAccessCase(Base):
    """One subject access request, from receipt to its answer."""

    __tablename__ = "subject_access_case"
    __table_args__ = (Index("ix_subject_access_case_open", "state", "deadline"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # The requester's (or the council's) reference for the request: unique, so the same
    # request is not opened twice.
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    received: Mapped[date] = mapped_column(Date)
    deadline: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(1000))
    state: Mapped[str] = mapped_column(String(16))
    # What found its recordings: {"phone_numbers": [...], "referrals": [...], dates};
    # the numbers are dropped when the case closes.
    criteria: Mapped[dict[str, Any]] = mapped_column(JSON)
    opened_by: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    extended_by: Mapped[str | None] = mapped_column(String(200))
    extended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    extension_reason: Mapped[str | None] = mapped_column(String(1000))
    closed_by: Mapped[str | None] = mapped_column(String(200))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    close_reason: Mapped[str | None] = mapped_column(String(1000))
    exports: Mapped[int] = mapped_column(Integer, default=0)


class SubjectAccessItem(Base):
    """One recording a case covers, and what the requester gets of it.

    ``redaction`` is the DPO's choice ({"keep_channel": 0|1|null, "muted": [[s, e], ...]});
    None until chosen, and the export refuses a case with a recording not yet decided.
    The row outlives the recording's deletion: the case shows that it went.
    """

    __tablename__ = "subject_access_item"

    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subject_access_case.id", ondelete="CASCADE"), primary_key=True
    )
    recording_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, index=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    redaction: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    redaction_by: Mapped[str | None] = mapped_column(String(200))
    redaction_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
