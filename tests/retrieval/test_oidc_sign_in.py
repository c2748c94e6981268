"""Signing in to the page through the IdP: authorization code with PKCE, state and nonce.

Against a local IdP over real HTTP (tests/oidc_provider.py) that checks the client, the
redirect URI, one use per code and the S256 verifier. Each refusal is shown on the sign-in
page with the right status, and no session is started.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser

from tests.oidc_provider import AUDIENCE, CLIENT_ID, ISSUER, IdentityProvider
from tests.service_support import RunningService, running_service


@dataclass
class Hub:
    service: RunningService
    idp: IdentityProvider
    idp_url: str

    @property
    def base(self) -> str:
        return str(self.service.client.make_url("")).rstrip("/")

    async def start(self) -> str:
        """Begin a sign-in at the service; the IdP authorize URL it sends the browser to."""
        response = await self.service.client.get("/sign-in/oidc", allow_redirects=False)
        assert response.status == 303
        cookie = SimpleCookie(response.headers["Set-Cookie"])["callrec_oidc"]
        assert cookie["httponly"]
        assert cookie["secure"]
        assert cookie["samesite"] == "Lax"
        assert cookie["path"] == "/sign-in"
        return response.headers["Location"]

    async def at_idp(self, authorize_url: str) -> str:
        """What the IdP redirects back to: the callback path and query on the service."""
        async with (
            aiohttp.ClientSession() as browser,
            browser.get(authorize_url, allow_redirects=False) as answer,
        ):
            assert answer.status == 302, await answer.text()
            back = urlsplit(answer.headers["Location"])
        assert f"{back.scheme}://{back.netloc}" == self.base
        return f"{back.path}?{back.query}"

    async def signed_in(self) -> bool:
        return (await self.service.client.get("/api/v1/recordings")).status == 200


@pytest.fixture
async def hub(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Hub]:
    idp = IdentityProvider()
    server = TestServer(idp.app(), host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    try:
        async with running_service(
            tmp_path / "var",
            sqlite_url,
            auth_mode="oidc",
            oidc_issuer=ISSUER,
            oidc_audience=AUDIENCE,
            oidc_jwks_url=f"{url}/keys",
            oidc_client_id=CLIENT_ID,
            oidc_authorization_url=f"{url}/authorize",
            oidc_token_url=f"{url}/token",
            oidc_team_claim="groups",
        ) as service:
            yield Hub(service, idp, url)
    finally:
        await server.close()


async def test_the_authorization_code_flow_with_pkce_starts_a_session(hub: Hub) -> None:
    page = await hub.service.client.get("/sign-in")
    assert 'href="/sign-in/oidc"' in await page.text()
    authorize = await hub.start()
    asked = parse_qs(urlsplit(authorize).query)
    assert authorize.startswith(f"{hub.idp_url}/authorize?")
    assert asked["response_type"] == ["code"]
    assert asked["client_id"] == [CLIENT_ID]
    assert asked["code_challenge_method"] == ["S256"]
    assert len(asked["code_challenge"][0]) == 43  # base64url of a SHA-256
    assert asked["redirect_uri"] == [f"{hub.base}/sign-in/callback"]
    assert len(asked["state"][0]) >= 32
    assert len(asked["nonce"][0]) >= 32

    callback = await hub.at_idp(authorize)
    finished = await hub.service.client.get(callback)
    assert finished.status == 200
    assert 'http-equiv="refresh"' in await finished.text()
    assert await hub.signed_in()
    home = await hub.service.client.get("/")
    assert hub.idp.subject in await home.text()
    # The code worked once; the same callback again finds no sign-in waiting for it.
    again = await hub.service.client.get(callback)
    assert again.status == 400


async def test_a_callback_with_another_state_is_refused(hub: Hub) -> None:
    callback = await hub.at_idp(await hub.start())
    path, _, query = callback.partition("?")
    forged = {**{k: v[0] for k, v in parse_qs(query).items()}, "state": "someone-elses"}
    answer = await hub.service.client.get(path, params=forged)
    assert answer.status == 400
    assert "did not match" in await answer.text()
    assert not await hub.signed_in()


async def test_a_callback_without_the_pending_cookie_is_refused(hub: Hub) -> None:
    callback = await hub.at_idp(await hub.start())
    hub.service.client.session.cookie_jar.clear()
    answer = await hub.service.client.get(callback)
    assert answer.status == 400
    assert not await hub.signed_in()


async def test_an_injected_code_fails_the_pkce_check_at_the_idp(hub: Hub) -> None:
    # An attacker's code, got with the attacker's own challenge, slipped into our callback
    # with our state: our verifier does not match their challenge.
    authorize = await hub.start()
    ours = parse_qs(urlsplit(authorize).query)
    theirs = authorize.replace(ours["code_challenge"][0], "A" * 43)
    callback = await hub.at_idp(theirs)
    answer = await hub.service.client.get(callback)
    assert answer.status == 401
    assert "refused the sign-in" in await answer.text()
    assert hub.idp.refused == ["token"]
    assert not await hub.signed_in()


async def test_an_id_token_for_another_sign_in_is_refused(hub: Hub) -> None:
    hub.idp.forged_nonce = "a-nonce-from-another-sign-in"
    answer = await hub.service.client.get(await hub.at_idp(await hub.start()))
    assert answer.status == 401
    assert "not issued for this sign-in" in await answer.text()
    assert not await hub.signed_in()


async def test_an_idp_error_is_shown_and_starts_nothing(hub: Hub) -> None:
    await hub.start()
    answer = await hub.service.client.get(
        "/sign-in/callback", params={"error": "access_denied", "state": "x"}
    )
    assert answer.status == 401
    assert not await hub.signed_in()


async def test_a_person_signs_in_through_the_idp_in_the_browser(hub: Hub, browser: Browser) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))
    await page.goto(f"{hub.base}/sign-in")
    await page.get_by_role("link", name="Sign in with your organisation").click()
    await page.get_by_role("button", name="Search").wait_for()
    assert page.url == f"{hub.base}/"
    assert hub.idp.subject in await page.locator(".who").inner_text()
    (session,) = [c for c in await context.cookies() if c["name"] == "callrec_session"]
    assert session["httpOnly"]
    assert session["sameSite"] == "Strict"
    # The browser saw a code in the callback URL, never a token.
    access_token = hub.idp.token()
    header_and_claims = access_token.rsplit(".", 1)[0]
    assert not [url for url in visited if "token" in parse_qs(urlsplit(url).query)]
    assert not [url for url in visited if header_and_claims[:40] in url]
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_role("link", name="Sign in with your organisation").wait_for()
    assert (await context.request.get(f"{hub.base}/api/v1/recordings")).status == 401
    await context.close()
