"""Who is asking: bearer JWTs verified against the dev signing key or the organisation's IdP.

Only verification lives here; what a verified person may do is the policy's business.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import jwt

from retrieval.errors import Unauthenticated
from retrieval.roles import ROLES
from retrieval.tokens import AUDIENCE, DEV_ISSUER

# Asymmetric algorithms only: with a public key set, an HMAC algorithm would let anyone
# holding the public key mint tokens (the classic RS/HS confusion).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
DEFAULT_LEEWAY = timedelta(seconds=30)
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified person: a stable id, the contract roles they hold, and their teams."""

    issuer: str
    subject: str
    roles: frozenset[str]
    teams: frozenset[str]

    @property
    def actor(self) -> str:
        """How the audit trail names them: issuer and subject, never reassigned."""
        return f"{self.issuer}|{self.subject}"


class TokenVerifier(Protocol):
    """What the API needs to turn a bearer token into a Principal."""

    async def verify(self, token: str) -> Principal: ...


class DevTokenVerifier:
    """Tokens signed by ``callrec token issue`` with the key in the data directory."""

    def __init__(self, public_pem: bytes, *, leeway: timedelta = DEFAULT_LEEWAY) -> None:
        self._key = public_pem
        self._leeway = leeway

    async def verify(self, token: str) -> Principal:
        """Raise Unauthenticated unless the token is a valid dev token."""
        claims = _decode(token, self._key, ["EdDSA"], DEV_ISSUER, AUDIENCE, self._leeway)
        return _principal(claims, role_claim="role", team_claim="teams")


@dataclass(frozen=True, slots=True)
class OidcSettings:
    """The identity provider as configured; claim names are dotted paths into the token."""

    issuer: str
    audience: str
    jwks_url: str
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    role_claim: str = "roles"
    team_claim: str = "teams"
    leeway: timedelta = DEFAULT_LEEWAY
    jwks_timeout_s: float = 5.0
    # After a fetch, unknown kids wait this long before the next: tokens with made-up
    # kids must not turn into a flood of requests to the IdP.
    jwks_refetch_cooldown_s: float = 30.0


class OidcTokenVerifier:
    """Tokens from the organisation's IdP (Entra ID, Keycloak, ...), keys from its JWKS.

    Keys are cached by ``kid``; a token naming an unknown ``kid`` refetches the key set
    (at most once per cooldown), so a key rotation at the IdP needs no restart.
    """

    def __init__(self, settings: OidcSettings) -> None:
        unsafe = set(settings.algorithms) - ASYMMETRIC_ALGORITHMS
        if unsafe or not settings.algorithms:
            raise ValueError(f"only asymmetric algorithms are allowed, not {sorted(unsafe)}")
        self._settings = settings
        self._jwks = jwt.PyJWKClient(
            settings.jwks_url,
            cache_keys=True,
            lifespan=300,
            timeout=settings.jwks_timeout_s,
            cooldown_duration=settings.jwks_refetch_cooldown_s,
        )

    async def verify(self, token: str) -> Principal:
        """Raise Unauthenticated unless the token verifies against the IdP's current keys."""
        settings = self._settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is malformed") from None
        if header.get("alg") not in settings.algorithms:
            raise Unauthenticated("the token's algorithm is not allowed")
        try:
            # PyJWKClient does blocking HTTP on a cache miss.
            signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError:
            raise Unauthenticated("the identity provider's keys cannot be fetched") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token's signing key is not known") from None
        claims = _decode(
            token,
            signing_key,
            list(settings.algorithms),
            settings.issuer,
            settings.audience,
            settings.leeway,
        )
        return _principal(claims, role_claim=settings.role_claim, team_claim=settings.team_claim)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer ...`` header; Unauthenticated otherwise."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send Authorization: Bearer <token>")
    return token.strip()


def _decode(
    token: str,
    key: Any,
    algorithms: list[str],
    issuer: str,
    audience: str,
    leeway: timedelta,
) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            issuer=issuer,
            audience=audience,
            leeway=leeway,
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise Unauthenticated("the token is not valid yet") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthenticated(f"the token lacks the {exc.claim!r} claim") from None
    except jwt.InvalidIssuerError:
        raise Unauthenticated("the token is from another issuer") from None
    except jwt.InvalidAudienceError:
        raise Unauthenticated("the token is for another audience") from None
    except jwt.PyJWTError:
        raise Unauthenticated("the token does not verify") from None
    return claims


def _principal(claims: Mapping[str, Any], *, role_claim: str, team_claim: str) -> Principal:
    roles = {role for role in _strings(_claim(claims, role_claim)) if role in ROLES}
    if not roles:
        raise Unauthenticated("the token carries no role this service knows")
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise Unauthenticated("the token's subject is not a string")
    return Principal(
        issuer=str(claims["iss"]),
        subject=subject,
        roles=frozenset(roles),
        teams=frozenset(_strings(_claim(claims, team_claim))),
    )


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    # Dotted paths reach nested claims, e.g. Keycloak's "realm_access.roles".
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _strings(value: Any) -> Sequence[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []
