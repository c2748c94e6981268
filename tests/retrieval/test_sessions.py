"""Sessions of the review page over HTTP: sign-in, cookie flags, CSRF, timeouts, sign-out.

Plain HTTP against the running service (the browser tests drive the same through
Chromium); a fake clock makes the idle and absolute timeouts pass in milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from sqlalchemy import select

from retrieval.web import CONTENT_SECURITY_POLICY
from storage.db.models import AuditEvent
from tests.clock import FakeClock
from tests.service_support import RunningService, running_service


@dataclass
class Desk:
    service: RunningService
    clock: FakeClock


@pytest.fixture
async def desk(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Desk]:
    clock = FakeClock()
    async with running_service(tmp_path / "var", sqlite_url, clock=clock) as service:
        yield Desk(service, clock)


async def form_nonce(desk: Desk) -> str:
    """The one-time value of a fresh sign-in form (its cookie goes into the jar)."""
    form = await desk.service.client.get("/sign-in")
    assert form.status == 200
    nonce = re.search(r'name="nonce" value="([^"]+)"', await form.text())
    assert nonce is not None
    return nonce.group(1)


async def sign_in(desk: Desk, role: str = "supervisor", *teams: str) -> tuple[str, str]:
    """Sign in through the form; the session cookie's value and the page's CSRF token."""
    client = desk.service.client
    nonce = await form_nonce(desk)
    token = desk.service.token(role, *(teams or ("mash-children",)), subject="sup-1")
    answer = await client.post(
        "/sign-in", data={"nonce": nonce, "token": token}, allow_redirects=False
    )
    assert answer.status == 303
    assert answer.headers["Location"] == "/"
    cookie = SimpleCookie(answer.headers["Set-Cookie"])["callrec_session"]
    assert cookie["httponly"]
    assert cookie["secure"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    page = await client.get("/")
    assert page.status == 200
    csrf = re.search(r'data-csrf="([^"]+)"', await page.text())
    assert csrf is not None
    return cookie.value, csrf.group(1)


async def test_pages_carry_a_strict_policy_and_are_never_cached(desk: Desk) -> None:
    await sign_in(desk)
    for path in ("/", "/sign-in", "/audit", "/retention"):
        response = await desk.service.client.get(path)
        assert response.status == 200, path
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "script-src 'self'" in CONTENT_SECURITY_POLICY
        assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "<script>" not in await response.text()  # modules from /static only


async def test_without_a_session_pages_send_you_to_sign_in_and_the_api_is_a_401(
    desk: Desk,
) -> None:
    client = desk.service.client
    for path in ("/", "/audit", "/retention", f"/recordings/{'0' * 8}-0000-0000-0000-{'0' * 12}"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"] == "/sign-in"
    assert (await client.get("/api/v1/recordings")).status == 401


async def test_a_bad_token_or_a_forged_form_does_not_sign_in(desk: Desk) -> None:
    client = desk.service.client
    await client.get("/sign-in")
    forged = await client.post(
        "/sign-in", data={"nonce": "guessed", "token": desk.service.token("dpo")}
    )
    assert forged.status == 403
    bad = await client.post("/sign-in", data={"nonce": await form_nonce(desk), "token": "x.y"})
    assert bad.status == 401
    assert "not valid" in await bad.text()
    assert (await client.get("/api/v1/recordings")).status == 401


async def test_the_error_page_carries_a_new_form_and_the_used_value_is_spent(
    desk: Desk,
) -> None:
    client = desk.service.client
    used = await form_nonce(desk)
    bad = await client.post("/sign-in", data={"nonce": used, "token": "x.y"})
    assert bad.status == 401
    again = re.search(r'name="nonce" value="([^"]+)"', await bad.text())
    assert again is not None
    assert again.group(1) not in {"", used}
    token = desk.service.token("supervisor", "mash-children", subject="sup-1")
    replayed = await client.post("/sign-in", data={"nonce": used, "token": token})
    assert replayed.status == 403
    # The page that said so carries a fresh value in turn; only that one signs in.
    fresh = re.search(r'name="nonce" value="([^"]+)"', await replayed.text())
    assert fresh is not None
    signed = await client.post(
        "/sign-in", data={"nonce": fresh.group(1), "token": token}, allow_redirects=False
    )
    assert signed.status == 303
    assert (await client.get("/api/v1/recordings")).status == 200


async def test_the_session_reads_the_api_but_changes_need_the_csrf_token(desk: Desk) -> None:
    await desk.service.push_call("call-1", datetime.now(UTC) - timedelta(hours=1))
    _, csrf = await sign_in(desk)
    client = desk.service.client
    found = await client.get("/api/v1/recordings")
    assert found.status == 200
    (recording,) = (await found.json())["recordings"]
    grants = f"/api/v1/recordings/{recording['id']}/grants"
    body = {"purpose": "quality_review", "reason": "weekly quality review of calls"}
    refused = await client.post(grants, json=body)
    assert refused.status == 403
    assert "CSRF" in (await refused.json())["detail"]
    wrong = await client.post(grants, json=body, headers={"X-CSRF-Token": csrf[:-1] + "x"})
    assert wrong.status == 403
    granted = await client.post(grants, json=body, headers={"X-CSRF-Token": csrf})
    assert granted.status == 201
    audio_path = "/" + (await granted.json())["audio_url"].split("/", 3)[3]
    played = await client.get(audio_path, headers={"Range": "bytes=0-99"})
    assert played.status == 206


async def test_an_idle_session_ends_and_so_does_an_old_one_however_busy(desk: Desk) -> None:
    client = desk.service.client
    await sign_in(desk)
    desk.clock.now += timedelta(minutes=14)
    assert (await client.get("/api/v1/recordings")).status == 200
    desk.clock.now += timedelta(minutes=15, seconds=1)
    assert (await client.get("/api/v1/recordings")).status == 401

    await sign_in(desk)
    signed_in_at = desk.clock.now
    while (await client.get("/api/v1/recordings")).status == 200:
        # In use every ten minutes: never idle, yet it must end at eight hours.
        desk.clock.now += timedelta(minutes=10)
        assert desk.clock.now - signed_in_at <= timedelta(hours=8, minutes=10)
    assert desk.clock.now - signed_in_at >= timedelta(hours=8)


async def test_signing_out_needs_the_csrf_token_and_ends_the_session(desk: Desk) -> None:
    client = desk.service.client
    _, csrf = await sign_in(desk)
    refused = await client.post("/sign-out", data={"csrf_token": "nope"}, allow_redirects=False)
    assert refused.status == 403
    assert (await client.get("/api/v1/recordings")).status == 200
    out = await client.post("/sign-out", data={"csrf_token": csrf}, allow_redirects=False)
    assert out.status == 303
    assert out.headers["Location"] == "/sign-in"
    assert (await client.get("/api/v1/recordings")).status == 401


async def test_static_files_are_only_the_pages_own(desk: Desk) -> None:
    client = desk.service.client
    script = await client.get("/static/recording.js")
    assert script.status == 200
    assert script.headers["Content-Type"].startswith("text/javascript")
    for name in ("../pages.py", "%2e%2e%2fpages.py", "pages.py", "nope.js"):
        assert (await client.get(f"/static/{name}")).status == 404


async def test_signing_in_and_out_is_on_the_record_and_a_new_sign_in_replaces_the_old(
    desk: Desk,
) -> None:
    client = desk.service.client
    first, _ = await sign_in(desk)
    second, csrf = await sign_in(desk)
    assert first != second
    # The first session ended when the second began on the same browser.
    stale = await client.get(
        "/api/v1/recordings",
        cookies={"callrec_session": first},
    )
    assert stale.status == 401
    refused = await client.post("/sign-in", data={"nonce": await form_nonce(desk), "token": "a.b"})
    assert refused.status == 401
    await client.post("/sign-out", data={"csrf_token": csrf})
    async with desk.service.services.database.read() as session:
        events = (
            await session.execute(
                select(AuditEvent.action, AuditEvent.actor, AuditEvent.outcome)
                .where(AuditEvent.action.like("session.%"))
                .order_by(AuditEvent.seq)
            )
        ).all()
    assert [tuple(event) for event in events] == [
        ("session.signed_in", "callrec-dev|sup-1", "allow"),
        ("session.signed_in", "callrec-dev|sup-1", "allow"),
        ("session.signed_in", "anonymous", "deny"),
        ("session.signed_out", "callrec-dev|sup-1", "allow"),
    ]
