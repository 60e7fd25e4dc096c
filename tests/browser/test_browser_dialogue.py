"""A filer submits, a reviewer requests information, the filer answers with an attachment,
the reviewer closes the case — in Chromium."""
from __future__ import annotations

from datetime import timedelta

import pytest

from portal.core.timeutil import today_jst
from tests.browser.test_browser_filing import _sign_in, file_report, submit_checked

pytestmark = pytest.mark.browser


def test_request_answer_close(page, browser, live_server, factory):
    check_url, filer = file_report(page, factory, technology="T02")
    reference = submit_checked(page)

    reviewer = factory.user("reviewer", compartments=("T02",))
    ctx = browser.new_context(base_url=live_server, locale="ja-JP")
    rv = ctx.new_page()
    rv.set_default_timeout(10000)
    _sign_in(rv, reviewer)
    rv.goto("/review/queue")
    rv.get_by_role("link", name=reference).click()
    case_url = rv.url
    rv.locator("[data-test=take]").click()
    rv.wait_for_load_state()
    rv.fill("#body-external", "相手方との契約書案を提出してください。")
    rv.check("#request-external")
    rv.fill("#due-external", (today_jst() + timedelta(days=10)).isoformat())
    rv.locator("[data-test=send-external]").click()
    rv.wait_for_load_state()
    assert "回答待ち" in rv.content()

    page.goto("/reports")
    page.get_by_role("link", name=reference).click()
    assert "相手方との契約書案を提出してください。" in page.content()
    page.fill("#body-external", "契約書案を添付します。")
    page.set_input_files("#file-external", files=[{"name": "契約書案.pdf", "mimeType": "application/pdf",
                                                   "buffer": b"%PDF-1.7\n" + b"draft contract " * 2000}])
    page.locator("[data-test=send-external]").click()
    page.wait_for_load_state()
    assert "契約書案.pdf" in page.content()

    rv.goto(case_url)
    assert "契約書案.pdf" in rv.content() and "審査中" in rv.content()
    rv.locator("details summary").nth(1).click()  # 確認済として終了 (close without an inform)
    rv.fill("#close-summary", "管理措置を確認しました。インフォームは行いません。")
    rv.locator("[data-test=close-case]").click()
    rv.wait_for_load_state()
    assert "確認済" in rv.content()
    page.reload()
    assert "管理措置を確認しました。インフォームは行いません。" in page.content()
    ctx.close()
