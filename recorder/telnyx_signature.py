"""Telnyx's webhook signature: Ed25519 over ``<timestamp>|<raw body>``, fresh within 300 s.

The timestamp is checked first (cheap), then the signature; both with the raw bytes as
received, never a re-serialised body.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from recorder.errors import Unauthenticated
from recorder.signatures import TELNYX_REFUSAL
from storage import whole_number

TOLERANCE = timedelta(seconds=300)
_SIGNATURE_LENGTH = 64


class TelnyxSignature:
    """Checks webhooks signed by one Telnyx account (its public key, base64)."""

    def __init__(self, public_key: str, *, tolerance: timedelta = TOLERANCE) -> None:
        try:
            raw = base64.b64decode(public_key, validate=True)
            self._key = Ed25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("the Telnyx public key is not a base64 Ed25519 key") from exc
        self._tolerance = tolerance

    def verify(
        self, timestamp: str | None, signature: str | None, body: bytes, *, now: datetime
    ) -> None:
        """Return if the headers sign ``body`` and are fresh; raise Unauthenticated if not."""
        seconds = whole_number(timestamp)
        if seconds is None or timestamp is None or not signature or len(timestamp) > 12:
            raise Unauthenticated(TELNYX_REFUSAL)
        sent = datetime.fromtimestamp(seconds, tz=now.tzinfo)
        if abs(now - sent) > self._tolerance:
            raise Unauthenticated(TELNYX_REFUSAL)
        try:
            decoded = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise Unauthenticated(TELNYX_REFUSAL) from None
        if len(decoded) != _SIGNATURE_LENGTH:
            raise Unauthenticated(TELNYX_REFUSAL)
        try:
            self._key.verify(decoded, timestamp.encode() + b"|" + body)
        except InvalidSignature:
            raise Unauthenticated(TELNYX_REFUSAL) from None
