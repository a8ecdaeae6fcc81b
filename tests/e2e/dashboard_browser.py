"""Drive the dashboard in a real headless Chromium with Playwright, as an operator would.

Run by tests/e2e/dashboard.rs against a server it started, with a running campaign whose
devices have been working through it. The script logs in (after a wrong key is refused),
finds the campaign in the list, opens it, checks each job count and the failure share
against the admin API, sees the chart drawn, pauses the campaign, searches devices and
looks at the plugins and releases, saving a screenshot of each step under OUT_DIR. Any
console error in the page (a script error or a Content-Security-Policy violation) fails it.

Environment: BASE_URL, OPERATOR_KEY, TENANT, CAMPAIGN_ID, CHROMIUM (the browser binary),
OUT_DIR (where screenshots go).
"""

import json
import os
import re
import sys
import urllib.request

from playwright.sync_api import expect, sync_playwright

BASE = os.environ["BASE_URL"]
KEY = os.environ["OPERATOR_KEY"]
TENANT = os.environ["TENANT"]
CAMPAIGN = os.environ["CAMPAIGN_ID"]
OUT = os.environ["OUT_DIR"]

# Every job state, in the order the dashboard lists them.
STATES = ["queued", "notified", "downloading", "installing", "succeeded", "failed", "cancelled", "timed-out"]


def admin(path):
    """A GET on the admin API with the operator key: the JSON answer."""
    req = urllib.request.Request(BASE + path, headers={"Authorization": "Bearer " + KEY})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def shot(page, name):
    page.screenshot(path=os.path.join(OUT, name), full_page=True)


def main():
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ["CHROMIUM"],
            # Without these, Chromium keeps trying to reach Google's services, which this
            # closed network refuses; root needs --no-sandbox.
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))

        # Not logged in: the dashboard sends the browser to the form.
        page.goto(BASE + "/ui/")
        expect(page).to_have_url(re.compile(r"/ui/login"))
        page.fill("#key", "not-an-operator-key")
        page.click("button[type=submit]")
        expect(page.locator(".flash.bad")).to_contain_text("not a live operator API key")
        shot(page, "01-login.png")
        problems.clear()  # the refused login's 401 is logged by the browser as an error

        page.fill("#key", KEY)
        page.click("button[type=submit]")
        expect(page).to_have_url(re.compile(r"/ui/campaigns$"))
        row = page.locator(f"tr[data-campaign='{CAMPAIGN}']")
        expect(row.locator(".status")).to_have_text("running")
        shot(page, "02-campaigns.png")

        # The list refreshes every 5 s; following the link by its address cannot race it.
        page.goto(BASE + row.locator("a").get_attribute("href"))
        expect(page).to_have_url(re.compile(rf"/ui/campaigns/{CAMPAIGN}$"))
        detail = admin(f"/admin/api/v1/tenants/{TENANT}/campaigns/{CAMPAIGN}")
        by_state = detail["stats"]["by_state"]
        for state in STATES:
            expect(page.locator(f"td[data-state='{state}']")).to_have_text(str(by_state.get(state, 0)))
        expect(page.locator("td[data-state='total']")).to_have_text(str(detail["stats"]["total"]))
        # The guard's share: failed and timed-out over finished jobs (never reset here).
        failing = by_state.get("failed", 0) + by_state.get("timed-out", 0)
        finished = failing + by_state.get("succeeded", 0)
        expect(page.locator("#failure")).to_have_text(f"{100 * failing / finished:.1f}%")
        expect(page.locator("#threshold")).to_have_text(f"{detail['max_failure_pct']:.1f}%")
        expect(page.locator("#waves")).to_contain_text(f"at most {detail['wave_cap']} devices")
        # uPlot drew both charts from the samples.
        expect(page.locator("#chart-jobs canvas")).to_have_count(1)
        expect(page.locator("#chart-failure canvas")).to_have_count(1)
        points = int(page.locator("#chart-jobs").get_attribute("data-points"))
        if points < 3:
            problems.append(f"the chart has {points} points")
        shot(page, "03-campaign.png")

        page.wait_for_function("() => window.htmx !== undefined")
        page.click("button[data-action='pause']")
        expect(page.locator("#status")).to_have_text("paused", timeout=15_000)
        expect(page.locator("button[data-action='resume']")).to_be_visible()
        after = admin(f"/admin/api/v1/tenants/{TENANT}/campaigns/{CAMPAIGN}")
        if after["status"] != "paused":
            problems.append(f"the admin API says {after['status']} after the pause")
        shot(page, "04-paused.png")

        page.click("nav >> text=Devices")
        expect(page).to_have_url(re.compile(r"/ui/devices"))
        # htmx is deferred: typing before it has bound the field would go unheard.
        page.wait_for_load_state("load")
        page.wait_for_function("() => window.htmx !== undefined")
        expect(page.locator("tr[data-device]")).to_have_count(10)
        page.fill("input[name=q]", "d-1")
        expect(page.locator("tr[data-device]")).to_have_count(2)  # d-1 and d-10
        shot(page, "05-devices.png")

        page.click("nav >> text=Plugins")
        expect(page.locator("#loaded tr[data-plugin='mxchip']")).to_contain_text("ota:dialect@")
        # The replica reports every 2 s and the table refreshes every 5 s: a rate appears.
        expect(page.locator("#replicas tr[data-plugin='mxchip']").first).to_contain_text("/s", timeout=20_000)
        shot(page, "06-plugins.png")

        page.click("nav >> text=Releases")
        expect(page.locator("#releases")).to_contain_text("Spring fixes")
        shot(page, "07-releases.png")
        browser.close()
    if problems:
        print("problems in the page:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print("dashboard driven: logged in, numbers matched the admin API, paused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
