"""Reading what a DPO sends about a data subject: numbers, referrals, dates, redactions.

Numbers arrive only in POST bodies (never in a URL, where proxies and logs keep them),
are normalised to E.164 by the one rule capture stores them by, and are never echoed in
an error: the message names the field and its position, not the value.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from retrieval.errors import Unprocessable
from retrieval.grants import check_reason
from retrieval.parsing import REFERENCE
from storage import MAX_MUTED_RANGES, e164

MAX_NUMBERS = 10
MAX_REFERRALS = 20
MAX_REQUEST_REFERENCE = 64


def reason_of(body: dict[str, Any]) -> str:
    """The body's reason, by the rule every audited action uses."""
    try:
        return check_reason(body.get("reason"))
    except ValueError as exc:
        raise Unprocessable(str(exc)) from None


def numbers_of(body: dict[str, Any], region: str, *, required: bool = False) -> tuple[str, ...]:
    """``phone_numbers``: up to 10, each a phone number, as E.164."""
    raw = body.get("phone_numbers", [])
    if not isinstance(raw, list) or len(raw) > MAX_NUMBERS:
        raise Unprocessable(f"phone_numbers must be a list of at most {MAX_NUMBERS} numbers")
    if required and not raw:
        raise Unprocessable("phone_numbers must name at least one number")
    found = []
    for index, text in enumerate(raw):
        number = e164(text, region) if isinstance(text, str) else None
        if number is None:
            raise Unprocessable(
                f"phone_numbers[{index}] is not a phone number "
                "(E.164 such as +442079460000, or a national number)"
            )
        found.append(number)
    return tuple(dict.fromkeys(found))


def referrals_of(body: dict[str, Any]) -> tuple[str, ...]:
    """``referrals``: up to 20 referral references."""
    raw = body.get("referrals", [])
    if not isinstance(raw, list) or len(raw) > MAX_REFERRALS:
        raise Unprocessable(f"referrals must be a list of at most {MAX_REFERRALS} references")
    for index, text in enumerate(raw):
        if not isinstance(text, str) or not REFERENCE.fullmatch(text):
            raise Unprocessable(f"referrals[{index}] is not a referral reference")
    return tuple(dict.fromkeys(raw))


def moment_of(body: dict[str, Any], name: str) -> datetime | None:
    """An RFC 3339 time with a zone, or None when absent."""
    value = body.get(name)
    if value is None:
        return None
    wrong = f"{name} must be an RFC 3339 time with a time zone"
    if not isinstance(value, str) or len(value) > 40:
        raise Unprocessable(wrong)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Unprocessable(wrong) from None
    if moment.tzinfo is None:
        raise Unprocessable(wrong)
    return moment


def day_of(body: dict[str, Any], name: str) -> date:
    """A required calendar date (``2026-12-01``)."""
    value = body.get(name)
    if not isinstance(value, str) or len(value) != 10:
        raise Unprocessable(f"{name} must be a date such as 2026-12-01")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Unprocessable(f"{name} must be a date such as 2026-12-01") from None


def request_reference_of(body: dict[str, Any]) -> str:
    """The request's reference: 1-64 letters, digits, / _ . - (as referrals are written)."""
    value = body.get("reference")
    if not isinstance(value, str) or not REFERENCE.fullmatch(value):
        raise Unprocessable(
            "reference must be 1-64 letters, digits, / _ . - (letter or digit first)"
        )
    return value


def redaction_of(
    body: dict[str, Any], *, channels: int | None, duration_s: float | None
) -> dict[str, Any]:
    """What the requester gets of one recording: one channel kept, ranges muted.

    ``keep_channel`` is the requester's channel of a two-channel call (0 or 1; the other
    is silenced) or null for every channel; ``muted`` is a list of [start, end] seconds,
    each within the recording, silenced on every channel. Overlapping ranges are merged.
    """
    keep = body.get("keep_channel")
    if keep is not None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep not in (0, 1):
            raise Unprocessable("keep_channel must be 0, 1 or null")
        if channels is not None and channels != 2:
            raise Unprocessable(
                f"keep_channel needs a two-channel recording; this one has {channels}"
            )
    raw = body.get("muted", [])
    if not isinstance(raw, list) or len(raw) > MAX_MUTED_RANGES:
        raise Unprocessable(f"muted must be a list of at most {MAX_MUTED_RANGES} ranges")
    ranges: list[tuple[float, float]] = []
    for index, item in enumerate(raw):
        if not (
            isinstance(item, list)
            and len(item) == 2
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in item)
        ):
            raise Unprocessable(f"muted[{index}] must be [start, end] in seconds")
        start, end = float(item[0]), float(item[1])
        if not 0 <= start < end:
            raise Unprocessable(f"muted[{index}] must start at 0 or later and end after it starts")
        if duration_s is not None and start >= duration_s:
            raise Unprocessable(f"muted[{index}] starts after the recording ends")
        ranges.append((start, min(end, duration_s) if duration_s is not None else end))
    merged: list[list[float]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return {"keep_channel": keep, "muted": merged}
