"""A UU consultant and a network member in Debian's Chromium at 1366 and 390 px: list, pupil
page, review, the network's list and its PDF, checked with axe-core (from npm, read from disk).

Set EWS_UPDATE_SCREENSHOTS=1 to refresh docs/pupil-page.png and docs/screens/ from this test.
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


AXE = Path(__file__).resolve().parents[2] / ".browser" / "node_modules" / "axe-core" / "axe.min.js"
DOCS_SCREENS = Path(__file__).resolve().parents[2] / "docs" / "screens"
UPDATE = os.environ.get("EWS_UPDATE_SCREENSHOTS") == "1"
#: The smallest on-screen size (px) of a chart's 11-unit text that still reads on a phone.
LEGIBLE_PX = 9


def _axe_problems(page, axe_source: str) -> list[str]:  # noqa: ANN001 - a Playwright page
    """Serious and critical axe-core violations of the page (axe evaluated from the local file)."""
    page.evaluate(axe_source)
    violations = page.evaluate(
        "async () => (await axe.run(document)).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '))")
    return [f"{page.url}: {v}" for v in violations]


def _smallest_chart_text(page) -> float:  # noqa: ANN001 - a Playwright page
    """The on-screen size (px) of 11-unit chart text in the visible charts (scale x 11)."""
    scales = page.evaluate(
        "() => [...document.querySelectorAll('svg.chart')].filter(s => s.getBoundingClientRect().width > 0)"
        ".map(s => s.getBoundingClientRect().width / s.viewBox.baseVal.width)")
    return min(scales) * 11 if scales else float("inf")


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not in .browser/ (make browser-deps installs it from npm)")
def test_consultant_and_network_at_desktop_and_phone_width_with_no_serious_accessibility_violation(
        env: AppEnv, live: LiveServer, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    axe_source = AXE.read_text(encoding="utf-8")
    problems: list[str] = []
    shots: list[Path] = []
    reviewed: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            for width in (1366, 390):
                def open_as(user: str, width: int = width, login_axe: bool = False):  # noqa: ANN202
                    # The pages forbid scripts (CSP); axe is evaluated in them from the local file.
                    context = browser.new_context(viewport={"width": width, "height": 900}, locale="da-DK",
                                                  bypass_csp=True)
                    page = context.new_page()
                    page.goto(f"{live.url}/")
                    expect(page).to_have_url(f"{live.url}/login?next=%2F")
                    if login_axe:
                        problems.extend(_axe_problems(page, axe_source))
                    page.get_by_label("Brugernavn").fill(user)
                    page.get_by_label("Adgangskode").fill(PASSWORD)
                    page.get_by_role("button", name="Log ind").click()
                    return page

                def check(page, name: str, width: int = width) -> None:  # noqa: ANN001
                    problems.extend(_axe_problems(page, axe_source))
                    assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
                    assert _smallest_chart_text(page) >= LEGIBLE_PX, (name, width)
                    if UPDATE:
                        shot = tmp_path / f"{name}-{width}.png"
                        page.evaluate("window.scrollTo(0, 0)")
                        page.screenshot(path=str(shot), full_page=True)
                        shots.append(shot)

                vera = open_as("vera", login_axe=width == 1366)
                expect(vera.get_by_role("heading", name="Flag på mine skoler")).to_be_visible()
                check(vera, "vejleder-liste")
                vera.get_by_role("link", name="kun dem, der afventer vurdering").click()
                first = vera.locator("table.list tbody tr").first.get_by_role("link")
                name = first.inner_text()
                first.click()
                expect(vera.get_by_role("heading", level=1)).to_have_text(name)
                expect(vera.get_by_text("Ingen vurderinger endnu.")).to_be_visible()
                vera.get_by_role("link", name="Gå til vurderingen").click()
                step_field = vera.get_by_label("Trin på indsatstrappen (kun")
                expect(step_field).to_be_hidden()  # shown only for the decision that needs it
                if width == 1366:
                    vera.get_by_label("Trin på indsatstrappen", exact=True).check()
                    expect(step_field).to_be_visible()
                    step_field.select_option("Forebyggende indsats med kontaktperson")
                else:
                    vera.get_by_label("Bekræftet: drøftes i netværket").check()
                vera.get_by_role("button", name="Gem vurdering").click()
                status = vera.get_by_role("status")
                expect(status).to_contain_text("Vurderingen er gemt.")
                expect(status).to_be_in_viewport()  # the confirmation is in view after the save
                expect(status.get_by_role("link")).to_contain_text("Næste elev der afventer")
                history = vera.locator("table.history tbody tr")
                expect(history).to_have_count(1)
                expect(history.first).to_contain_text("Vera Vejleder")
                reviewed.append(vera.url.split("/elev/")[1].split("?")[0])
                check(vera, "vejleder-elev")
                vera.context.close()

                nina = open_as("nina")
                expect(nina.get_by_role("heading", level=1)).to_contain_text("elever til drøftelse")
                check(nina, "netvaerk-liste")
                nina.locator("table.list tbody tr").first.get_by_role("link").click()
                expect(nina.get_by_role("heading", name="Årsager")).to_be_visible()
                check(nina, "netvaerk-elev")
                nina.context.close()

            stig = open_as("stig", 1366)
            run_id = env.sample.run_ids[env.sample.terms[-1]]
            for path in ("/drift/stabilitet", "/drift/model", f"/drift/rapport/{run_id}/validation_report.html"):
                stig.goto(f"{live.url}{path}")
                problems.extend(_axe_problems(stig, axe_source))
            stig.context.close()
        finally:
            browser.close()
    assert not problems, "\n".join(problems)
    decisions = {p: [r["decision"] for r in env.store.reviews_of_pupil(p)] for p in reviewed}
    assert list(decisions.values()) == [["indsatstrappe"], ["bekraeftet"]]
    assert all(any(e["action"] == "view_pupil" and e["object_id"] == p for e in env.store.read_audit())
               for p in reviewed)
    if UPDATE:
        DOCS_SCREENS.mkdir(exist_ok=True)
        for shot in shots:
            shutil.copyfile(shot, DOCS_SCREENS / shot.name)
        shutil.copyfile(tmp_path / "vejleder-elev-1366.png", DOCS_SCREENSHOT)
