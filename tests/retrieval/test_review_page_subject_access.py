"""The DPO's subject access pages in a real headless Chromium: open a request by the
requester's number, see it among the open ones nearest deadline first, choose on the
waveform what the requester gets of a two-channel call, then close the request."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pyrage
from playwright.async_api import Browser, expect

from tests.retrieval.page_support import ACCESSIBILITY_AUDIT, page_site, push, signed_in

PASSPHRASE = "correct horse battery staple"
REASON = "request from a caller for the recordings of their calls"


async def test_the_dpo_opens_a_request_chooses_redactions_and_closes_it(
    browser: Browser, tmp_path: Path, sqlite_template: Path, artefacts: Path
) -> None:
    async with page_site(tmp_path, sqlite_template) as site:
        service = site.service
        # Stereo noise: the requester's call, sent by the PBX with a national number.
        requester: dict[str, Any] = {"from": "020 7946 0000"}
        call = await push(service, "call-sar", 6, **requester)
        somebody: dict[str, Any] = {"from": "+441384000099"}
        await push(service, "call-other", 2, **somebody)
        page = await signed_in(browser, site, "dpo", subject="dpo-1")
        refused: list[str] = []
        page.on("console", lambda message: refused.append(message.text))
        await page.goto(f"{site.base}/subject-access")
        await expect(page.get_by_text("No subject access request is open.")).to_be_visible()

        # First, find the requester's calls by their number as they gave it.
        finder = page.locator("#find")
        await finder.get_by_label("Phone numbers (one per line)").fill("020 7946 0000")
        await finder.get_by_label("Reason").fill(REASON)
        await page.get_by_role("button", name="Find the calls").click()
        found = page.get_by_role("table", name="Calls found, newest first")
        await expect(found.locator("tbody tr")).to_have_count(1)
        await expect(found).to_contain_text("+442079460000")
        await expect(page.locator("#status")).to_have_text("1 call found")

        opener = page.locator("#open")
        await page.get_by_label("Request reference").fill("SAR-PAGE-1")
        await opener.get_by_label("Phone numbers (one per line)").fill("+44 20 7946 0000")
        await opener.get_by_label("Reason").fill("too short")
        await page.get_by_role("button", name="Open the request and hold its recordings").click()
        await expect(page.locator("#open-reason-error")).to_be_visible()
        await opener.get_by_label("Reason").fill(REASON)
        await page.get_by_role("button", name="Open the request and hold its recordings").click()
        await page.wait_for_url(f"{site.base}/subject-access/*")
        await expect(page.locator("#title")).to_have_text("Subject access request SAR-PAGE-1")
        facts = page.locator("#facts")
        await expect(facts).to_contain_text("open: its recordings are held")
        await expect(facts).to_contain_text("days left")
        articles = page.locator("article.case-recording")
        await expect(articles).to_have_count(1)

        # Drag across the middle third of the waveform, keep the requester's channel.
        canvas = articles.first.locator("canvas")
        box = await canvas.bounding_box()
        assert box is not None
        middle = box["y"] + box["height"] / 2
        await page.mouse.move(box["x"] + box["width"] / 3, middle)
        await page.mouse.down()
        await page.mouse.move(box["x"] + 2 * box["width"] / 3, middle, steps=5)
        await page.mouse.up()
        muted = articles.first.get_by_label("Muted stretches")
        await expect(muted).not_to_have_value("")
        await articles.first.get_by_label("What the requester hears").select_option(
            label="Channel 1 only (channel 2 silenced)"
        )
        await articles.first.get_by_role("button", name="Save what the requester gets").click()
        await expect(page.locator("#status")).to_have_text(
            "Saved what the requester gets of this call."
        )
        await page.screenshot(path=artefacts / "subject-access-case.png", full_page=True)
        assert await page.evaluate(ACCESSIBILITY_AUDIT) == []

        token = service.token("dpo", subject="dpo-check")
        answer = await service.client.get(
            "/api/v1/subject-access-requests", headers={"Authorization": f"Bearer {token}"}
        )
        [case] = (await answer.json())["cases"]
        viewed = await service.client.get(
            f"/api/v1/subject-access-requests/{case['id']}",
            headers={"Authorization": f"Bearer {token}"},
        )
        [item] = (await viewed.json())["recordings"]
        assert item["id"] == call
        assert item["redaction"]["keep_channel"] == 0
        [[start, end]] = item["redaction"]["muted"]
        assert 1.5 <= start < 2.5
        assert 3.5 < end <= 4.5

        # Exported with a passphrase: the download is the encrypted bundle, which opens.
        await page.get_by_label("Or a passphrase (at least 12 characters)").fill(PASSPHRASE)
        async with page.expect_download() as waiting:
            await page.get_by_role("button", name="Export the bundle").click()
        download = await waiting.value
        assert download.suggested_filename == "SAR-PAGE-1.tar.age"
        saved = tmp_path / "bundle.age"
        await download.save_as(saved)
        plaintext = pyrage.passphrase.decrypt(saved.read_bytes(), PASSPHRASE)
        with tarfile.open(fileobj=io.BytesIO(plaintext)) as members:
            names = members.getnames()
        assert f"recordings/{call}/audio.wav" in names
        assert names[-1] == "manifest.json"
        await expect(page.locator("#status")).to_have_text("Exported SAR-PAGE-1.tar.age.")

        await page.goto(f"{site.base}/subject-access")
        row = page.get_by_role("table", name="Open requests, nearest deadline first")
        await expect(row.locator("tbody tr")).to_have_count(1)
        await expect(row).to_contain_text("SAR-PAGE-1")
        assert await page.evaluate(ACCESSIBILITY_AUDIT) == []
        await row.get_by_role("link", name="SAR-PAGE-1").click()
        await page.get_by_label("Reason").fill("answered the request with the recording")
        await page.get_by_role("button", name="Close the request and release its holds").click()
        await expect(page.locator("#facts")).to_contain_text("closed")
        await page.goto(f"{site.base}/subject-access")
        await expect(page.get_by_text("No subject access request is open.")).to_be_visible()
        assert "7946" not in page.url
        await page.context.close()
        assert refused == []
