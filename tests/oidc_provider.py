"""A local identity provider over real HTTP: JWKS, and the authorization-code flow with PKCE.

It signs tokens with RSA keys it can rotate, serves them as a JWKS, and runs ``/authorize``
(signing in a configured person at once, as a single-sign-on IdP would) and ``/token``
(checking client, redirect URI, one use per code and the S256 code verifier), so the
service's sign-in is tested against the protocol rather than a stub of itself.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://login.example.test/hub"
AUDIENCE = "api://callrec"
CLIENT_ID = "callrec-review-page"


@dataclass
class _Code:
    challenge: str
    nonce: str
    redirect_uri: str
    used: bool = False


@dataclass
class IdentityProvider:
    """Keys, the person it signs in, and what it saw."""

    subject: str = "7b0e4c1a-entra-object-id"
    roles: list[str] = field(default_factory=lambda: ["supervisor"])
    groups: list[str] = field(default_factory=lambda: ["mash-children", "mash-adults"])
    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)
    fetches: int = 0
    codes: dict[str, _Code] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    # Set to make the ID token carry another nonce than the one asked for.
    forged_nonce: str | None = None

    def __post_init__(self) -> None:
        self.rotate()

    def rotate(self) -> str:
        kid = uuid.uuid4().hex[:12]
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published = [kid]
        return kid

    @property
    def current(self) -> str:
        return self.published[-1]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/keys", self.jwks)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.exchange)
        return app

    async def jwks(self, _request: web.Request) -> web.Response:
        self.fetches += 1
        keys = []
        for kid in self.published:
            jwk = RSAAlgorithm.to_jwk(self.keys[kid].public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        return web.json_response({"keys": keys})

    def token(self, kid: str | None = None, **changes: Any) -> str:
        """An access token for the API (or any token, with ``changes``)."""
        kid = kid or self.current
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": self.subject,
            "roles": self.roles,
            "groups": self.groups,
            "iat": int(time.time()),
            "exp": int(time.time()) + 600,
        }
        claims.update(changes)
        claims = {key: value for key, value in claims.items() if value is not None}
        return jwt.encode(claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def public_pem(self) -> bytes:
        return (
            self.keys[self.current]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    async def authorize(self, request: web.Request) -> web.Response:
        query = request.query
        if (
            query.get("response_type") != "code"
            or query.get("client_id") != CLIENT_ID
            or query.get("code_challenge_method") != "S256"
            or not query.get("code_challenge")
            or not query.get("redirect_uri")
            or "openid" not in query.get("scope", "").split()
        ):
            self.refused.append("authorize")
            return web.json_response({"error": "invalid_request"}, status=400)
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Code(
            query["code_challenge"], query.get("nonce", ""), query["redirect_uri"]
        )
        back = urlencode({"code": code, "state": query.get("state", "")})
        return web.Response(status=302, headers={"Location": f"{query['redirect_uri']}?{back}"})

    async def exchange(self, request: web.Request) -> web.Response:
        form = await request.post()
        code = self.codes.get(str(form.get("code", "")))
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if (
            form.get("grant_type") != "authorization_code"
            or form.get("client_id") != CLIENT_ID
            or code is None
            or code.used
            or form.get("redirect_uri") != code.redirect_uri
            or challenge.rstrip(b"=").decode() != code.challenge
        ):
            self.refused.append("token")
            return web.json_response({"error": "invalid_grant"}, status=400)
        code.used = True
        id_token = self.token(aud=CLIENT_ID, nonce=self.forged_nonce or code.nonce, roles=None)
        return web.json_response(
            {"token_type": "Bearer", "id_token": id_token, "access_token": self.token()}
        )
