"""Real-browser tests: the app served by a real WSGI server in a thread, driven by Debian's
Chromium through Playwright. Skipped locally without Chromium; CI sets PORTAL_REQUIRE_BROWSER.

Every document a test shows is audited by axe-core at 1280 and 375 px (tests/browser/axe.py);
a test fails when any WCAG 2.x A/AA violation was found, and its pages are recorded under
test-artifacts/axe/<database>/ (`python -m tests.browser.axe_report` sums them up)."""
from __future__ import annotations

import os
import shutil
import threading

import pytest
from werkzeug.serving import make_server

from tests.browser.axe import HEIGHT, WIDTHS, Audit
from tests.conftest import IS_PG

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def live_server(app, browser, request):
    audit = Audit(request.node.nodeid)
    server = make_server("127.0.0.1", 0, audit.recorder(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield url
        audit.replay(browser, url)  # while the server runs: the replay loads the CSS and script
    finally:
        server.shutdown()
        thread.join(timeout=5)
    audit.save("postgresql" if IS_PG else "sqlite")
    found = audit.violations()
    if found:
        pytest.fail(f"axe-core: {len(found)} WCAG A/AA violation(s) on the pages this test was shown:\n"
                    + "\n".join(found), pytrace=False)


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("PORTAL_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required in CI but was not found")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server, locale="ja-JP",
                                  viewport={"width": WIDTHS[0], "height": HEIGHT})
    pg = context.new_page()
    pg.set_default_timeout(10000)
    yield pg
    context.close()

