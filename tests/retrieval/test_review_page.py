"""The review page in a real headless Chromium: sign in, search, listen, seek, hold, audit.

The service runs for real (HTTP on a local port, SQLite, the filesystem store, media
workers); the browser is Debian's chromium driven by Playwright. Screenshots of the pages
are saved to test-artefacts/.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from storage import PLAYBACK
from tests.retrieval.page_support import (
    Site,
    current_time,
    page_site,
    push,
    signed_in,
    wait_until,
    watch_audio_requests,
)

pytestmark = pytest.mark.long

REFERRAL = "MASH-2026-007731"
REASON = "weekly quality review of call handling"
# Long enough that the browser cannot hold it all at once at the link speed below: a seek
# to 75% must be fetched. (Five minutes over 64 KB/s is twenty over 256 KB/s, the same
# share of the call downloaded by the time of the seek, for a quarter of the set-up.)
LONG_CALL_S = 5 * 60
LINK_BYTES_PER_S = 64 * 1024


@pytest.fixture(scope="module")
async def site(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> AsyncIterator[Site]:
    async with page_site(
        tmp_path_factory.mktemp("review-page"),
        sqlite_template,
        # Played ranges reach the trail two seconds after listening stops (30 s by default).
        playback_summary_after=timedelta(seconds=2),
    ) as found:
        service = found.service
        found.long_call = await push(service, "long-call", LONG_CALL_S, referrals=[REFERRAL])
        found.short_call = await push(service, "short-call", 30, referrals=["MASH-2026-000009"])
        yield found


async def test_a_supervisor_finds_a_call_listens_and_seeks_from_the_waveform(
    browser: Browser, site: Site, artefacts: Path
) -> None:
    page = await signed_in(browser, site, "supervisor", "mash-children", subject="sup-1")
    assert page.url == f"{site.base}/"
    cookies = await page.context.cookies()
    (session,) = [cookie for cookie in cookies if cookie["name"] == "callrec_session"]
    assert session["httpOnly"]
    assert session["secure"]
    assert session["sameSite"] == "Strict"
    assert await page.evaluate("window.localStorage.length + window.sessionStorage.length") == 0

    await page.get_by_label("Referral").fill(REFERRAL)
    await page.get_by_role("button", name="Search").click()
    results = page.locator("#results tbody tr")
    # The page opened on the newest recordings; the search's answer replaces them.
    await expect(results).to_have_count(1)
    await page.screenshot(path=artefacts / "search.png", full_page=True)
    await results.first.get_by_role("link").click()
    await page.wait_for_url(f"{site.base}/recordings/{site.long_call}")
    await page.locator("#facts dd").first.wait_for()
    assert REFERRAL in await page.locator("#referrals").inner_text()

    watch_audio_requests(page, site)
    # A hub's reviewer is not on loopback: at a slow office link (half a megabit, sixteen
    # times the rendition's rate) the browser holds only what it has played and a little
    # more, so a seek far ahead must be fetched.
    network = await page.context.new_cdp_session(page)
    await network.send("Network.enable")
    await network.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 20,
            "downloadThroughput": LINK_BYTES_PER_S,
            "uploadThroughput": LINK_BYTES_PER_S,
        },
    )
    await page.get_by_label("Purpose").select_option("quality_review")
    await page.get_by_label("Reason (recorded in the audit trail)").fill(REASON)
    await page.get_by_role("button", name="Listen").click()
    await page.locator("#player").wait_for(state="visible")
    assert page.url == f"{site.base}/recordings/{site.long_call}"  # no token in the URL
    await page.get_by_role("button", name="Play").click()
    await wait_until(page, "document.getElementById('audio').currentTime > 1")
    await page.screenshot(path=artefacts / "recording.png", full_page=True)

    clicked_at = time.monotonic()
    canvas = page.locator("#waveform")
    box = await canvas.bounding_box()
    assert box is not None
    await page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + box["height"] / 2)
    duration = float(await page.evaluate("document.getElementById('audio').duration"))
    assert abs(duration - LONG_CALL_S) < 5
    await wait_until(page, f"document.getElementById('audio').currentTime > {0.74 * duration}")
    first = await current_time(page)
    await asyncio.sleep(1.5)
    assert await current_time(page) > first  # playback continues from there
    later = [(url, ranged) for at, url, ranged in site.requests if at >= clicked_at and ranged]
    offsets = [
        int(match.group(1))
        for _, ranged in later
        if (match := re.match(r"bytes=(\d+)-", ranged or ""))
    ]
    assert offsets, f"no Range request after the seek: {site.requests}"
    # The seek's own request starts about three quarters in (the browser may ask for the
    # last bytes, where WebM keeps its index, at any moment as well).
    size = len(await site.service.stored(site.long_call, PLAYBACK))
    assert any(0.5 * size < offset < 0.85 * size for offset in offsets), (offsets, size)


async def test_another_teams_supervisor_cannot_find_it_and_an_operator_cannot_hear_it(
    browser: Browser, site: Site
) -> None:
    other = await signed_in(browser, site, "supervisor", "mash-adults", subject="sup-9")
    await other.get_by_label("Referral").fill(REFERRAL)
    # The page opened on this person's newest recordings (none): wait for the answer to
    # the referral search itself, not that first empty list.
    async with other.expect_response(
        lambda answer: "/api/v1/recordings?" in answer.url and "referral=" in answer.url
    ) as searched:
        await other.get_by_role("button", name="Search").click()
    assert (await searched.value).status == 200
    await other.locator("#empty").wait_for(state="visible")
    assert await other.locator("#results tbody tr").count() == 0
    await other.goto(f"{site.base}/recordings/{site.long_call}")
    await other.get_by_role("heading", name="No such recording").wait_for()
    assert await other.get_by_role("button", name="Listen").count() == 0

    # A link someone else was granted, tried from the operator's own session.
    supervisor = site.service.token("supervisor", "mash-children", subject="sup-1")
    granted = await site.service.client.post(
        f"/api/v1/recordings/{site.short_call}/grants",
        json={"purpose": "quality_review", "reason": REASON},
        headers={"Authorization": f"Bearer {supervisor}"},
    )
    audio_url = (await granted.json())["audio_url"]
    operator = await signed_in(browser, site, "retention_operator", subject="ops-1")
    assert operator.url == f"{site.base}/retention"
    await operator.locator("#retention dd").first.wait_for()
    await operator.goto(f"{site.base}/recordings/{site.short_call}")
    await operator.locator("#title").wait_for()
    assert await operator.get_by_role("button", name="Listen").count() == 0
    assert await operator.locator("audio").count() == 0
    answer = await operator.context.request.get(audio_url)
    assert answer.status in {401, 403, 404}
    assert answer.headers["content-type"].startswith("application/json")
    assert (await answer.body())[:4] != b"\x1a\x45\xdf\xa3"  # no WebM, not a byte of audio


async def test_a_hold_and_a_listen_show_in_the_auditors_view(
    browser: Browser, site: Site, artefacts: Path
) -> None:
    reviewer = await signed_in(browser, site, "safety_reviewer", subject="safety-1")
    await reviewer.goto(f"{site.base}/recordings/{site.short_call}")
    await reviewer.locator("#facts dd").first.wait_for()
    await reviewer.get_by_label("Purpose").select_option("staff_safety")
    await reviewer.get_by_label("Reason (recorded in the audit trail)").fill(
        "incident 2026-118: threats made to the call handler"
    )
    await reviewer.get_by_role("button", name="Listen").click()
    await reviewer.get_by_role("button", name="Play").click()
    await wait_until(reviewer, "document.getElementById('audio').currentTime > 1")
    await reviewer.get_by_role("button", name="Pause").click()

    review_by = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    await reviewer.get_by_label("Type").select_option("staff_safety_incident")
    await reviewer.get_by_label("Reason", exact=True).fill("incident 2026-118 under review")
    await reviewer.get_by_label("Review by").fill(review_by)
    await reviewer.get_by_role("button", name="Place hold").click()
    await reviewer.get_by_text("Hold placed").wait_for()
    assert "staff safety incident" in await reviewer.locator("#facts").inner_text()
    await reviewer.get_by_label("Reason for release").fill("incident 2026-118 closed, no action")
    await reviewer.get_by_role("button", name="Release holds").click()
    await reviewer.get_by_text("Holds released").wait_for()
    facts = reviewer.locator("#facts")
    assert "staff safety incident" not in await facts.inner_text()
    await reviewer.context.close()  # stops the audio; its ranges are summarised when idle

    auditor = await signed_in(browser, site, "auditor", subject="aud-1")
    assert auditor.url == f"{site.base}/audit"
    await auditor.get_by_label("Recording id").fill(site.short_call)
    wanted = {"recording.grant", "recording.played", "hold.placed", "hold.released"}
    shown: set[str] = set()
    for _ in range(40):  # the played ranges arrive once the listening has been idle 2 s
        await auditor.get_by_role("button", name="Show").click()
        await auditor.locator("#status").filter(has_text="events shown").wait_for()
        shown = set(await auditor.locator("#events tbody td:nth-child(4)").all_inner_texts())
        if wanted <= shown:
            break
        await asyncio.sleep(0.5)
    assert wanted <= shown, shown
    played = auditor.locator("#events tbody tr", has_text="recording.played")
    assert "seconds" in await played.first.inner_text()
    await auditor.screenshot(path=artefacts / "audit.png", full_page=True)
    await auditor.goto(f"{site.base}/recordings/{site.short_call}")
    await auditor.locator("#title").wait_for()
    assert await auditor.get_by_role("button", name="Listen").count() == 0
