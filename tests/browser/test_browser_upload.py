"""The attachment step's upload script in Chromium (issue 15): a file over the limit is refused
beside the field before anything is sent; a failed upload says so and the button works again;
a successful one shows the list with the file and its readable size."""
from __future__ import annotations

import pytest

from tests.browser.test_browser_filing import _sign_in

pytestmark = pytest.mark.browser


def _draft_attachments(page, factory) -> str:
    org = factory.org("株式会社アップロード", facility=True)
    _sign_in(page, factory.user("filer", org=org, compartments=("T01",)))
    page.goto("/reports")
    page.locator("[data-test=new-report]").click()
    page.wait_for_url("**/edit/contact")
    page.goto(page.url.replace("/edit/contact", "/attachments"))
    return page.url


def test_upload_script_refuses_fails_and_succeeds_readably(page, app, factory):
    settings = app.config["SETTINGS"]
    old = settings.max_upload_bytes
    settings.max_upload_bytes = 1024 * 1024
    try:
        _draft_attachments(page, factory)
        button = page.locator("[data-test=upload]")
        error = page.locator("#file-error")
        # Over the limit: said beside the field at once, nothing sent.
        sent = []
        page.on("request", lambda r: sent.append(r) if r.method == "POST" else None)
        page.set_input_files("#file", files=[{"name": "big.pdf", "mimeType": "application/pdf",
                                              "buffer": b"%PDF-1.7\n" + b"x" * (2 * 1024 * 1024)}])
        button.click()
        error.wait_for(state="visible")
        assert "1 MB" in error.inner_text() and button.is_enabled() and sent == []
        assert page.locator("#file").get_attribute("aria-invalid") == "true"
        # The connection fails half-way: a readable error, and the button works again.
        page.route("**/attachments", lambda route: route.abort() if route.request.method == "POST"
                   else route.continue_())
        page.set_input_files("#file", files=[{"name": "small.pdf", "mimeType": "application/pdf",
                                              "buffer": b"%PDF-1.7\n" + b"y" * 300_000}])
        button.click()
        page.wait_for_function("document.querySelector('[data-test=upload]') && "
                               "!document.querySelector('[data-test=upload]').disabled && "
                               "!document.querySelector('#file-error').hidden")
        assert len(error.inner_text()) > 20 and "1 MB" in error.inner_text()
        page.unroute("**/attachments")
        # Sent: the page the server answered with, the file listed with its size in KB.
        button.click()
        page.locator("td", has_text="small.pdf").wait_for()
        assert page.locator("[data-test=size]").first.inner_text() == "293 KB"
        assert page.locator("[data-test=upload]").is_enabled()
    finally:
        settings.max_upload_bytes = old
