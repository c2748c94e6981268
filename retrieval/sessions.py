"""Sessions of the review page: the cookie, its timeouts, and who it makes the request.

A person signs in once (a dev token in ``dev`` mode, the IdP in ``oidc`` mode) and the
page then works through a session cookie: ``HttpOnly`` (no script reads it), ``Secure``,
``SameSite=Strict`` and scoped to ``/``. No token ever travels in a URL or sits in the
browser's storage. A request made with the cookie that changes anything must also carry
the session's CSRF token in ``X-CSRF-Token`` (forms: a hidden ``csrf_token`` field).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Protocol

from aiohttp import web

from retrieval.auth import Principal
from storage import SessionFacts

SESSION_COOKIE: Final = "callrec_session"
CSRF_HEADER: Final = "X-CSRF-Token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


class SessionKeeper(Protocol):
    """Where sessions live (storage's SessionStore)."""

    async def create(
        self,
        *,
        issuer: str,
        subject: str,
        roles: list[str],
        teams: list[str],
        lifetime: timedelta,
    ) -> tuple[str, SessionFacts]: ...

    async def find(self, secret: str, *, idle: timedelta) -> SessionFacts | None: ...

    async def end(self, secret: str) -> None: ...


@dataclass(frozen=True, slots=True)
class SessionRules:
    """How long a session lasts unused (``idle``) and at most (``lifetime``)."""

    idle: timedelta = timedelta(minutes=15)
    lifetime: timedelta = timedelta(hours=8)


class WebSessions:
    """Starts, finds and ends the sessions behind the cookie."""

    def __init__(self, keeper: SessionKeeper, rules: SessionRules) -> None:
        self._keeper = keeper
        self._rules = rules

    async def start(self, principal: Principal, response: web.StreamResponse) -> SessionFacts:
        """A fresh session for ``principal``, its cookie set on ``response``."""
        secret, facts = await self._keeper.create(
            issuer=principal.issuer,
            subject=principal.subject,
            roles=sorted(principal.roles),
            teams=sorted(principal.teams),
            lifetime=self._rules.lifetime,
        )
        response.set_cookie(
            SESSION_COOKIE,
            secret,
            max_age=int(self._rules.lifetime.total_seconds()),
            path="/",
            secure=True,
            httponly=True,
            samesite="Strict",
        )
        return facts

    async def current(self, request: web.Request) -> tuple[Principal, SessionFacts] | None:
        """Who the request's session cookie names, if the session is live."""
        secret = request.cookies.get(SESSION_COOKIE)
        if not secret or len(secret) > 128:
            return None
        facts = await self._keeper.find(secret, idle=self._rules.idle)
        if facts is None:
            return None
        principal = Principal(
            issuer=facts.issuer, subject=facts.subject, roles=facts.roles, teams=facts.teams
        )
        return principal, facts

    async def end(self, request: web.Request, response: web.StreamResponse) -> None:
        """End the request's session and clear its cookie."""
        secret = request.cookies.get(SESSION_COOKIE)
        if secret and len(secret) <= 128:
            await self._keeper.end(secret)
        response.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")


def csrf_matches(facts: SessionFacts, offered: str | None) -> bool:
    """Whether ``offered`` is this session's CSRF token (compared in constant time)."""
    return offered is not None and hmac.compare_digest(offered, facts.csrf_token)
