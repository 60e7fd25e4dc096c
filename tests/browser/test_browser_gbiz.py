"""「GビズIDでログイン」 in Chromium: a company filer signs in on the provider's own page (panva's
oidc-provider, tests/oidc/provider.mjs) and lands on their report list; a Member of another
company signed in the same way never sees the first company's reports."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.conftest import ja
from tests.oidc.harness import configure, oidc_provider, unconfigure  # noqa: F401 - the fixture
from tests.reports_helpers import fill_all, new_report, submit

pytestmark = pytest.mark.browser


@pytest.fixture
def gbiz_live(app, live_server, oidc_provider):  # noqa: F811
    s = app.config["SETTINGS"]
    before = s.base_url
    s.base_url = live_server  # the redirect URI the provider sends the browser back to
    configure(app, oidc_provider)
    yield oidc_provider
    unconfigure(app)
    s.base_url = before


def linked_filer(app, factory, provider, login: str):
    """A filer with a clearance whose account is linked to the GビズID ``login``."""
    from portal import db
    from portal.auth.models import GbizLink

    org = factory.org(facility=True)
    user = factory.user("filer", org=org)
    provider.account(login, account_type="member", corporate_number=org.corporate_number, email=user.email,
                     name=user.name)
    with app.app_context():
        db.session().add(GbizLink(user_id=user.id, issuer=app.config["SETTINGS"].oidc_issuer, subject=login,
                                  corporate_number=org.corporate_number, account_type="member"))
        db.session().commit()
    return user


def sign_in_with_gbiz(page, login: str) -> None:
    page.goto("/reports")  # signed out: the sign-in page, which comes back here afterwards
    page.wait_for_url("**/auth/login**")
    page.get_by_role("link", name=ja("Sign in with gBizID")).click()
    page.wait_for_selector("input[name=login]")  # the provider's own page
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "provider-side password")
    page.locator("button[type=submit]").click()
    page.wait_for_url("**/reports")


def test_filer_signs_in_with_gbiz_and_another_company_never_sees_the_report(page, app, factory, gbiz_live):
    from portal import db
    from portal.reports.models import Report

    filer = linked_filer(app, factory, gbiz_live, "gbiz-browser-a")
    writer = app.test_client()
    from tests.conftest import sign_in

    sign_in(writer, filer)
    report_id = new_report(writer)
    fill_all(writer, report_id)
    assert submit(writer, report_id).status_code == 302
    with app.app_context():
        reference = db.session().get(Report, report_id).reference
    assert reference

    sign_in_with_gbiz(page, "gbiz-browser-a")
    assert page.url.startswith(app.config["SETTINGS"].base_url) and page.url.endswith("/reports")
    assert filer.name in page.content() and reference in page.content()
    # Sign-out ends the provider's session too: its page asks, then sends the browser back.
    page.locator("[data-test=sign-out]").click()
    page.wait_for_url(f"{gbiz_live.issuer}/session/end**")
    page.locator("button[name=logout]").click()
    page.wait_for_url("**/auth/login**")
    assert ja("You have signed out.") in page.content()

    linked_filer(app, factory, gbiz_live, "gbiz-browser-b")
    page.context.clear_cookies()  # another person, another browser
    sign_in_with_gbiz(page, "gbiz-browser-b")
    assert reference not in page.content()
    resp = page.goto(f"/reports/{report_id}")
    assert resp.status == 404
    with app.app_context():
        events = db.session().execute(sa.text(
            "SELECT count(*) FROM audit_events WHERE action = 'auth.signin' AND details LIKE '%gbiz%'")).scalar_one()
    assert events == 2
