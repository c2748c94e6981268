"""Bearer tokens: what verifies becomes a Principal; every way a token can be wrong is a 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from retrieval import issue_dev_token
from retrieval.auth import (
    DevTokenVerifier,
    OidcSettings,
    OidcTokenVerifier,
    Principal,
    bearer_token,
)
from retrieval.errors import Unauthenticated
from storage import SigningKey, load_signing_key
from tests.oidc_provider import AUDIENCE, ISSUER, IdentityProvider

NOW = datetime.now(UTC)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A token assembled by hand, for shapes a JWT library refuses to produce."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


# Dev mode.


@pytest.fixture
def dev_key(tmp_path: Path) -> SigningKey:
    return load_signing_key(tmp_path / "dev-signing-key.pem")


@pytest.fixture
def dev(dev_key: SigningKey) -> DevTokenVerifier:
    return DevTokenVerifier(dev_key.public_pem)


def dev_claims(**changes: Any) -> dict[str, Any]:
    claims = {
        "iss": "callrec-dev",
        "aud": "callrec",
        "sub": "staff-0421",
        "role": "supervisor",
        "teams": ["mash-children"],
        "iat": int(time.time()),
        "nbf": int(time.time()),
        "exp": int(time.time()) + 600,
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def dev_token(key: SigningKey, **changes: Any) -> str:
    return jwt.encode(dev_claims(**changes), key.private_pem, algorithm="EdDSA")


async def test_an_issued_dev_token_verifies_to_its_person_role_and_teams(
    dev: DevTokenVerifier, dev_key: SigningKey
) -> None:
    token = issue_dev_token(
        dev_key,
        subject="staff-0421",
        role="safety_reviewer",
        teams=["mash-adults"],
        ttl=timedelta(minutes=5),
        # Issued at this moment: NOW is fixed at import, minutes before a long run gets here.
        now=datetime.now(UTC),
    )
    assert await dev.verify(token) == Principal(
        issuer="callrec-dev",
        subject="staff-0421",
        roles=frozenset({"safety_reviewer"}),
        teams=frozenset({"mash-adults"}),
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # Times relative to when the test runs, not to collection: a long run reaches
        # these minutes after the parameters were made.
        (lambda now: {"exp": now - 120, "iat": now - 720}, "expired"),
        (lambda now: {"nbf": now + 600, "iat": now + 600}, "not valid yet"),
        (lambda now: {"iss": "someone-else"}, "another issuer"),
        (lambda now: {"aud": "another-service"}, "another audience"),
        (lambda now: {"exp": None}, "'exp'"),
        (lambda now: {"sub": None}, "'sub'"),
        (lambda now: {"iat": None}, "'iat'"),
        (lambda now: {"role": "superuser"}, "no role"),
        (lambda now: {"role": None}, "no role"),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "wrong-issuer",
        "wrong-audience",
        "no-exp",
        "no-sub",
        "no-iat",
        "unknown-role",
        "no-role",
    ],
)
async def test_a_dev_token_that_is_wrong_in_any_way_is_refused(
    dev: DevTokenVerifier,
    dev_key: SigningKey,
    changes: Callable[[int], dict[str, Any]],
    message: str,
) -> None:
    with pytest.raises(Unauthenticated, match=message):
        await dev.verify(dev_token(dev_key, **changes(int(time.time()))))


async def test_a_clock_a_few_seconds_off_is_tolerated(
    dev: DevTokenVerifier, dev_key: SigningKey
) -> None:
    token = dev_token(dev_key, exp=int(time.time()) - 5, iat=int(time.time()) - 600)
    assert (await dev.verify(token)).subject == "staff-0421"


async def test_a_tampered_payload_is_refused(dev: DevTokenVerifier, dev_key: SigningKey) -> None:
    header, _, signature = dev_token(dev_key).split(".")
    promoted = b64(json.dumps(dev_claims(role="dpo")).encode())
    with pytest.raises(Unauthenticated, match="does not verify"):
        await dev.verify(f"{header}.{promoted}.{signature}")


async def test_a_token_signed_by_another_key_is_refused(
    dev: DevTokenVerifier, tmp_path: Path
) -> None:
    stranger = load_signing_key(tmp_path / "other" / "key.pem")
    with pytest.raises(Unauthenticated):
        await dev.verify(dev_token(stranger))


async def test_alg_none_is_refused(dev: DevTokenVerifier) -> None:
    token = forge({"alg": "none", "typ": "JWT"}, dev_claims(), lambda _: b"")
    with pytest.raises(Unauthenticated):
        await dev.verify(token)


async def test_an_hmac_token_keyed_with_the_public_key_is_refused(
    dev: DevTokenVerifier, dev_key: SigningKey
) -> None:
    token = forge(
        {"alg": "HS256", "typ": "JWT"},
        dev_claims(),
        lambda data: hmac.new(dev_key.public_pem, data, hashlib.sha256).digest(),
    )
    with pytest.raises(Unauthenticated):
        await dev.verify(token)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "token"])
def test_anything_but_a_bearer_header_is_unauthenticated(header: str | None) -> None:
    with pytest.raises(Unauthenticated):
        bearer_token(header)


def test_the_bearer_token_is_taken_from_the_header() -> None:
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer abc.def.ghi ") == "abc.def.ghi"


# OIDC mode, against a JWKS served over HTTP by a local identity provider.


@pytest.fixture
async def idp() -> AsyncIterator[tuple[IdentityProvider, str]]:
    provider = IdentityProvider()
    app = web.Application()
    app.router.add_get("/keys", provider.jwks)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield provider, str(server.make_url("/keys"))
    await server.close()


def oidc(jwks_url: str, **changes: Any) -> OidcTokenVerifier:
    settings: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwks_url": jwks_url,
        "role_claim": "roles",
        "team_claim": "groups",
    }
    settings.update(changes)
    return OidcTokenVerifier(OidcSettings(**settings))


async def test_an_idp_token_verifies_with_roles_and_teams_from_configured_claims(
    idp: tuple[IdentityProvider, str],
) -> None:
    provider, url = idp
    principal = await oidc(url).verify(provider.token())
    assert principal.roles == {"supervisor"}
    assert principal.teams == {"mash-children", "mash-adults"}
    assert principal.actor == f"{ISSUER}|7b0e4c1a-entra-object-id"


async def test_nested_role_claims_are_reached_by_a_dotted_path(
    idp: tuple[IdentityProvider, str],
) -> None:
    provider, url = idp
    token = provider.token(roles=None, realm_access={"roles": ["dpo", "offline_access"]})
    principal = await oidc(url, role_claim="realm_access.roles").verify(token)
    assert principal.roles == {"dpo"}


async def test_keys_are_cached_and_a_rotated_key_is_fetched_when_first_seen(
    idp: tuple[IdentityProvider, str],
) -> None:
    provider, url = idp
    verifier = oidc(url, jwks_refetch_cooldown_s=0.0)
    for _ in range(3):
        await verifier.verify(provider.token())
    assert provider.fetches == 1
    provider.rotate()
    assert (await verifier.verify(provider.token())).subject
    assert provider.fetches == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.token(exp=int(time.time()) - 120, iat=int(time.time()) - 900), "expired"),
        (lambda p: p.token(iss="https://login.example.test/other"), "another issuer"),
        (lambda p: p.token(aud="api://something-else"), "another audience"),
        (lambda p: p.token(sub=None), "'sub'"),
        (lambda p: p.token(roles=["offline_access"]), "no role"),
        (lambda p: p.token(kid="not-a-published-kid", roles=["auditor"]), "not known"),
    ],
    ids=["expired", "wrong-issuer", "wrong-audience", "no-sub", "no-known-role", "unknown-kid"],
)
async def test_an_idp_token_that_is_wrong_in_any_way_is_refused(
    idp: tuple[IdentityProvider, str],
    make: Callable[[IdentityProvider], str],
    message: str,
) -> None:
    provider, url = idp
    provider.keys["not-a-published-kid"] = rsa.generate_private_key(
        public_exponent=65537, key_size=2048
    )
    with pytest.raises(Unauthenticated, match=message):
        await oidc(url).verify(make(provider))


async def test_hs256_keyed_with_the_idp_public_key_and_alg_none_are_refused(
    idp: tuple[IdentityProvider, str],
) -> None:
    provider, url = idp
    claims = json.loads(base64.urlsafe_b64decode(provider.token().split(".")[1] + "=="))
    confused = forge(
        {"alg": "HS256", "kid": provider.current},
        claims,
        lambda data: hmac.new(provider.public_pem(), data, hashlib.sha256).digest(),
    )
    unsigned = forge({"alg": "none", "kid": provider.current}, claims, lambda _: b"")
    for token in (confused, unsigned):
        with pytest.raises(Unauthenticated, match="algorithm is not allowed"):
            await oidc(url).verify(token)


async def test_an_unreachable_idp_means_unauthenticated_not_a_crash() -> None:
    verifier = oidc("http://127.0.0.1:9/keys", jwks_timeout_s=1.0)
    provider = IdentityProvider()
    with pytest.raises(Unauthenticated, match="cannot be fetched"):
        await verifier.verify(provider.token())


def test_symmetric_algorithms_cannot_be_configured_for_an_idp() -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        oidc("https://login.example.test/keys", algorithms=("RS256", "HS256"))


async def test_made_up_kids_do_not_flood_the_idp_with_refetches(
    idp: tuple[IdentityProvider, str],
) -> None:
    provider, url = idp
    verifier = oidc(url)
    await verifier.verify(provider.token())
    provider.keys["made-up"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await verifier.verify(provider.token(kid="made-up"))
    assert provider.fetches <= 2
