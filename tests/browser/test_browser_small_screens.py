"""Issue 15 points 7 and 6 in a real browser: at 375 px no page of any role's menu scrolls
sideways and its tables become stacked rows; an English reader meets English pages only.
Every page visited is audited by axe at 1280 and 375 px like any other (conftest.py)."""
from __future__ import annotations

import pytest

from tests.browser.axe import HEIGHT
from tests.browser.test_browser_filing import _sign_in
from tests.conftest import sign_in
from tests.reports_helpers import fill_all, new_report, submit
from tests.test_dialogue import send
from tests.test_display_words import ASCII_REPORT, JAPANESE

pytestmark = pytest.mark.browser
PHONE = {"width": 375, "height": HEIGHT}
ROLES = ("filer", "org_admin", "reviewer", "approver", "security_officer", "admin", "auditor")
# What a page's own layout may not do at 375 px: be wider than the screen, or lay a stacked
# table's cells side by side.
_LAYOUT = """() => ({
  sideways: document.documentElement.scrollWidth > window.innerWidth,
  unstacked: [...document.querySelectorAll('table.table--stack tbody tr')]
    .filter(tr => [...tr.children].filter(td => td.offsetParent !== null)
      .some((td, i, cells) => i > 0 && td.getBoundingClientRect().top === cells[0].getBoundingClientRect().top)).length,
  tables: [...document.querySelectorAll('main table')].map(t => t.className),
})"""


@pytest.fixture
def case_world(app, factory, tmp_path):
    s = app.config["SETTINGS"]
    s.blob_store, s.blob_dir = "directory", tmp_path / "blobs"
    org = factory.org("Sample Electronics KK", facility=True)
    filer = factory.user("filer", org=org, compartments=("T01",))
    fc = app.test_client()
    sign_in(fc, filer)
    rid = new_report(fc)
    fill_all(fc, rid, ASCII_REPORT)
    submit(fc, rid)
    send(fc, rid, "external", "We add a note on the controls at the destination.")
    return {"org": org, "filer": filer, "rid": rid}


def _menu_pages(page, rid: int) -> list[str]:
    menu = page.get_by_role("navigation").get_by_role("link")
    hrefs = ["/"] + [menu.nth(i).get_attribute("href") for i in range(menu.count())]
    return list(dict.fromkeys(h for h in [*hrefs, f"/reports/{rid}", f"/reports/{rid}/attachments"] if h))


def test_no_page_of_any_role_scrolls_sideways_on_a_phone(case_world, factory, browser, live_server):
    problems, seen, stacked = [], 0, 0
    for role in ROLES:
        person = case_world["filer"] if role == "filer" else factory.user(
            role, org=case_world["org"] if role == "org_admin" else None, compartments=("T01",))
        ctx = browser.new_context(base_url=live_server, locale="ja-JP", viewport=PHONE)
        page = ctx.new_page()
        page.set_default_timeout(15000)
        _sign_in(page, person)
        for href in _menu_pages(page, case_world["rid"]):
            if page.goto(href).status != 200:  # a case this role may not open
                continue
            seen += 1
            got = page.evaluate(_LAYOUT)
            if got["sideways"]:
                problems.append(f"{role} {href}: scrolls sideways")
            if got["unstacked"]:
                problems.append(f"{role} {href}: {got['unstacked']} table rows not stacked")
            # Every data table on a phone is stacked (a chart's hidden table is for screen readers).
            stacked += sum("table--stack" in c for c in got["tables"])
            wide = [c for c in got["tables"] if "table--stack" not in c and "visually-hidden" not in c]
            if wide:
                problems.append(f"{role} {href}: tables not stacked: {wide}")
        ctx.close()
    assert not problems, "\n".join(problems)
    assert seen >= 20 and stacked >= 5  # the menus of seven roles, and their lists


def test_an_english_reader_meets_english_pages(case_world, browser, live_server):
    ctx = browser.new_context(base_url=live_server, locale="en-GB", viewport={"width": 1280, "height": HEIGHT})
    page = ctx.new_page()
    page.set_default_timeout(15000)
    _sign_in(page, case_world["filer"])
    page.locator(".lang-form button[lang=en], .lang-form [value=en]").first.click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    rid = case_world["rid"]
    for href in _menu_pages(page, rid):
        assert page.goto(href).status == 200
        text = page.locator("body").inner_text()
        switch = page.locator(".lang-form").inner_text()  # 日本語 names itself in Japanese
        found = sorted(set(JAPANESE.findall(text.replace(switch, ""))))
        assert not found, f"{href}: Japanese on an English page: {''.join(found)}"
    # A refusal speaks English too, beside its field, its mark read out as "Error:".
    page.goto(f"/reports/{rid}")
    page.fill("#body-external", "   ")
    page.locator("[data-test=send-external]").click()
    page.wait_for_load_state()
    error = page.locator("#body-external-error")
    assert error.count() == 1 and error.inner_text().startswith("Error:")
    assert not JAPANESE.search(page.locator("main").inner_text())
    ctx.close()
