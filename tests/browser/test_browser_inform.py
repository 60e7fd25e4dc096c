"""A reviewer drafts an inform, an approver issues it, the company acknowledges — in Chromium."""
from __future__ import annotations

import pytest

from tests.browser.test_browser_filing import _sign_in
from tests.conftest import sign_in
from tests.reports_helpers import fill_all, new_report, submit

pytestmark = pytest.mark.browser
pytest.importorskip("portal.informs.notice")


def test_draft_approve_acknowledge(page, browser, live_server, app, factory, tmp_path):
    s = app.config["SETTINGS"]
    s.blob_store, s.blob_dir = "directory", tmp_path / "blobs"
    org = factory.org("株式会社通知", facility=True)
    filer = factory.user("filer", org=org, compartments=("T01",))
    reviewer = factory.user("reviewer", compartments=("T01",))
    approver = factory.user("approver", compartments=("T01",))
    c = app.test_client()
    sign_in(c, filer)
    rid = new_report(c)
    fill_all(c, rid)
    submit(c, rid)

    _sign_in(page, reviewer)
    page.goto(f"/reports/{rid}")
    page.locator("[data-test=take]").click()
    page.wait_for_load_state()
    page.locator("[data-test=draft-inform]").click()
    page.fill("#new-inform-reasons", "管理措置が不十分であり、技術流出の懸念が払拭されないため。")
    page.fill("#new-inform-internal_rationale", "相手方の関連会社に懸念がある。")
    page.locator("[data-test=save-inform]").click()
    page.wait_for_load_state()
    page.locator("[data-test=send-for-approval]").click()
    page.wait_for_load_state()
    assert page.locator("[data-test=inform-pending_approval]").count() == 1

    ctx = browser.new_context(base_url=live_server, locale="ja-JP", accept_downloads=True)
    ap = ctx.new_page()
    ap.set_default_timeout(15000)
    _sign_in(ap, approver)
    ap.goto(f"/reports/{rid}")
    ap.locator("[data-test=approve]").click()
    ap.wait_for_load_state()
    # The confirmation page shows the notice as it will be sent; only its button issues it.
    assert "管理措置が不十分" in ap.locator("[data-test=notice-preview]").inner_text()
    ap.locator("[data-test=confirm-approve]").click()
    ap.wait_for_load_state()
    assert ap.locator("[data-test=inform-issued]").count() == 1

    fctx = browser.new_context(base_url=live_server, locale="ja-JP", accept_downloads=True)
    fp = fctx.new_page()
    fp.set_default_timeout(15000)
    _sign_in(fp, filer)
    fp.goto(f"/reports/{rid}")
    assert "管理措置が不十分" in fp.content() and "関連会社に懸念" not in fp.content()
    with fp.expect_download() as dl:
        fp.locator("[data-test=notice-ja]").click()
    with open(dl.value.path(), "rb") as f:
        assert f.read(5) == b"%PDF-"
    fp.check("#ack-confirm")
    fp.locator("[data-test=acknowledge]").click()
    fp.wait_for_load_state()
    ap.reload()
    assert "年" in ap.locator("[data-test=ack-status]").inner_text()  # a date, not "not yet"
    ctx.close()
    fctx.close()
