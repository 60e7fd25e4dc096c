"""A compliance officer files a prior report in Chromium, and a reviewer sees it arrive."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.conftest import PASSWORD, current_code

pytestmark = pytest.mark.browser


def _sign_in(page, user):
    page.goto("/auth/login")
    page.fill("#email", user.email)
    page.fill("#password", PASSWORD)
    page.locator("[data-test=sign-in]").click()
    if user.totp_secret:
        page.wait_for_url("**/auth/2fa")
        page.fill("#code", current_code(user.totp_secret))
        page.locator("[data-test=verify]").click()
    page.wait_for_url("**/")


def _continue(page):
    page.locator("[data-test=continue]").click()
    page.wait_for_load_state()


def file_report(page, factory, *, technology="T08") -> tuple[str, object]:
    """The filer's whole journey through the question pages; returns (reference, filer)."""
    org = factory.org("株式会社ブラウザ", facility=True)
    filer = factory.user("filer", org=org, compartments=(technology,))
    _sign_in(page, filer)
    page.goto("/reports")
    page.locator("[data-test=new-report]").click()
    page.wait_for_url("**/edit/contact")
    page.fill("#contact_phone", "０３−１２３４−５６７８")
    _continue(page)
    page.select_option("#technology", technology)
    page.fill("#description", "ArFレジストの樹脂組成と添加剤の配合")
    page.check("input[name=transfer_form][value=joint_research]")
    page.check("input[name=classification][value=restricted]")
    _continue(page)
    page.fill("#counterparty_name", "Hsinchu Resist Materials Corp.")
    page.select_option("#counterparty_country", "TW")
    page.check("input[name=counterparty_relation][value=unrelated]")
    _continue(page)
    page.select_option("#destination_country", "TW")
    page.fill("#contract_date", (date.today() + timedelta(days=40)).isoformat())
    page.fill("#transfer_date", (date.today() + timedelta(days=80)).isoformat())
    page.fill("#contract_value", "50,000,000")
    page.select_option("#currency", "JPY")
    _continue(page)
    page.check("input[name=measures][value=black_boxing]")
    _continue(page)
    page.wait_for_url("**/attachments")  # the files are a step of the filing
    _continue(page)
    page.wait_for_url("**/check")
    return page.url, filer


def submit_checked(page) -> str:
    page.check("#attest")
    page.locator("[data-test=submit-report]").click()
    page.wait_for_url("**/done")
    return page.locator("[data-test=reference]").inner_text()


def test_filer_files_a_report_and_a_reviewer_sees_it(page, browser, live_server, factory):
    check_url, filer = file_report(page, factory)
    assert "Hsinchu Resist Materials Corp." in page.content()
    # Attach the licence draft: it is encrypted as it streams in.
    page.goto(check_url.replace("/check", "/attachments"))
    page.set_input_files("#file", files=[{"name": "ライセンス契約書案.pdf", "mimeType": "application/pdf",
                                          "buffer": b"%PDF-1.7\n" + b"licence terms " * 5000}])
    page.locator("[data-test=upload]").click()
    # upload.js sends it with a progress bar and shows the page the server answers with.
    page.locator("td", has_text="ライセンス契約書案.pdf").wait_for()
    assert page.url.endswith("/attachments") and page.locator("[data-test=upload]").is_enabled()
    page.goto(check_url)
    assert "ライセンス契約書案.pdf" in page.locator("[data-test=check-attachments]").inner_text()
    page.goto(check_url)
    reference = submit_checked(page)
    assert reference.startswith(f"TTR-{date.today().year}-")

    reviewer = factory.user("reviewer", compartments=("T08",))
    ctx = browser.new_context(base_url=live_server, locale="ja-JP")
    other = ctx.new_page()
    _sign_in(other, reviewer)
    other.goto("/review/queue")
    assert reference in other.content()
    other.get_by_role("link", name=reference).click()
    assert "ArFレジスト" in other.content()
    other.goto(other.url + "/attachments")
    with other.expect_download() as dl:
        other.get_by_text("ライセンス契約書案.pdf").click()
    path = dl.value.path()
    with open(path, "rb") as f:
        assert f.read() == b"%PDF-1.7\n" + b"licence terms " * 5000
    ctx.close()
