"""Shared by the browser tests of the review page: a site, pushes, signing in, waiting."""

from __future__ import annotations

import asyncio
import io
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, Request

from tests.audio_factory import noisy_wav
from tests.push_support import metadata, push_body, push_headers
from tests.service_support import RunningService, running_service


@dataclass
class Site:
    service: RunningService
    base: str
    long_call: str = ""
    short_call: str = ""
    requests: list[tuple[float, str, str | None]] = field(default_factory=list)


# Checks run inside the page through the DevTools protocol (the page's CSP binds the
# page's own scripts, not this): every control named, WCAG AA contrast for text.
ACCESSIBILITY_AUDIT = (Path(__file__).parent / "accessibility_audit.js").read_text()


async def push(
    service: RunningService,
    source_id: str,
    seconds: float,
    *,
    ago: timedelta = timedelta(hours=1),
    audio: bytes | None = None,
    **fields: Any,
) -> str:
    """Push a call of ``seconds`` (of stereo noise, unless ``audio``) that started ``ago``;
    its id once its rendition is made (a review comes later than the call)."""
    started = time.gmtime(time.time() - ago.total_seconds())
    ended = time.gmtime(time.time() - ago.total_seconds() + seconds)
    meta = metadata(
        recording_id=source_id,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", started),
        ended_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", ended),
        **fields,
    )
    body = push_body(meta, noisy_wav(seconds) if audio is None else audio)
    response = await service.client.post(
        "/webhooks/push/pbx", data=io.BytesIO(body), headers=push_headers(body)
    )
    assert response.status == 201, await response.text()
    answer: dict[str, str] = await response.json()
    await service.renditions_made()
    return answer["id"]


def cut_short(seconds: float, kept_s: float) -> bytes:
    """A stereo WAV whose header declares ``seconds`` but whose samples stop at ``kept_s``."""
    whole = noisy_wav(seconds)
    start = whole.index(b"data") + 8
    return whole[: start + int(kept_s * 8000) * 2 * 2]


async def signed_in(browser: Browser, site: Site, role: str, *teams: str, subject: str) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await page.goto(f"{site.base}/sign-in")
    await page.get_by_label("Token").fill(site.service.token(role, *teams, subject=subject))
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state("networkidle")
    return page


def watch_audio_requests(page: Page, site: Site) -> None:
    def seen(request: Request) -> None:
        if "/api/v1/play/" in request.url:
            site.requests.append((time.monotonic(), request.url, request.headers.get("range")))

    page.on("request", seen)


async def wait_until(page: Page, expression: str, timeout_s: float = 20.0) -> None:
    """Poll ``expression`` in the page (the page's CSP forbids Playwright's eval-based wait)."""
    deadline = time.monotonic() + timeout_s
    while not await page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout_s} s: {expression}"
        await asyncio.sleep(0.1)


async def current_time(page: Page) -> float:
    value = await page.evaluate("document.getElementById('audio').currentTime")
    return float(value)


@asynccontextmanager
async def page_site(root: Path, sqlite_template: Path, **settings: Any) -> AsyncIterator[Site]:
    """The service on a copy of the migrated SQLite template, for a module of page tests."""
    database = root / "callrec.db"
    shutil.copyfile(sqlite_template, database)
    async with running_service(
        root / "var", f"sqlite+aiosqlite:///{database}", **settings
    ) as service:
        yield Site(service, str(service.client.make_url("")).rstrip("/"))
