"""A filer deletes a draft they no longer need, from its page through a confirmation page
(issue 15, point 5) — in Chromium."""
from __future__ import annotations

import pytest

from tests.browser.test_browser_filing import _sign_in

pytestmark = pytest.mark.browser


def test_a_draft_is_deleted_only_after_its_confirmation_page(page, factory):
    org = factory.org("株式会社下書き", facility=True)
    _sign_in(page, factory.user("filer", org=org, compartments=("T01",)))
    page.goto("/reports")
    page.locator("[data-test=new-report]").click()
    page.wait_for_url("**/edit/contact")
    report_url = page.url.split("/edit/")[0]
    page.goto(report_url)
    page.locator("[data-test=delete-draft]").click()
    page.wait_for_url("**/delete")
    assert page.locator("[data-test=confirm-delete]").count() == 1
    page.locator(".button-row a").click()  # cancelling keeps it
    page.wait_for_url(report_url)
    page.locator("[data-test=delete-draft]").click()
    page.wait_for_url("**/delete")
    page.locator("[data-test=confirm-delete]").click()
    page.wait_for_load_state()
    assert page.locator(".notice--success").count() == 1 and page.url.endswith("/reports")
    assert page.goto(report_url).status == 404
