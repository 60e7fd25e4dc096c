"""A reviewer signs in with password and TOTP, sees the home page, and signs out — in Chromium."""
from __future__ import annotations

import pytest

from tests.conftest import PASSWORD, current_code, ja

pytestmark = pytest.mark.browser


class LoginPage:
    def __init__(self, page):
        self.page = page

    def open(self):
        self.page.goto("/auth/login")
        return self

    def sign_in(self, email, password):
        self.page.get_by_label(ja("E-mail address"), exact=False).fill(email)
        self.page.get_by_label(ja("Password"), exact=False).first.fill(password)
        self.page.locator("[data-test=sign-in]").click()


def test_reviewer_signs_in_with_totp_and_signs_out(page, factory):
    user = factory.user("reviewer")
    LoginPage(page).open().sign_in(user.email, PASSWORD)
    page.wait_for_url("**/auth/2fa")
    page.get_by_label(ja("Verification code")).fill(current_code(user.totp_secret))
    page.locator("[data-test=verify]").click()
    page.wait_for_url("**/")
    assert user.name in page.content()
    page.locator("[data-test=sign-out]").click()
    page.wait_for_url("**/auth/login")
    assert ja("You have signed out.") in page.content()
    page.goto("/account")
    assert "/auth/login" in page.url


def test_a_wrong_password_moves_focus_to_the_error_summary(page, factory):
    user = factory.user("filer")
    LoginPage(page).open().sign_in(user.email, "definitely not it")
    summary = page.locator(".error-summary")
    summary.wait_for()
    assert page.title().startswith("エラー：")
    # A function, not an expression: Playwright polls an expression with eval(), which the CSP refuses.
    page.wait_for_function("() => document.activeElement && document.activeElement.classList.contains('error-summary')",
                           timeout=15000)
