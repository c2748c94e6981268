"""The review page's controls and manners in Chromium: the player's buttons and keys, one
channel of two, referrals, erasure, deadline marks, accessibility and a narrow window."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.audio_factory import BY_NAME, make_audio
from tests.push_support import metadata, push_body, push_headers
from tests.retrieval.page_support import (
    ACCESSIBILITY_AUDIT,
    Site,
    current_time,
    page_site,
    push,
    signed_in,
    wait_until,
)

pytestmark = pytest.mark.long

REASON = "weekly quality review of call handling"


@pytest.fixture(scope="module")
async def site(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> AsyncIterator[Site]:
    async with page_site(tmp_path_factory.mktemp("review-page-use"), sqlite_template) as found:
        service = found.service
        found.short_call = await push(service, "two-channel", 40, referrals=["MASH-2026-000301"])
        found.long_call = await push(
            service, "nearly-due", 5, ago=timedelta(days=86), referrals=["MASH-2026-000302"]
        )
        yield found


async def listening(page: Page, site: Site, recording_id: str) -> None:
    await page.goto(f"{site.base}/recordings/{recording_id}")
    await page.locator("#facts dd").first.wait_for()
    await page.get_by_label("Reason (recorded in the audit trail)").fill(REASON)
    await page.get_by_role("button", name="Listen").click()
    await page.locator("#player").wait_for(state="visible")


async def audio(page: Page, prop: str) -> Any:
    return await page.evaluate(f"document.getElementById('audio').{prop}")


async def test_the_player_skips_changes_speed_plays_one_channel_and_answers_keys(
    browser: Browser, site: Site
) -> None:
    page = await signed_in(browser, site, "supervisor", "mash-children", subject="sup-2")
    await listening(page, site, site.short_call)
    await page.get_by_role("button", name="Play").click()
    await wait_until(page, "document.getElementById('audio').currentTime > 0.3")

    before = await current_time(page)
    await page.get_by_role("button", name="Forward 10 seconds").click()
    assert await current_time(page) >= before + 9.5
    ahead = await current_time(page)
    await page.get_by_role("button", name="Back 10 seconds").click()
    assert await current_time(page) <= ahead - 9.5

    await page.get_by_label("Speed").select_option("2")
    assert await audio(page, "playbackRate") == 2
    await page.get_by_label("Speed").select_option("0.5")
    assert await audio(page, "playbackRate") == 0.5

    channel = page.get_by_label("Hear")
    assert await channel.is_enabled()  # a two-channel call
    await channel.select_option("1")
    assert await page.get_attribute("#audio", "data-heard") == "1"
    start = await current_time(page)
    await wait_until(page, f"document.getElementById('audio').currentTime > {start + 0.2}")
    assert "0:" in await page.locator("#elapsed").inner_text()
    assert await page.locator("#status.error").count() == 0

    # Dragging along the waveform seeks as it goes; letting go leaves it there.
    box = await page.locator("#waveform").bounding_box()
    assert box is not None
    middle = box["y"] + box["height"] / 2
    await page.mouse.move(box["x"] + 0.2 * box["width"], middle)
    await page.mouse.down()
    await page.mouse.move(box["x"] + 0.6 * box["width"], middle, steps=8)
    await page.mouse.up()
    duration = float(await audio(page, "duration"))
    assert abs(await current_time(page) - 0.6 * duration) < 1.5

    # Keys work when no field has the focus: K pauses, L skips ahead, K plays again.
    await page.get_by_role("heading", level=1).click()
    await page.keyboard.press("k")
    await wait_until(page, "document.getElementById('audio').paused")
    await page.get_by_role("button", name="Play", exact=True).wait_for()
    paused_at = await current_time(page)
    await page.keyboard.press("l")
    assert await current_time(page) >= paused_at + 9.5
    await page.keyboard.press("j")
    assert await current_time(page) <= paused_at + 0.5
    await page.keyboard.press("k")
    await wait_until(page, "!document.getElementById('audio').paused")
    await page.context.close()


async def test_a_call_whose_playback_copy_is_not_ready_says_so_and_plays_once_it_is(
    browser: Browser, site: Site
) -> None:
    workers = site.service.services.rendition_workers
    await workers.stop()  # the copy is made below, while the page waits for it
    try:
        # Mu-law: no browser plays it as it is, so the page must wait for its copy.
        body = push_body(
            metadata(recording_id="copy-pending"), make_audio(BY_NAME["mulaw-wav"], 6.0)
        )
        answer = await site.service.client.post(
            "/webhooks/push/pbx", data=body, headers=push_headers(body)
        )
        assert answer.status == 201
        pending = (await answer.json())["id"]
        page = await signed_in(browser, site, "supervisor", "mash-children", subject="sup-9")
        await page.goto(f"{site.base}/recordings/{pending}")
        await page.get_by_text("Playback copy").wait_for()
        assert "being prepared" in await page.locator("#facts").inner_text()
        await page.get_by_label("Reason (recorded in the audit trail)").fill(REASON)
        await page.get_by_role("button", name="Listen").click()
        notice = page.locator("#preparing")
        await notice.wait_for(state="visible")
        assert "The playback copy is being prepared" in await notice.inner_text()
        assert await page.locator("#player").is_hidden()

        assert await workers.work_one()  # the copy is made; the page's next look finds it
        await page.locator("#player").wait_for(state="visible", timeout=15_000)
        assert await notice.is_hidden()
        await page.get_by_role("button", name="Play").click()
        await wait_until(page, "document.getElementById('audio').currentTime > 0.3")
        assert "ready" in await page.locator("#facts").inner_text()
        await page.context.close()
    finally:
        workers.start()


async def test_referrals_are_linked_and_unlinked_on_the_page(browser: Browser, site: Site) -> None:
    page = await signed_in(browser, site, "supervisor", "mash-children", subject="sup-3")
    await page.goto(f"{site.base}/recordings/{site.short_call}")
    await page.locator("#facts dd").first.wait_for()
    await page.get_by_label("Link a referral").fill("MASH-2026-009999")
    await page.get_by_role("button", name="Link", exact=True).click()
    chips = page.locator("#referrals li")
    await chips.filter(has_text="MASH-2026-009999").wait_for()
    await page.get_by_role("button", name="Unlink MASH-2026-009999").click()
    await chips.filter(has_text="MASH-2026-009999").wait_for(state="detached")
    assert await chips.filter(has_text="MASH-2026-000301").count() == 1
    await page.context.close()


async def test_calls_near_their_deletion_are_marked_in_the_search(
    browser: Browser, site: Site
) -> None:
    page = await signed_in(browser, site, "supervisor", "mash-children", subject="sup-4")
    await page.get_by_role("button", name="Search").click()
    rows = page.locator("#results tbody tr")
    await rows.first.wait_for()
    soon = rows.filter(has_text="MASH-2026-000302")
    assert await soon.locator("td.soon").count() == 1
    assert "in 3 days" in await soon.inner_text()
    fresh = rows.filter(has_text="MASH-2026-000301")
    assert await fresh.locator("td.soon").count() == 0
    await page.context.close()


async def test_results_come_a_page_at_a_time(browser: Browser, site: Site) -> None:
    for n in range(11):
        await push(site.service, f"paged-{n}", 1, agent="staff-paged")
    page = await signed_in(browser, site, "supervisor", "mash-children", subject="sup-5")
    await page.get_by_label("Agent").fill("staff-paged")
    await page.get_by_label("Per page").select_option("10")
    await page.get_by_role("button", name="Search").click()
    rows = page.locator("#results tbody tr")
    await page.get_by_text("10 recordings shown; more available").wait_for()
    await page.get_by_role("button", name="More results").click()
    await page.get_by_text("11 recordings shown").wait_for()
    assert await rows.count() == 11
    assert await page.get_by_role("button", name="More results").is_hidden()
    await page.context.close()


async def test_one_dpo_asks_to_erase_and_another_approves_and_it_is_gone(
    browser: Browser, site: Site
) -> None:
    doomed = await push(site.service, "erase-me", 3, referrals=["MASH-2026-000303"])
    asker = await signed_in(browser, site, "dpo", subject="dpo-1")
    await asker.goto(f"{site.base}/recordings/{doomed}")
    await asker.locator("#facts dd").first.wait_for()
    asker.on("dialog", lambda dialog: dialog.accept())
    await asker.get_by_label("Reason (erasure cannot be undone)").fill(
        "subject erasure request 2026-77 upheld"
    )
    await asker.get_by_role("button", name="Erase this recording").click()
    await asker.get_by_text("Another DPO must approve or reject it").wait_for()
    # The one who asked is offered no approval; the recording is still there.
    assert await asker.get_by_role("button", name="Approve erasure").is_hidden()
    still = await asker.context.request.get(f"{site.base}/api/v1/recordings/{doomed}")
    assert still.status == 200

    approver = await signed_in(browser, site, "dpo", subject="dpo-2")
    await approver.goto(f"{site.base}/recordings/{doomed}")
    await approver.get_by_text("Awaiting a second DPO").wait_for()
    assert await approver.locator("#erase").is_hidden()
    approver.on("dialog", lambda dialog: dialog.accept())
    await approver.get_by_role("button", name="Approve erasure").click()
    await approver.get_by_role("heading", name="This recording has been deleted").wait_for()
    answer = await approver.context.request.get(f"{site.base}/api/v1/recordings/{doomed}")
    assert answer.status == 410
    await asker.context.close()
    await approver.context.close()


@pytest.mark.parametrize("width", [1280, 360])
async def test_pages_are_labelled_legible_and_fit_the_window(
    browser: Browser, site: Site, width: int
) -> None:
    page = await signed_in(browser, site, "safety_reviewer", subject="safety-2")
    await page.set_viewport_size({"width": width, "height": 800})
    await page.get_by_role("button", name="Search").click()
    await page.locator("#results tbody tr").first.wait_for()
    assert await page.evaluate(ACCESSIBILITY_AUDIT) == []
    await listening(page, site, site.short_call)
    auditor = await signed_in(browser, site, "auditor", subject="aud-2")
    await auditor.set_viewport_size({"width": width, "height": 800})
    await auditor.get_by_role("button", name="Show").click()
    await auditor.locator("#events tbody tr").first.wait_for()
    for shown in (page, auditor):
        assert await shown.evaluate(ACCESSIBILITY_AUDIT) == []
        overflow = await shown.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        if shown is page:  # the audit table may scroll sideways on a phone; pages may not
            assert overflow <= 0
    # On a fresh page the first Tab reaches the skip link, which moves the focus to the
    # content.
    await page.reload()
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent.trim()") == "Skip to content"
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"
    await page.context.close()
    await auditor.context.close()
