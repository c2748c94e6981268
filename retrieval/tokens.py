"""Bearer tokens of the dev auth mode: signed locally, so the service runs without an IdP."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import jwt

from retrieval.roles import ROLES
from storage import SigningKey

DEV_ISSUER = "callrec-dev"
AUDIENCE = "callrec"
MAX_TOKEN_LIFETIME = timedelta(hours=12)


def issue_dev_token(
    key: SigningKey,
    *,
    subject: str,
    role: str,
    teams: Sequence[str],
    ttl: timedelta,
    now: datetime,
) -> str:
    """A signed JWT naming one person, their role and teams; ValueError for bad claims."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if not subject.strip():
        raise ValueError("the subject must not be empty")
    if not timedelta(0) < ttl <= MAX_TOKEN_LIFETIME:
        raise ValueError("the lifetime must be between 1 second and 12 hours")
    claims = {
        "iss": DEV_ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "role": role,
        "teams": list(dict.fromkeys(teams)),
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key.private_pem, algorithm="EdDSA", headers={"kid": key.key_id})
