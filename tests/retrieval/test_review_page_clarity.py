"""What the review page tells a person in Chromium: signing in again after a mistake, the
reason rule beside its field, what a hold keeps, incomplete audio, the waveform's time axis
and lanes, the newest audit events first.

The screenshots of the search page, a held recording and the player go to test-artefacts/;
`make screenshots` runs this module with them going to docs/screenshots/ instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, Page

from retrieval.grants import REASON_LENGTH, REASON_LENGTH_RULE, REASON_WORDS_RULE
from tests.audio_factory import BY_NAME, make_audio
from tests.retrieval.page_support import Site, cut_short, page_site, push, signed_in

pytestmark = pytest.mark.long

if TYPE_CHECKING:  # the shape of a screenshot's clip, which Playwright does not export
    from playwright._impl._api_structures import Clip


REASON = "weekly quality review of call handling"
HELD_REFERRAL = "MASH-2026-000701"
CUT_REFERRAL = "MASH-2026-000702"
WHOLE_REFERRAL = "MASH-2026-000703"
WHOLE_CALL_S = 150
# A date, as the hold form sends it: the hold lasts to the end of that day.
REVIEW_BY = (datetime.now(UTC) + timedelta(days=60)).date()


def day_shown(day: date) -> str:
    """A date as the page writes it in en-GB ("1 Feb 2027"; ICU writes September "Sept")."""
    month = "Sept" if day.month == 9 else day.strftime("%b")
    return f"{day.day} {month} {day.year}"


@pytest.fixture(scope="module")
async def site(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> AsyncIterator[Site]:
    async with page_site(tmp_path_factory.mktemp("review-page-clarity"), sqlite_template) as found:
        service = found.service
        held_call = await push(
            service, "held", 8, ago=timedelta(days=89, hours=20), referrals=[HELD_REFERRAL]
        )
        reviewer = service.token("safety_reviewer", subject="safety-7")
        placed = await service.client.post(
            f"/api/v1/recordings/{held_call}/hold",
            json={
                "type": "staff_safety_incident",
                "reason": "incident 2026-131: threats made to the call handler",
                "review_by": REVIEW_BY.isoformat(),
            },
            headers={"Authorization": f"Bearer {reviewer}"},
        )
        assert placed.status in {200, 201}, await placed.text()
        # The factory's two-channel signal: one side speaks, then the other, then the first.
        found.long_call = await push(
            service,
            "whole",
            WHOLE_CALL_S,
            ago=timedelta(hours=2),
            audio=make_audio(BY_NAME["pcm-wav"], WHOLE_CALL_S, channels=2),
            referrals=[WHOLE_REFERRAL],
        )
        # A minute's call whose file stops after three seconds: the newest of the three.
        found.short_call = await push(
            service,
            "cut-short",
            60,
            ago=timedelta(minutes=30),
            audio=cut_short(60, 3),
            referrals=[CUT_REFERRAL],
        )
        yield found


async def listening(page: Page, site: Site, recording_id: str) -> None:
    await page.goto(f"{site.base}/recordings/{recording_id}")
    await page.locator("#facts dd").first.wait_for()
    await page.get_by_label("Reason (recorded in the audit trail)").fill(REASON)
    await page.get_by_role("button", name="Listen").click()
    await page.locator("#player").wait_for(state="visible")


async def test_the_right_token_after_a_wrong_one_signs_in_from_the_error_page(
    browser: Browser, site: Site
) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{site.base}/sign-in")
    await page.get_by_label("Token").fill("not.a.token")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("alert").filter(has_text="not valid").wait_for()
    token = site.service.token("supervisor", "mash-children", subject="sup-21")
    await page.get_by_label("Token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{site.base}/")
    await page.get_by_role("heading", name="Find a call").wait_for()
    await context.close()


async def test_the_listen_reason_is_the_apis_rule_and_its_refusal_shows_beside_it(
    browser: Browser, site: Site, artefacts: Path
) -> None:
    page = await signed_in(browser, site, "supervisor", "mash-children", subject="sup-22")
    await page.goto(f"{site.base}/recordings/{site.long_call}")
    await page.locator("#facts dd").first.wait_for()
    reason = page.get_by_label("Reason (recorded in the audit trail)")
    assert await reason.get_attribute("minlength") == str(REASON_LENGTH[0])
    assert await reason.get_attribute("maxlength") == str(REASON_LENGTH[1])
    note = page.locator(f"#{await reason.get_attribute('aria-describedby')}")
    listen = page.get_by_role("button", name="Listen")

    await reason.fill("call review")  # 11 characters: the API wants 12
    await listen.click()
    await note.filter(has_text=REASON_LENGTH_RULE).wait_for()
    assert await reason.get_attribute("aria-invalid") == "true"
    assert await page.locator("#player").is_hidden()
    await reason.fill("review review review")
    await listen.click()
    await note.filter(has_text=REASON_WORDS_RULE).wait_for()
    await page.locator("#listen").screenshot(path=artefacts / "reason-refused.png")

    # A page older than the server's rule lets a reason through: the API's refusal shows
    # in the same place.
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    await page.evaluate(
        "(field => { field.minLength = 5; field.dataset.words = '1'; })"
        "(document.getElementById('reason'))"
    )
    await reason.fill("call review")
    await listen.click()
    await note.filter(has_text=REASON_LENGTH_RULE).wait_for()
    assert any(url.endswith("/grants") for url in asked)
    field, shown, button = [await box.bounding_box() for box in (reason, note, listen)]
    assert field
    assert shown
    assert button
    assert field["y"] + field["height"] <= shown["y"] < button["y"]  # beside the field
    assert await page.locator("#player").is_hidden()

    await reason.fill(REASON)
    await listen.click()
    await page.locator("#player").wait_for(state="visible")
    assert await note.is_hidden()
    assert await reason.get_attribute("aria-invalid") is None
    await page.context.close()


async def test_search_opens_on_the_newest_calls_with_holds_and_incomplete_audio_said_plainly(
    browser: Browser, site: Site, artefacts: Path
) -> None:
    page = await signed_in(browser, site, "supervisor", "mash-children", subject="sup-23")
    rows = page.locator("#results tbody tr")
    await rows.nth(2).wait_for()  # no Search pressed
    assert CUT_REFERRAL in await rows.first.inner_text()  # the newest first
    cut = rows.filter(has_text=CUT_REFERRAL)
    assert "incomplete: 0:03 of 1:00" in await cut.inner_text()
    assert "incomplete" not in await rows.filter(has_text=WHOLE_REFERRAL).inner_text()
    held = await rows.filter(has_text=HELD_REFERRAL).inner_text()
    assert f"kept under hold until {day_shown(REVIEW_BY)}, then deleted" in held
    assert "due" not in held
    assert "00:00" not in held
    await page.screenshot(path=artefacts / "search-page.png", full_page=True)

    await rows.filter(has_text=HELD_REFERRAL).get_by_role("link").click()
    facts = page.locator("#facts")
    await facts.filter(has_text="Kept under hold").wait_for()
    shown = await facts.inner_text()
    assert f"Kept under hold until {day_shown(REVIEW_BY)}, then deleted" in shown
    assert f"staff safety incident until {day_shown(REVIEW_BY)}" in shown
    assert "due now" not in shown
    assert "00:00" not in shown
    await page.screenshot(path=artefacts / "held-recording.png", full_page=True)
    await page.goto(f"{site.base}/recordings/{site.short_call}")
    await facts.filter(has_text="incomplete").wait_for()
    assert "0:03 ⚠ incomplete: 0:03 of 1:00" in await facts.inner_text()
    await page.context.close()


# Dark pixels drawn in the top and bottom lanes (the red playhead aside).
LANE_INK = """() => {
  const canvas = document.getElementById('waveform');
  const lane = canvas.height / 2;
  const ink = (top) => {
    const data = canvas.getContext('2d').getImageData(0, top, canvas.width, lane).data;
    let count = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 200 && !(data[i] > 150 && data[i + 1] < 80)) count += 1;
    }
    return count;
  };
  return [ink(0), ink(lane)];
}"""


async def test_the_waveform_has_a_time_axis_named_lanes_and_dims_the_lane_not_heard(
    browser: Browser, site: Site, artefacts: Path
) -> None:
    page = await signed_in(browser, site, "supervisor", "mash-children", subject="sup-24")
    await listening(page, site, site.long_call)
    axis = page.locator("#axis li")
    await axis.first.wait_for()
    assert await axis.all_inner_texts() == [f"{m}:{s:02}" for m, s in divmod_range(0, 150, 15)]
    lanes = page.locator("#lanes li")
    assert await lanes.all_inner_texts() == ["Channel 1 (left)", "Channel 2 (right)"]
    steps = await page.evaluate(
        "import('/static/player.js').then(({ tickStep }) =>"
        " [3, 30, 150, 720, 1800, 3600].map((s) => tickStep(s, 1200)))"
    )
    assert steps == [1, 5, 15, 60, 300, 300]  # at most 12 ticks across 1200 px

    top, bottom = await page.evaluate(LANE_INK)
    assert top > 1000
    assert bottom > 1000
    await page.get_by_label("Hear").select_option(label="channel 2 (right) only")
    await lanes.first.filter(has_text="not heard").wait_for()
    assert "not heard" not in await lanes.nth(1).inner_text()
    top, bottom = await page.evaluate(LANE_INK)
    assert top == 0
    assert bottom > 1000
    await page.get_by_label("Hear").select_option(label="both channels")
    await lanes.first.filter(has_text="not heard").wait_for(state="detached")
    box = await page.locator("#waveform").bounding_box()
    assert box is not None
    await page.mouse.click(box["x"] + 0.45 * box["width"], box["y"] + box["height"] / 2)
    await page.get_by_text("1:07 / 2:30").wait_for()
    shown = await page.locator("#listen").bounding_box()
    assert shown is not None
    # A margin around the section, as it sits on the page.
    margin: Clip = {
        "x": shown["x"] - 16,
        "y": shown["y"],
        "width": shown["width"] + 32,
        "height": shown["height"] + 16,
    }
    await page.screenshot(path=artefacts / "player.png", clip=margin)
    await page.context.close()


def divmod_range(start: int, stop: int, step: int) -> list[tuple[int, int]]:
    return [divmod(at, 60) for at in range(start, stop, step) if at < stop * 0.96]


async def test_the_audit_trail_shows_the_newest_events_first(browser: Browser, site: Site) -> None:
    auditor = await signed_in(browser, site, "auditor", subject="aud-21")
    await auditor.get_by_role("button", name="Show").click()
    await auditor.locator("#events tbody tr").first.wait_for()
    assert "newest first" in await auditor.locator("#events caption").inner_text()
    rows = auditor.locator("#events tbody tr")
    seqs = [int(s) for s in await rows.locator("td:first-child").all_inner_texts()]
    assert len(seqs) > 3
    assert seqs == sorted(seqs, reverse=True)
    # The auditor's own sign-in, the latest event, heads the list (not the first push).
    first = await rows.first.inner_text()
    assert "session.signed_in" in first
    assert "aud-21" in first
    await auditor.context.close()
