"""Playback grants: short-lived, signed links bound to one person, recording and purpose.

A grant is stateless (an HMAC over its fields), so any replica can check it; it is
recorded in the audit trail, with its reason, before its link is handed out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from retrieval.errors import Forbidden

DEFAULT_GRANT_LIFETIME_S = 15 * 60
# A reason is read by an auditor months later: it must say something.
REASON_LENGTH = (12, 500)
"""The fewest and most characters of a reason, once its runs of whitespace are one space."""
REASON_WORDS = 3
"""The fewest different words (two letters or more) a reason holds."""
# What a refused reason is told; the review page shows the same words before it asks.
REASON_LENGTH_RULE = f"the reason must be {REASON_LENGTH[0]} to {REASON_LENGTH[1]} characters"
REASON_WORDS_RULE = "the reason must say why, in at least three different words"
_TRIVIAL = frozenset({"test", "testing", "n/a", "na", "none", "review", "check", "qa", "listen"})
_WORD = re.compile(r"[^\W\d_]{2,}")


@dataclass(frozen=True, slots=True)
class Grant:
    """Who may hear which recording, for what purpose, until when."""

    grant_id: uuid.UUID
    recording_id: uuid.UUID
    actor: str
    purpose: str
    expires_at: datetime


class InvalidGrant(Forbidden):
    """The grant is forged, altered, expired, or belongs to someone else or another recording."""


class GrantSigner:
    """Issues and checks grant tokens with one secret key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the grant key must be at least 32 bytes")
        self._key = key

    def issue(self, grant: Grant) -> str:
        """The opaque token that goes into the audio URL."""
        payload = json.dumps(
            [
                str(grant.grant_id),
                str(grant.recording_id),
                grant.actor,
                grant.purpose,
                int(grant.expires_at.timestamp()),
            ],
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def open(self, token: str, *, now: datetime) -> Grant:
        """The grant in ``token``; InvalidGrant if it is forged, altered or expired."""
        encoded, _, signature = token.partition(".")
        try:
            payload = _unb64(encoded)
            valid = hmac.compare_digest(_unb64(signature), self._mac(payload))
        except (ValueError, binascii.Error):
            raise InvalidGrant("the grant is not valid") from None
        if not valid:
            raise InvalidGrant("the grant is not valid")
        grant_id, recording_id, actor, purpose, expires = json.loads(payload)
        grant = Grant(
            uuid.UUID(grant_id),
            uuid.UUID(recording_id),
            actor,
            purpose,
            datetime.fromtimestamp(expires, UTC),
        )
        if grant.expires_at <= now:
            raise InvalidGrant("the grant has expired; ask for a new one")
        return grant

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, b"callrec-grant/v1\0" + payload, hashlib.sha256).digest()


def check_reason(reason: object) -> str:
    """The reason, trimmed, if it says something; ValueError naming what is missing."""
    if not isinstance(reason, str):
        raise ValueError("a reason is required")
    text = " ".join(reason.split())
    shortest, longest = REASON_LENGTH
    if not shortest <= len(text) <= longest:
        raise ValueError(REASON_LENGTH_RULE)
    words = _WORD.findall(text.lower())
    if len(set(words)) < REASON_WORDS or text.lower() in _TRIVIAL:
        raise ValueError(REASON_WORDS_RULE)
    return text


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
