"""Issue 15 in Chromium: each home page's work list leads to the work (決裁待ち → the
confirmation page that alone issues the notice; 対応が必要; my cases and overdue), the next
deadline and Group A are shown to officers, and choices out of a person's reach are withheld
with the reason. The cases are prepared through the test client; the browser does what the
person on the page does."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.core.timeutil import today_jst
from tests.browser.test_browser_filing import _sign_in
from tests.conftest import PASSWORD, csrf_of, current_code, ja, sign_in
from tests.reports_helpers import fill_all, new_report, submit

pytestmark = pytest.mark.browser
pytest.importorskip("portal.informs.notice")

INFORM = {"legal_basis": "外国為替及び外国貿易法第55条の8", "reasons": "管理措置が不十分であり、技術流出の懸念が払拭されないため。",
          "conditions": "", "internal_rationale": "内部の根拠。", "rationale_classification": "restricted"}


def _post(client, rid: int, url: str, data: dict | None = None) -> None:
    token = csrf_of(client.get(f"/reports/{rid}").get_data(as_text=True))
    resp = client.post(url, data={**(data or {}), "csrf_token": token})
    assert resp.status_code == 302, (url, resp.status_code)


def _sql(app, sql: str, **params):
    from portal import db

    with app.app_context():
        result = db.session().execute(sa.text(sql), params)
        rows = result.all() if result.returns_rows else []
        db.session().commit()
        return rows


def _sign_in_again(page, user) -> None:
    """Sign in someone whose current TOTP code the test client already used (a code counts
    once): with the next step's code, which the portal accepts for clock drift."""
    page.goto("/auth/login")
    page.fill("#email", user.email)
    page.fill("#password", PASSWORD)
    page.locator("[data-test=sign-in]").click()
    page.wait_for_url("**/auth/2fa")
    page.fill("#code", current_code(user.totp_secret, offset_steps=1))
    page.locator("[data-test=verify]").click()
    page.wait_for_url("**/")


def _context_page(browser, live_server):
    ctx = browser.new_context(base_url=live_server, locale="ja-JP")
    pg = ctx.new_page()
    pg.set_default_timeout(15000)
    return ctx, pg


@pytest.fixture
def world(app, factory, tmp_path):
    s = app.config["SETTINGS"]
    s.blob_store, s.blob_dir = "directory", tmp_path / "blobs"
    org = factory.org("株式会社ワークリスト", facility=True)
    people = {"filer": factory.user("filer", org=org, compartments=("T01",)),
              "reviewer": factory.user("reviewer", compartments=("T01",)),
              "approver": factory.user("approver", compartments=("T01",))}
    clients = {}
    for name, user in people.items():
        clients[name] = app.test_client()
        sign_in(clients[name], user)

    def case(destination: str = "VN") -> int:
        rid = new_report(clients["filer"])
        transfer = {"destination_country": destination, **({"group_a_confirmed": "y"} if destination == "US" else {})}
        fill_all(clients["filer"], rid, {"counterparty": {"counterparty_country": destination}, "transfer": transfer})
        submit(clients["filer"], rid)
        _post(clients["reviewer"], rid, f"/review/cases/{rid}/take")
        return rid

    return {"app": app, "users": people, "clients": clients, "case": case}


def test_approval_from_the_work_list_through_the_confirmation_page(world, page, browser, live_server):
    app, c = world["app"], world["clients"]
    rid = world["case"]()
    _post(c["reviewer"], rid, f"/reports/{rid}/informs", INFORM)
    [(iid, )] = _sql(app, "SELECT id FROM informs WHERE report_id = :r", r=rid)
    _post(c["reviewer"], rid, f"/informs/{iid}/send")

    _sign_in_again(page, world["users"]["approver"])
    waiting = page.locator("[data-test=work-list-approval]")
    assert waiting.locator("[data-test=work-item]").count() == 1
    assert page.locator("[data-test=notification-count]").count() == 1  # and a notification
    waiting.locator("[data-test=work-item] a").click()
    page.wait_for_url(f"**/informs/{iid}/confirm")
    assert "管理措置が不十分" in page.locator("[data-test=notice-preview]").inner_text()
    assert page.locator("[data-test=inform-issued]").count() == 0  # nothing issued by looking
    page.locator("[data-test=confirm-approve]").click()
    page.wait_for_load_state()
    page.locator("[data-test=inform-issued]").wait_for()
    page.goto("/")
    assert page.locator("[data-test=work-list-approval] [data-test=work-empty]").count() == 1

    # The company's 対応が必要 leads to the inform to acknowledge.
    ctx, fp = _context_page(browser, live_server)
    _sign_in(fp, world["users"]["filer"])
    action = fp.locator("[data-test=work-list-company_action]")
    assert action.locator("[data-test=work-item]").count() == 1
    action.locator("[data-test=work-item] a").click()
    fp.wait_for_url(f"**/reports/{rid}*")
    fp.check("input[name=confirm]")  # the acknowledgement
    fp.locator("[data-test=acknowledge]").click()
    fp.wait_for_load_state()
    fp.goto("/")
    assert fp.locator("[data-test=work-list-company_action] [data-test=work-empty]").count() == 1
    ctx.close()


