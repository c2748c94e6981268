"""The retention operator's page in a real headless Chromium: the provider fetches given
up are shown, with what to do about them; nobody else sees them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.retrieval.page_support import Site, page_site, signed_in

pytestmark = pytest.mark.long

CALLER = "+441384000001"


@pytest.fixture(scope="module")
async def site(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> AsyncIterator[Site]:
    # No fetch workers: the jobs below stay exactly as the test leaves them.
    async with page_site(
        tmp_path_factory.mktemp("fetches-page"), sqlite_template, fetch_workers=0
    ) as found:
        queue = found.service.services.fetch_queue
        for external_id, error in (("RE-gone", "the provider answered 404"), ("RE-odd", "x")):
            await queue.enqueue(
                provider="twilio",
                external_id=external_id,
                url=f"https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/{external_id}",
                details={"from": CALLER},
                actor="source:twilio",
            )
            job = await queue.claim()
            assert job is not None
            await queue.give_up(job, error)
        yield found


async def test_the_retention_operator_sees_each_fetch_given_up_and_how_to_settle_it(
    browser: Browser, site: Site, artefacts: Path
) -> None:
    page = await signed_in(browser, site, "retention_operator", subject="ops-1")
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text))
    await page.reload()
    assert page.url == f"{site.base}/retention"
    section = page.get_by_role("region", name="Recordings not fetched")
    await section.get_by_text("2 recordings were not fetched.").wait_for()
    table = section.get_by_role("table", name="Provider fetches given up")
    rows = table.locator("tbody tr")
    assert await rows.count() == 2
    texts = await rows.all_inner_texts()
    assert any("RE-gone" in text and "the provider answered 404" in text for text in texts)
    assert CALLER not in await page.content()
    assert "callrec fetches retry" in await section.inner_text()
    await page.screenshot(path=artefacts / "retention-dead-letters.png", full_page=True)
    assert refused == []  # no script or style refused by the page's policy


async def test_an_auditor_reads_retention_but_not_the_fetches_given_up(
    browser: Browser, site: Site
) -> None:
    page = await signed_in(browser, site, "auditor", subject="aud-1")
    await page.goto(f"{site.base}/retention")
    await page.locator("#retention dd").first.wait_for()
    assert await page.get_by_role("region", name="Recordings not fetched").count() == 0
    answer = await page.context.request.get(f"{site.base}/api/v1/fetches/dead")
    assert answer.status == 403
