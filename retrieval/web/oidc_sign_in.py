"""Signing in to the review page through the organisation's identity provider.

The OAuth 2.0 authorization-code flow with PKCE (S256) and an OpenID Connect nonce. The
browser is sent to the IdP with a fresh state, nonce and code challenge; what the
callback needs to check them travels in a short-lived cookie signed by this service
(HMAC-SHA256; ``HttpOnly``, ``Secure``, ``SameSite=Lax`` so it comes back on the IdP's
redirect, scoped to ``/sign-in``); it holds nothing but this one sign-in's own values.
The code is exchanged on the server; the ID token's signature, issuer, audience and nonce
are checked, the access token is verified exactly as the API verifies bearer tokens, and
only then is a session started.
No token reaches the browser: it gets the session cookie and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
import jwt
from aiohttp import web

from retrieval.auth import Principal, TokenVerifier
from retrieval.errors import Unauthenticated

PENDING_COOKIE: Final = "callrec_oidc"
CALLBACK_PATH: Final = "/sign-in/callback"
# How long the trip to the IdP and back may take.
PENDING_LIFETIME_S: Final = 600
_MAX_TOKEN_ANSWER = 64 * 1024


@dataclass(frozen=True, slots=True)
class OidcClient:
    """This service as the IdP knows it, and where the IdP's endpoints are."""

    issuer: str
    client_id: str
    authorization_url: str
    token_url: str
    jwks_url: str
    # Where the IdP sends people back: this URL + /sign-in/callback (the request's own
    # origin when unset; set it behind a proxy).
    public_url: str | None = None
    scopes: tuple[str, ...] = ("openid", "profile")
    client_secret: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    timeout_s: float = 10.0


class SignInRefused(Exception):
    """The sign-in cannot finish; ``message`` is safe to show, ``status`` is the answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class OidcSignIn:
    """Starts the authorization-code flow and finishes it into a verified Principal."""

    def __init__(self, client: OidcClient, tokens: TokenVerifier, signing_key: bytes) -> None:
        self._client = client
        self._tokens = tokens
        # A key of its own, derived so the pending cookie cannot be confused with a grant.
        self._key = hashlib.sha256(b"callrec-oidc-pending\0" + signing_key).digest()
        self._jwks = jwt.PyJWKClient(
            client.jwks_url, cache_keys=True, lifespan=300, timeout=client.timeout_s
        )

    def redirect_uri(self, request: web.Request) -> str:
        """The callback URL registered at the IdP."""
        return (self._client.public_url or str(request.url.origin())) + CALLBACK_PATH

    def begin(self, request: web.Request) -> web.Response:
        """A redirect to the IdP, with the pending cookie that the callback will check."""
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        challenge = _b64(hashlib.sha256(verifier.encode("ascii")).digest())
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._client.client_id,
                "redirect_uri": self.redirect_uri(request),
                "scope": " ".join(self._client.scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        response = web.Response(
            status=303, headers={"Location": f"{self._client.authorization_url}?{query}"}
        )
        pending = {"state": state, "nonce": nonce, "verifier": verifier, "at": int(time.time())}
        response.set_cookie(
            PENDING_COOKIE,
            self._sealed(pending),
            max_age=PENDING_LIFETIME_S,
            path="/sign-in",
            secure=True,
            httponly=True,
            samesite="Lax",
        )
        return response

    async def finish(self, request: web.Request) -> Principal:
        """Check the callback, exchange the code, verify the tokens; SignInRefused if not."""
        query = request.query
        if "error" in query:
            raise SignInRefused("The identity provider did not sign you in.", 401)
        pending = self._opened(request.cookies.get(PENDING_COOKIE, ""))
        if pending is None:
            raise SignInRefused("The sign-in took too long or was not started here.", 400)
        if not secrets.compare_digest(query.get("state", ""), pending["state"]):
            raise SignInRefused("The sign-in did not match the one started here.", 400)
        code = query.get("code", "")
        if not code or len(code) > 2048:
            raise SignInRefused("The identity provider sent no code.", 400)
        answer = await self._exchange(code, pending["verifier"], self.redirect_uri(request))
        id_token, access_token = answer.get("id_token"), answer.get("access_token")
        if not isinstance(id_token, str) or not isinstance(access_token, str):
            raise SignInRefused("The identity provider sent no tokens.", 502)
        await self._check_id_token(id_token, pending["nonce"])
        try:
            return await self._tokens.verify(access_token)
        except Unauthenticated as exc:
            raise SignInRefused(f"Your access token was refused: {exc.detail}", 401) from None

    def forget(self, response: web.StreamResponse) -> None:
        """Clear the pending cookie (the sign-in finished, or failed)."""
        response.del_cookie(PENDING_COOKIE, path="/sign-in", secure=True, httponly=True)

    async def _exchange(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self._client.client_id,
            "code_verifier": verifier,
        }
        auth = None
        if self._client.client_secret is not None:
            auth = aiohttp.BasicAuth(self._client.client_id, self._client.client_secret)
        timeout = aiohttp.ClientTimeout(total=self._client.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(
                    self._client.token_url, data=form, auth=auth, allow_redirects=False
                ) as response,
            ):
                body = await response.content.read(_MAX_TOKEN_ANSWER + 1)
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            raise SignInRefused("The identity provider could not be reached.", 502) from None
        if status != 200:
            raise SignInRefused("The identity provider refused the sign-in.", 401)
        if len(body) > _MAX_TOKEN_ANSWER:
            raise SignInRefused("The identity provider's answer was too large.", 502)
        try:
            answer = json.loads(body)
        except ValueError:
            raise SignInRefused("The identity provider's answer was not JSON.", 502) from None
        if not isinstance(answer, dict):
            raise SignInRefused("The identity provider's answer was not understood.", 502)
        return answer

    async def _check_id_token(self, id_token: str, nonce: str) -> None:
        try:
            header = jwt.get_unverified_header(id_token)
            if header.get("alg") not in self._client.algorithms:
                raise jwt.InvalidAlgorithmError("algorithm not allowed")
            key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, id_token)
            claims = jwt.decode(
                id_token,
                key,
                algorithms=list(self._client.algorithms),
                audience=self._client.client_id,
                issuer=self._client.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "nonce"]},
            )
        except jwt.PyJWTError:
            raise SignInRefused("Your ID token did not verify.", 401) from None
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise SignInRefused("Your ID token was not issued for this sign-in.", 401)

    def _sealed(self, pending: dict[str, Any]) -> str:
        body = _b64(json.dumps(pending).encode())
        return f"{body}.{_b64(hmac.digest(self._key, body.encode(), 'sha256'))}"

    def _opened(self, cookie: str) -> dict[str, Any] | None:
        body, _, mac = cookie.partition(".")
        if not body or len(cookie) > 4096:
            return None
        expected = _b64(hmac.digest(self._key, body.encode(), "sha256"))
        if not hmac.compare_digest(mac, expected):
            return None
        try:
            pending = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_LIFETIME_S:
            return None
        return pending


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
