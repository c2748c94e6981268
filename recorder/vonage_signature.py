"""Vonage's signed webhooks: a JWT (HS256 with the account's signature secret), issued by
Vonage moments ago, whose ``payload_hash`` claim is the SHA-256 of the raw body.

Only HS256 is accepted: no ``none``, and no RS256 (Vonage's own Node helper accepts both,
which invites the classic confusion of a public key used as an HMAC secret).
"""

from __future__ import annotations

import hashlib
import hmac
import warnings
from datetime import datetime, timedelta
from typing import Any

import jwt
from jwt.warnings import InsecureKeyLengthWarning

from recorder.errors import Unauthenticated
from recorder.signatures import VONAGE_REFUSAL

TOLERANCE = timedelta(minutes=5)
_ALGORITHM = "HS256"
_MIN_SECRET_BYTES = 32


def verified_claims(token: str, secret: str) -> dict[str, Any]:
    """The claims of a token signed HS256 with ``secret``; Unauthenticated otherwise.

    Checks the algorithm and the signature only: times and the body are for ``verify``.
    """
    try:
        if jwt.get_unverified_header(token).get("alg") != _ALGORITHM:
            raise Unauthenticated(VONAGE_REFUSAL)
        with warnings.catch_warnings():
            # A short secret is refused where it is configured (VonageSignature); here
            # it must simply fail to verify.
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            claims: dict[str, Any] = jwt.decode(
                token,
                secret,
                algorithms=[_ALGORITHM],
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
    except jwt.PyJWTError:
        raise Unauthenticated(VONAGE_REFUSAL) from None
    return claims


class VonageSignature:
    """Checks webhooks signed with one Vonage signature secret."""

    def __init__(self, secret: str, *, tolerance: timedelta = TOLERANCE) -> None:
        if len(secret.encode()) < _MIN_SECRET_BYTES:
            raise ValueError("a Vonage signature secret is at least 32 bytes")
        self._secret = secret
        self._tolerance = tolerance

    def verify(self, authorization: str | None, body: bytes, *, now: datetime) -> dict[str, Any]:
        """The token's claims if it signs ``body`` and is fresh; Unauthenticated if not."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated(VONAGE_REFUSAL)
        claims = verified_claims(token.strip(), self._secret)
        if claims.get("iss") != "Vonage":
            raise Unauthenticated(VONAGE_REFUSAL)
        issued = claims.get("iat")
        if not isinstance(issued, int | float) or isinstance(issued, bool):
            raise Unauthenticated(VONAGE_REFUSAL)
        if abs(now.timestamp() - float(issued)) > self._tolerance.total_seconds():
            raise Unauthenticated(VONAGE_REFUSAL)
        expires = claims.get("exp")
        if isinstance(expires, int | float) and now.timestamp() > float(expires):
            raise Unauthenticated(VONAGE_REFUSAL)
        claimed = claims.get("payload_hash")
        digest = hashlib.sha256(body).hexdigest()
        if not isinstance(claimed, str) or not hmac.compare_digest(
            claimed.encode("utf-8", "replace"), digest.encode()
        ):
            raise Unauthenticated(VONAGE_REFUSAL)
        return claims
