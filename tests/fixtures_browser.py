"""A real headless Chromium (Debian's package) driven by Playwright, once per test session.

No browser is downloaded: Playwright is pointed at ``/usr/bin/chromium`` with
``executable_path``. Where it is missing the browser tests skip, except under CI=true.
Screenshots go to ``test-artefacts/`` (or CALLREC_TEST_ARTEFACTS) for people to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.fixtures_db import skip_or_fail

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTEFACTS = Path(
    os.environ.get("CALLREC_TEST_ARTEFACTS")  # noqa: TID251 - the tests' own output folder
    or Path(__file__).resolve().parent.parent / "test-artefacts"
)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium for the session; each test opens its own context (cookies, storage)."""
    if shutil.which(CHROMIUM) is None:
        skip_or_fail("Debian's chromium is not installed (make test installs it as root)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # Root in a container has no user namespaces for Chromium's sandbox.
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="session")
def artefacts() -> Path:
    """Where screenshots are saved."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return ARTEFACTS
