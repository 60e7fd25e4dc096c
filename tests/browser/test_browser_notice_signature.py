"""Issue 16 in Chromium: an approver issues the inform, the company downloads the signed notice
and it verifies with poppler's pdfsig against the CA certificate the portal links to; the
notice page shows the signature status, and after a revocation says so."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.browser.test_browser_filing import _sign_in
from tests.test_informs import case, draft_and_send, post  # noqa: F401  (case: a fixture)

pytestmark = pytest.mark.browser


def _nss_trusting(ca_pem, tmp_path):
    d = tmp_path / "nss"
    d.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{d}", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{d}", "-n", "notice-ca", "-t", "C,C,C", "-i", str(ca_pem)],
                   check=True, capture_output=True)
    return d


def test_approve_download_verify_with_pdfsig_and_see_the_status(page, browser, live_server, app, case,  # noqa: F811
                                                                factory, tmp_path):
    if not (shutil.which("pdfsig") and shutil.which("certutil")):
        pytest.skip("pdfsig (poppler-utils) and certutil (libnss3-tools) are needed")
    i = draft_and_send(case)
    # Another approver than the case's: its one-time code was just used by the test client.
    _sign_in(page, factory.user("approver", compartments=("T01",)))
    page.goto(f"/informs/{i.id}/confirm")
    page.set_default_timeout(60000)  # issuing renders and signs two notices
    page.locator("[data-test=confirm-approve]").click()
    page.wait_for_load_state()
    assert page.locator("[data-test=inform-issued]").count() == 1

    fctx = browser.new_context(base_url=live_server, locale="ja-JP", accept_downloads=True)
    fp = fctx.new_page()
    fp.set_default_timeout(15000)
    _sign_in(fp, case["u_filer"])
    fp.goto(f"/reports/{case['rid']}")
    with fp.expect_download() as dl:
        fp.locator("[data-test=notice-ja]").click()
    notice = tmp_path / "notice.pdf"
    dl.value.save_as(notice)
    with fp.expect_download() as dl:
        fp.locator("[data-test=notice-signature] [data-test=ca-pem]").click()
    ca = tmp_path / "notice-ca.pem"
    dl.value.save_as(ca)

    out = subprocess.run(["pdfsig", "-nssdir", f"sql:{_nss_trusting(ca, tmp_path)}", str(notice)],
                         capture_output=True, text=True, timeout=60).stdout
    assert "Signature Validation: Signature is Valid." in out and "Certificate is Trusted." in out, out
    assert "Total document signed" in out

    fp.locator("[data-test=signature-status]").click()
    fp.wait_for_load_state()
    assert fp.locator("[data-test=signature-valid]").count() == 1
    assert "DEMO Inform Notice Signing" in fp.locator("[data-test=signer]").inner_text()

    assert post(case["approver"], case["rid"], f"/informs/{i.id}/revoke",
                {"reason": "前提事実の誤り"}).status_code == 302
    fp.reload()
    assert "前提事実の誤り" in fp.locator("[data-test=notice-revoked]").inner_text()
    assert fp.locator("[data-test=signature-valid]").count() == 1  # the file is still the signed one
    fctx.close()
