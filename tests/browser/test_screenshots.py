"""`make screenshots`: each role's main pages (home, every page of its menu, a case) at 1280
and 375 px, as full-page PNGs in $PORTAL_SCREENSHOTS, for a person to review. Skipped unless
that variable is set (`make test` does not set it); the pages are audited by axe like any other."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.browser.axe import HEIGHT, WIDTHS
from tests.browser.test_browser_filing import _sign_in
from tests.conftest import sign_in
from tests.reports_helpers import fill_all, new_report, submit
from tests.test_dialogue import send

pytestmark = pytest.mark.browser
OUT = os.environ.get("PORTAL_SCREENSHOTS")
ROLES = ("filer", "org_admin", "reviewer", "approver", "security_officer", "admin", "auditor")


@pytest.mark.skipif(not OUT, reason="only for `make screenshots` (set PORTAL_SCREENSHOTS)")
@pytest.mark.parametrize("role", ROLES)
def test_screenshots_of_the_main_pages(role, app, factory, browser, live_server, tmp_path):
    s = app.config["SETTINGS"]
    s.blob_store, s.blob_dir = "directory", tmp_path / "blobs"
    org = factory.org("株式会社スクリーンショット", facility=True)
    filer = factory.user("filer", org=org, compartments=("T01",))
    person = filer if role == "filer" else factory.user(role, org=org if role == "org_admin" else None,
                                                          compartments=("T01",))
    fc = app.test_client()
    sign_in(fc, filer)
    rid = new_report(fc)
    fill_all(fc, rid)
    submit(fc, rid)
    send(fc, rid, "external", "移転先での管理体制について補足します。")

    out = Path(OUT) / role
    out.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(base_url=live_server, locale="ja-JP", viewport={"width": WIDTHS[0], "height": HEIGHT})
    page = ctx.new_page()
    page.set_default_timeout(15000)
    _sign_in(page, person)
    menu = page.get_by_role("navigation").get_by_role("link")
    targets = ["/"] + [menu.nth(i).get_attribute("href") for i in range(menu.count())] + [f"/reports/{rid}"]
    shot = 0
    for href in dict.fromkeys(t for t in targets if t):
        if page.goto(href).status != 200:  # a case this role may not open
            continue
        name = re.sub(r"[^a-z0-9]+", "-", href.lower()).strip("-") or "home"
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": HEIGHT})
            page.screenshot(path=str(out / f"{name}-{width}.png"), full_page=True)
            shot += 1
        page.set_viewport_size({"width": WIDTHS[0], "height": HEIGHT})
    ctx.close()
    assert shot >= 2 * 2  # at least the home page and one more
