"""A UU consultant in Debian's Chromium: list, pupil page, review, history.

Set EWS_UPDATE_SCREENSHOTS=1 to refresh docs/pupil-page.png from this test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.dashboards.dashboard_helpers import PASSWORD, AppEnv, LiveServer

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "pupil-page.png"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium "
                                                      "(make browser-deps installs it)"),
]


def test_consultant_reviews_a_flag_in_the_browser(env: AppEnv, live: LiveServer, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="da-DK")
            page.goto(f"{live.url}/")
            expect(page).to_have_url(f"{live.url}/login?next=%2F")
            page.get_by_label("Brugernavn").fill("vera")
            page.get_by_label("Adgangskode").fill(PASSWORD)
            page.get_by_role("button", name="Log ind").click()

            expect(page.get_by_role("heading", name="Flag på mine skoler")).to_be_visible()
            page.get_by_role("link", name="kun dem, der afventer vurdering").click()
            first = page.locator("table.list tbody tr").first.get_by_role("link")
            name = first.inner_text()
            first.click()

            expect(page.get_by_role("heading", level=1)).to_have_text(name)
            expect(page.get_by_role("img", name="Hvad trækker risikoen op og ned")).to_be_visible()
            expect(page.get_by_text("Ingen vurderinger endnu.")).to_be_visible()
            page.get_by_label("Trin på indsatstrappen", exact=True).check()
            page.get_by_label("Trin på indsatstrappen (kun").select_option("Forebyggende indsats med kontaktperson")
            page.get_by_role("button", name="Gem vurdering").click()

            # The confirmation is in view after the save, with a link to the next pupil awaiting review.
            expect(page.get_by_role("status")).to_contain_text("Vurderingen er gemt.")
            expect(page.get_by_role("status")).to_be_in_viewport()
            expect(page.get_by_role("status").get_by_role("link")).to_contain_text("Næste elev der afventer")
            history = page.locator("table.history tbody tr")
            expect(history).to_have_count(1)
            expect(history.first).to_contain_text("Forebyggende indsats med kontaktperson")
            expect(history.first).to_contain_text("Vera Vejleder")
            shot = tmp_path / "pupil-page.png"
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    pupil_id = page.url.split("/elev/")[1].split("?")[0]
    reviews = env.store.reviews_of_pupil(pupil_id)
    assert [r["decision"] for r in reviews] == ["indsatstrappe"]
    assert any(e["action"] == "view_pupil" and e["object_id"] == pupil_id for e in env.store.read_audit())
    if os.environ.get("EWS_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, DOCS_SCREENSHOT)


def test_network_member_downloads_the_reviewed_list_in_the_browser(env: AppEnv, live: LiveServer,
                                                                   tmp_path: Path) -> None:
    import httpx
    from playwright.sync_api import expect, sync_playwright

    from tests.dashboards.dashboard_helpers import csrf_of, login, pupil_links
    from tests.flags.flag_fixtures import pdf_text

    schools = [s for s, n in env.sample.school_network.items() if n == "N001"]
    with httpx.Client(base_url=live.url) as vera:  # one confirmed flag at N001 (the review flow is tested above)
        login(vera, "vera")
        for pupil in pupil_links(vera.get("/vejleder?vis=afventer").text):
            html = vera.get(f"/elev/{pupil}").text
            if any(f"Skole {s[1:].lstrip('0')} ·" in html for s in schools):
                vera.post(f"/elev/{pupil}/vurdering", data={"csrf_token": csrf_of(html),
                                                           "term": env.sample.terms[-1], "decision": "bekraeftet"})
                break
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="da-DK", accept_downloads=True)
            page.goto(f"{live.url}/")
            page.get_by_label("Brugernavn").fill("nina")
            page.get_by_label("Adgangskode").fill(PASSWORD)
            page.get_by_role("button", name="Log ind").click()
            rows = page.locator("table.list tbody tr")
            expect(rows).to_have_count(1)
            name = rows.first.get_by_role("link").inner_text()
            with page.expect_download() as download_info:
                page.get_by_role("link", name="PDF", exact=True).click()
            download = download_info.value
            assert download.suggested_filename.startswith("flagliste_N001_")
            saved = tmp_path / download.suggested_filename
            download.save_as(saved)
        finally:
            browser.close()
    text = pdf_text(saved)
    assert name in text and "Bekræftet: drøftes i netværket" in text
