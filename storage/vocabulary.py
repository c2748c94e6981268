"""The names and two small rules that capture, retention and retrieval must agree on.

Only what several features share lives here: a rule that one feature owns stays in that
feature. Kept free of I/O and of any other storage module, so anything may import it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

SUBJECT_ACCESS_HOLD = "subject_access_pending"
"""The hold an open subject access case keeps on each recording it covers."""

HOLD_KINDS = ("staff_safety_incident", SUBJECT_ACCESS_HOLD, "legal")
"""Why a recording may outlive its deadline: the only kinds of hold the hub's policy allows."""

RETENTION_ACTOR = "retention"
"""The actor the audit trail names for what the retention cycle does by itself."""

PAST_RETENTION = "past_retention"
"""Why a delivery is discarded rather than stored: its call is already past its deadline."""

MAX_MUTED_RANGES = 100
"""The most stretches a subject access copy of one recording may have muted: what the DPO
may choose and what a media worker applies. More is not a redaction of a call but a way
to keep a worker busy."""


def retention_deadline(started_at: datetime, period: timedelta) -> datetime:
    """When a call that started at ``started_at`` must be gone: fixed once, at capture."""
    return started_at + period


def past_retention(started_at: datetime, period: timedelta, now: datetime) -> bool:
    """True when a call arriving ``now`` is already due for deletion, so is not stored."""
    return retention_deadline(started_at, period) <= now


WHOLE_NUMBER_DIGITS = 18
"""The most digits a whole number in a request or callback may have: every count, limit,
duration and delay the service reads fits, and nothing longer is worth converting."""


def whole_number(text: str | None) -> int | None:
    """``text`` as a non-negative whole number when it is 1 to 18 ASCII digits, else None.

    The one rule for numbers that arrive as text (query strings, form fields, headers):
    ``str.isdigit`` also accepts superscripts and other scripts' digits, which ``int``
    then refuses or reads, so only 0-9 count.
    """
    if text is None or not 0 < len(text) <= WHOLE_NUMBER_DIGITS:
        return None
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def rfc3339(moment: datetime) -> str:
    """An aware moment as RFC 3339 text in UTC with a ``Z``: the one way times are written."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
