"""HMAC-SHA256 signatures of the generic push webhook, checked over the streamed raw body."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta

from recorder.errors import Unauthenticated

MAX_CLOCK_SKEW = timedelta(seconds=300)
_SIGNATURE = re.compile(r"v1=([0-9a-f]{64})")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
REFUSAL = (
    "unknown source, or X-Callrec-Signature / X-Callrec-Timestamp missing, wrong, "
    "or more than 300 s from server time"
)
"""The signed push's one answer to a delivery it cannot trust; each provider's callback
names its own headers instead (``TWILIO_REFUSAL``, ``TELNYX_REFUSAL``, ``VONAGE_REFUSAL``)."""
TWILIO_REFUSAL = (
    "X-Twilio-Signature missing or wrong for this URL and these fields, or another "
    "account's callback (the URL signed is CALLREC_PUBLIC_URL + the path and query)"
)
TELNYX_REFUSAL = (
    "telnyx-signature-ed25519 / telnyx-timestamp missing, wrong, "
    "or more than 300 s from server time"
)
VONAGE_REFUSAL = "the Authorization bearer JWT is missing, wrong, expired or not for this body"


class PushSignatureCheck:
    """Checks ``X-Callrec-Signature`` while the body streams past, without buffering it.

    The header shape and the timestamp window are checked up front, so a stale or
    unsigned delivery is refused before a byte of its body is read.
    """

    def __init__(
        self, secret: bytes, *, timestamp: str | None, signature: str | None, now: datetime
    ) -> None:
        # One message for every way to fail, the same for a known and an unknown source,
        # so the answer never tells a stranger which source names exist.
        if not timestamp or not _TIMESTAMP.fullmatch(timestamp):
            raise Unauthenticated(REFUSAL)
        if abs(now.timestamp() - int(timestamp)) > MAX_CLOCK_SKEW.total_seconds():
            raise Unauthenticated(REFUSAL)
        match = _SIGNATURE.fullmatch(signature or "")
        if match is None:
            raise Unauthenticated(REFUSAL)
        self._expected = match.group(1)
        self._mac = hmac.new(secret, timestamp.encode() + b".", hashlib.sha256)

    def update(self, chunk: bytes) -> None:
        """Feed the next raw body bytes, exactly as received."""
        self._mac.update(chunk)

    def verify(self) -> None:
        """Raise Unauthenticated unless the signature matches the whole body."""
        if not hmac.compare_digest(self._mac.hexdigest(), self._expected):
            raise Unauthenticated(REFUSAL)


def preauthenticated(
    secret: bytes,
    *,
    header: str | None,
    timestamp: str | None,
    content_length: int | None,
    source: str,
) -> bool:
    """Whether ``X-Callrec-Preauth`` vouches for this upload before its body is read.

    False when there is none (the sender signs only its body, as it always could);
    Unauthenticated when there is one that is wrong, or without a length to bind it to.
    Called after PushSignatureCheck, so the timestamp is known to be fresh.
    """
    if header is None:
        return False
    match = _SIGNATURE.fullmatch(header)
    if match is None or timestamp is None or content_length is None:
        raise Unauthenticated(REFUSAL)
    expected = _preauth_digest(secret, int(timestamp), content_length, source)
    if not hmac.compare_digest(match.group(1), expected):
        raise Unauthenticated(REFUSAL)
    return True


def _preauth_digest(secret: bytes, timestamp: int, content_length: int, source: str) -> str:
    message = f"preauth.{timestamp}.{content_length}.{source}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign_preauth(secret: bytes, timestamp: int, content_length: int, source: str) -> str:
    """The ``X-Callrec-Preauth`` value a sender computes before sending its body."""
    return f"v1={_preauth_digest(secret, timestamp, content_length, source)}"


def sign_push(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Callrec-Signature`` value a sender computes; for senders' scripts and tests."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"
