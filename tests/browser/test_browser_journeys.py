"""Two journeys, walked only by clicking what the pages offer, with what a person does counted
(tests/browser/journeys.py): from the sign-in page to a submitted report with one attachment,
and from the notification of a request for information to the answer."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.browser.journeys import Journey
from tests.browser.test_browser_filing import _sign_in
from tests.conftest import IS_PG, PASSWORD, ja

pytestmark = pytest.mark.browser
DATABASE = "postgresql" if IS_PG else "sqlite"


def _continue(page) -> None:
    page.locator("[data-test=continue]").click()
    page.wait_for_load_state()


def _file_with_one_attachment(page, filer) -> tuple[str, dict]:
    j = Journey(page)
    page.goto("/auth/login")
    j.start()
    j.fill("#email", filer.email)
    j.fill("#password", PASSWORD)
    page.locator("[data-test=sign-in]").click()
    page.wait_for_url("**/")
    page.get_by_role("navigation").get_by_role("link", name=ja("Prior reports")).click()
    page.wait_for_url("**/reports")
    page.locator("[data-test=new-report]").click()
    page.wait_for_url("**/edit/contact")
    j.fill("#contact_phone", "03-1234-5678")
    _continue(page)
    j.select("#technology", "T08")
    j.fill("#description", "ArFレジストの樹脂組成と添加剤の配合")
    page.check("input[name=transfer_form][value=joint_research]")
    page.check("input[name=classification][value=restricted]")
    _continue(page)
    j.fill("#counterparty_name", "Hsinchu Resist Materials Corp.")
    j.select("#counterparty_country", "TW")
    page.check("input[name=counterparty_relation][value=unrelated]")
    _continue(page)
    j.select("#destination_country", "TW")
    j.fill("#contract_date", (date.today() + timedelta(days=40)).isoformat())
    j.fill("#transfer_date", (date.today() + timedelta(days=80)).isoformat())
    j.fill("#contract_value", "50,000,000")
    j.select("#currency", "JPY")
    _continue(page)
    page.check("input[name=measures][value=black_boxing]")
    _continue(page)
    page.wait_for_url("**/attachments")  # point 5: the files are a step of the filing
    j.choose_file("#file", [{"name": "技術資料.pdf", "mimeType": "application/pdf",
                             "buffer": b"%PDF-1.7\n" + b"resist data " * 4000}])
    page.locator("[data-test=upload]").click()
    page.locator("td", has_text="技術資料.pdf").wait_for()
    _continue(page)
    page.wait_for_url("**/check")
    assert "技術資料.pdf" in page.locator("[data-test=check-attachments]").inner_text()
    page.check("#attest")
    page.locator("[data-test=submit-report]").click()
    page.wait_for_url("**/done")
    reference = page.locator("[data-test=reference]").inner_text()
    return reference, j.save("sign-in-to-submitted-report-with-one-attachment", DATABASE)


def test_sign_in_to_a_report_then_notification_to_an_answer(page, browser, live_server, factory):
    org = factory.org("株式会社ジャーニー", facility=True)
    filer = factory.user("filer", org=org, compartments=("T08",))
    reference, filing = _file_with_one_attachment(page, filer)
    assert reference.startswith(f"TTR-{date.today().year}-")
    # sign in (1), the menu (1), new report (1), 5 question pages (5) with 3 radio buttons and
    # a check box (4), upload (1) and continue (1), the declaration (1) and submit (1).
    assert filing["clicks"] == 16 and filing["file_choices"] == 1

    reviewer = factory.user("reviewer", compartments=("T08",))
    ctx = browser.new_context(base_url=live_server, locale="ja-JP")
    rv = ctx.new_page()
    rv.set_default_timeout(10000)
    _sign_in(rv, reviewer)
    rv.goto("/review/queue")
    rv.get_by_role("link", name=reference).click()
    rv.locator("[data-test=take]").click()
    rv.wait_for_load_state()
    rv.fill("#body-external", "技術資料の第3章の根拠データを提出してください。")
    rv.check("#request-external")
    # Point 2: the due date is filled in (N business days ahead) and may be left as it is.
    assert rv.input_value("#due-external")
    rv.locator("[data-test=send-external]").click()
    rv.wait_for_load_state()
    assert ja("Awaiting response") in rv.content()

    j = Journey(page)
    page.goto("/")
    j.start()
    # Point 3: the company's home page says what waits for it.
    assert reference in page.locator("[data-test=work-list-company_action]").inner_text()
    page.get_by_role("navigation").get_by_role("link", name=ja("Notifications")).click()
    page.wait_for_url("**/notifications")
    page.get_by_role("link", name=reference).click()
    page.wait_for_url("**/reports/*")
    # Point 4: the company's next deadline is the answer's due date.
    assert page.locator("[data-test=next-deadline] [data-test=deadline]").get_attribute("data-kind") == "response"
    j.fill("#body-external", "第3章の根拠データを回答します。")
    page.locator("[data-test=send-external]").click()
    page.wait_for_load_state()
    page.get_by_text("第3章の根拠データを回答します。").wait_for()
    answering = j.save("notification-to-answered-request", DATABASE)
    assert answering["clicks"] == 3  # the menu's notifications, the case, send
    rv.reload()
    assert ja("Under review") in rv.content() and "第3章の根拠データを回答します。" in rv.content()
    ctx.close()
