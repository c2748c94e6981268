"""Calls without a referral in a real headless Chromium: a supervisor sees their team's
calls still unlinked a week after they started, links one, marks another as needing no
referral (a reason is required, and refused visibly when missing), and each leaves the
list; another team's supervisor sees none of them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from playwright.async_api import Browser, Locator, Page
from sqlalchemy import select

from storage.db.models import AuditEvent, RecordingNoReferral
from tests.retrieval.page_support import Site, page_site, push, signed_in

ACCESSIBILITY_AUDIT = (Path(__file__).parent / "accessibility_audit.js").read_text()
CALLER = "+441384000001"
REASON = "caller rang the wrong team by mistake"
CHILDREN, ADULTS = "mash-children", "mash-adults"


def call(page: Page, recording_id: str) -> Locator:
    return page.locator(f'#calls > li[data-id="{recording_id}"]')


async def shown(page: Page) -> list[str]:
    await page.locator("#calls:visible, #empty:visible").first.wait_for()
    ids = await page.locator("#calls > li").evaluate_all(
        "(items) => items.map((i) => i.dataset.id)"
    )
    return [str(found) for found in ids]


async def decisions(site: Site) -> list[tuple[str, str]]:
    async with site.service.services.database.read() as session:
        rows = await session.execute(
            select(RecordingNoReferral.recording_id, RecordingNoReferral.reason)
        )
        return [(str(recording_id), reason) for recording_id, reason in rows]


async def test_a_supervisor_links_or_marks_their_teams_calls_without_a_referral(
    browser: Browser, tmp_path: Path, sqlite_template: Path, artefacts: Path
) -> None:
    async with page_site(tmp_path, sqlite_template) as site:
        service = site.service
        days = timedelta(days=1)
        oldest = await push(service, "oldest", 2, ago=10 * days, referrals=[])
        older = await push(service, "older", 2, ago=9 * days, referrals=[])
        old = await push(service, "old", 2, ago=8 * days, referrals=[])
        recent = await push(service, "recent", 2, referrals=[])
        linked = await push(service, "linked", 2, ago=9 * days)
        adults = await push(service, "adults", 2, ago=9 * days, team=ADULTS, referrals=[])

        page = await signed_in(browser, site, "supervisor", CHILDREN, subject="sup-t1")
        refused: list[str] = []
        page.on("console", lambda message: refused.append(message.text))
        await page.get_by_role("link", name="Calls without a referral").click()
        assert page.url == f"{site.base}/unlinked"
        assert await shown(page) == [oldest, older, old]
        assert "7 days after they started" in await page.locator("#rule").inner_text()
        content = await page.content()
        for absent in (recent, linked, adults, CALLER):
            assert absent not in content
        assert await page.evaluate(ACCESSIBILITY_AUDIT) == []
        # On a phone too: labelled, legible, and no sideways scrolling.
        await page.set_viewport_size({"width": 360, "height": 800})
        assert await page.evaluate(ACCESSIBILITY_AUDIT) == []
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        await page.set_viewport_size({"width": 1280, "height": 800})

        # Linked through the referral-link API: the call leaves the list.
        first = call(page, oldest)
        await first.get_by_label("Referral reference").fill("MASH-2026-000901")
        await first.get_by_role("button", name="Link to referral").click()
        await first.wait_for(state="detached")
        assert await shown(page) == [older, old]
        assert "linked to MASH-2026-000901" in await page.locator("#status").inner_text()
        found = await service.search_referral("MASH-2026-000901", CHILDREN)
        assert [recording["id"] for recording in found] == [oldest]

        # No reason: refused beside the field, nothing asked of the API, nothing stored.
        second = call(page, older)
        await second.get_by_role("button", name="No referral").click()
        message = second.locator(".field-error:visible")
        await message.wait_for()
        assert "reason must be" in await message.inner_text()
        assert (
            await second.get_by_label("Why it needs no referral").get_attribute("aria-invalid")
            == "true"
        )
        assert await shown(page) == [older, old]
        assert await decisions(site) == []

        await second.get_by_label("Why it needs no referral").fill(REASON)
        await second.get_by_role("button", name="No referral").click()
        await second.wait_for(state="detached")
        assert await shown(page) == [old]
        assert await decisions(site) == [(older, REASON)]
        async with service.services.database.read() as session:
            event = (
                await session.execute(
                    select(AuditEvent).where(
                        AuditEvent.action == "recording.no_referral",
                        AuditEvent.outcome == "allow",
                    )
                )
            ).scalar_one()
        assert (str(event.recording_id), event.actor) == (older, "callrec-dev|sup-t1")
        assert event.details == {"reason": REASON}
        await page.screenshot(path=artefacts / "calls-without-a-referral.png", full_page=True)
        await page.context.close()
        assert refused == []  # no script or style refused by the page's policy

        other = await signed_in(browser, site, "supervisor", ADULTS, subject="sup-t2")
        await other.goto(f"{site.base}/unlinked")
        assert await shown(other) == [adults]
        assert old not in await other.content()
        await other.context.close()

        reviewer = await signed_in(browser, site, "safety_reviewer", subject="rev-t1")
        assert await reviewer.get_by_role("link", name="Calls without a referral").count() == 0
        await reviewer.goto(f"{site.base}/unlinked")
        assert "Only a team's supervisors" in await reviewer.locator("main").inner_text()
        await reviewer.context.close()

        # What still waits (one call of each team) is on the retention operator's page.
        operator = await signed_in(browser, site, "retention_operator", subject="ops-t1")
        assert operator.url == f"{site.base}/retention"
        waiting = operator.locator("#retention dt", has_text="Calls without a referral")
        await waiting.wait_for()
        count = operator.locator("#retention dt:has-text('Calls without a referral') + dd")
        assert (await count.inner_text()).startswith("2 (listed 7 days after the call)")
        await operator.context.close()
