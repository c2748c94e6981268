"""A call handler's page in a real headless Chromium: who replayed their calls, for which
purpose, and nothing of another handler's calls or of the callers."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser

from tests.retrieval.page_support import page_site, push, signed_in

CALLER = "+441384000001"


async def test_a_call_handler_lands_on_who_accessed_their_calls_and_sees_only_theirs(
    browser: Browser, tmp_path: Path, sqlite_template: Path, artefacts: Path
) -> None:
    async with page_site(tmp_path, sqlite_template) as site:
        service = site.service
        # The metadata push sends carries CALLER as the calling number.
        mine = await push(service, "call-mine", 1, agent="staff-0421")
        theirs = await push(service, "call-theirs", 1, agent="staff-0999")
        token = service.token("supervisor", "mash-children", subject="sup-1")
        supervisor = {"Authorization": f"Bearer {token}"}
        for recording in (mine, theirs):
            granted = await service.client.post(
                f"/api/v1/recordings/{recording}/grants",
                json={"purpose": "quality_review", "reason": "weekly quality review of calls"},
                headers=supervisor,
            )
            assert granted.status == 201
            path = "/" + (await granted.json())["audio_url"].split("/", 3)[3]
            played = await service.client.get(path, headers=supervisor)
            assert played.status == 200
            await played.read()

        page = await signed_in(browser, site, "staff", subject="staff-0421")
        refused: list[str] = []
        page.on("console", lambda message: refused.append(message.text))
        await page.reload()
        assert page.url == f"{site.base}/accesses"
        table = page.get_by_role("table", name="Accesses to your calls, newest first")
        await table.wait_for()
        rows = await table.locator("tbody tr").all_inner_texts()
        assert len(rows) == 1
        assert "callrec-dev|sup-1" in rows[0]
        assert "replayed" in rows[0]
        assert "quality review" in rows[0]
        assert mine in rows[0]
        content = await page.content()
        assert theirs not in content
        assert CALLER not in content
        assert await page.locator("audio").count() == 0
        assert await page.get_by_role("link", name="Search").count() == 0
        await page.screenshot(path=artefacts / "staff-accesses.png", full_page=True)
        await page.context.close()
        assert refused == []  # no script or style refused by the page's policy