def test_case_workers_see_their_cases_overdue_and_group_a(world, page):
    app = world["app"]
    mine, late = world["case"]("US"), world["case"]()
    _sql(app, "UPDATE reports SET planned_transfer_date = :d WHERE id = :r", d=today_jst() - timedelta(days=3), r=late)
    _sign_in_again(page, world["users"]["reviewer"])
    my_cases = page.locator("[data-test=work-list-my_cases]")
    assert my_cases.locator("[data-test=work-item]").count() == 2
    assert my_cases.locator("[data-kind=review_target]").count() >= 1  # the officer's review target
    overdue = page.locator("[data-test=work-list-overdue]")
    assert overdue.locator("[data-test=work-item]").count() == 1
    # Why it is on the list is said beside its deadline: the planned transfer has passed.
    assert overdue.locator("[data-test=transfer-passed]").count() == 1
    overdue.locator("[data-test=work-item] a").click()
    page.wait_for_url(f"**/reports/{late}")
    # Point 4: the officer sees the review target on the case page, and the passed transfer.
    assert page.locator("[data-test=next-deadline] [data-test=deadline]").get_attribute("data-kind") == "review_target"
    assert page.locator("[data-test=next-deadline] [data-test=transfer-passed]").count() == 1
    # Point 2: a request due on a closed day (1 January) moves to the next open day, and says so.
    page.fill("#body-external", "契約書案を提出してください。")
    page.check("#request-external")
    page.fill("#due-external", f"{today_jst().year + 1}-01-01")
    page.locator("[data-test=send-external]").click()
    page.wait_for_load_state()
    assert "1月1日" in page.locator(".notice--warning", has_text="1月1日").first.inner_text()
    assert ja("Awaiting response") in page.content()
    assert page.locator("[data-test=next-deadline] [data-test=deadline]").get_attribute("data-kind") == "response"
    assert page.locator("[data-test=next-deadline] [data-test=transfer-passed]").count() == 1  # still said
    page.get_by_role("navigation").get_by_role("link", name=ja("Review queue")).click()
    page.wait_for_url("**/review/queue*")
    rows = page.locator("tbody tr")
    group_a = rows.filter(has=page.locator("[data-test=group-a]"))
    assert group_a.count() == 1 and f"/reports/{mine}" in group_a.first.inner_html()


def test_choices_out_of_reach_are_withheld_with_the_reason(app, factory, page):
    # A filer cleared for T02 only, in an organisation without a facility clearance.
    org = factory.org("株式会社施設なし", facility=False)
    filer = factory.user("filer", org=org, compartments=("T02",))
    _sign_in(page, filer)
    page.goto("/reports")
    page.locator("[data-test=new-report]").click()
    page.wait_for_url("**/edit/contact")
    page.fill("#contact_phone", "03-1234-5678")
    page.locator("[data-test=continue]").click()
    page.wait_for_url("**/edit/technology")
    offered = [v for v in page.locator("#technology option").evaluate_all("os => os.map(o => o.value)") if v]
    assert offered == ["T02"]
    assert page.locator("[data-test=technologies-withheld]").is_visible()
    assert page.locator("input[name=classification][value=confidential]").count() == 0
    assert page.locator("[data-test=classification-withheld-confidential]").is_visible()
    # What was typed survives a refusal: a missing choice is asked for beside the field.
    page.fill("#description", "化合物半導体の結晶成長条件")
    page.locator("[data-test=continue]").click()
    page.locator(".error-summary").wait_for()
    assert page.input_value("#description") == "化合物半導体の結晶成長条件"
