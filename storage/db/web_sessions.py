"""Server-side sessions of the review page: created at sign-in, ended at sign-out or timeout.

The cookie carries a random secret; only its hash is stored, so neither a copy of the
table nor a log line opens a session. A session ends after ``idle`` without use and,
whatever its use, at its absolute expiry.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete

from storage.db.database import Database
from storage.db.models import WebSession

# last_seen_at is written at most this often, not on every request of a playing page.
_TOUCH_EVERY: Final = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """Who a live session belongs to, and the token its forms must carry."""

    issuer: str
    subject: str
    roles: frozenset[str]
    teams: frozenset[str]
    csrf_token: str
    expires_at: datetime


class SessionStore:
    """Creates, finds and ends sessions; the clock is passed in so timeouts can be tested."""

    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self._database = database
        self._clock = clock

    async def create(
        self,
        *,
        issuer: str,
        subject: str,
        roles: Sequence[str],
        teams: Sequence[str],
        lifetime: timedelta,
    ) -> tuple[str, SessionFacts]:
        """A new session; returns the cookie's secret (shown once, never stored) and facts."""
        secret = secrets.token_urlsafe(32)
        now = self._clock()
        row = WebSession(
            id=_hash(secret),
            issuer=issuer,
            subject=subject,
            roles=sorted(roles),
            teams=sorted(teams),
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
        )
        async with self._database.transaction() as session:
            # Expired sessions go whenever a new one starts: the table stays small.
            await session.execute(delete(WebSession).where(WebSession.expires_at <= now))
            session.add(row)
        return secret, _facts(row)

    async def find(self, secret: str, *, idle: timedelta) -> SessionFacts | None:
        """The live session of ``secret``, or None (unknown, idle too long, or expired)."""
        now = self._clock()
        async with self._database.read() as session:
            row = await session.get(WebSession, _hash(secret))
        if row is None:
            return None
        if row.expires_at <= now or now - row.last_seen_at >= idle:
            await self.end(secret)
            return None
        if now - row.last_seen_at >= _TOUCH_EVERY:
            async with self._database.transaction() as session:
                found = await session.get(WebSession, row.id)
                if found is not None:
                    found.last_seen_at = now
        return _facts(row)

    async def end(self, secret: str) -> None:
        """End the session of ``secret`` (sign-out); nothing if there is none."""
        async with self._database.transaction() as session:
            await session.execute(delete(WebSession).where(WebSession.id == _hash(secret)))


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _facts(row: WebSession) -> SessionFacts:
    return SessionFacts(
        issuer=row.issuer,
        subject=row.subject,
        roles=frozenset(row.roles),
        teams=frozenset(row.teams),
        csrf_token=row.csrf_token,
        expires_at=row.expires_at,
    )
