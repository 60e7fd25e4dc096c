"""Drive the filing pages as a filer does."""
from __future__ import annotations

from datetime import date, timedelta

from tests.conftest import csrf_of, sign_in

GOOD = {
    "contact": {"contact_name": "山田 太郎", "contact_email": "taro@example.jp", "contact_phone": "０３−１２３４−５６７８"},
    "technology": {"technology": "T01", "description": "0201サイズMLCCの焼成条件とスラリー配合", "transfer_form": "licensing",
                   "classification": "restricted"},
    "counterparty": {"counterparty_name": "ABC Electronics Co., Ltd.", "counterparty_country": "VN",
                     "counterparty_address": "Hanoi", "counterparty_relation": "subsidiary", "shareholding": "51"},
    "transfer": {"destination_country": "VN", "contract_date": "", "transfer_date": "",
                 "contract_value": "１２０,０００,０００", "currency": "JPY"},
    "measures": {"measures": ["contract_clauses", "access_control"]},
}


def good_values(step: str, today: date | None = None) -> dict:
    v = dict(GOOD[step])
    if step == "transfer":
        today = today or date.today()
        v["contract_date"] = (today + timedelta(days=40)).isoformat()
        v["transfer_date"] = (today + timedelta(days=90)).isoformat()
    return v


def new_report(client) -> int:
    page = client.get("/reports")
    resp = client.post("/reports/new", data={"csrf_token": csrf_of(page.get_data(as_text=True))})
    assert resp.status_code == 302, resp.status_code
    return int(resp.location.split("/reports/")[1].split("/")[0])


def post_step(client, report_id: int, step: str, values: dict):
    page = client.get(f"/reports/{report_id}/edit/{step}")
    return client.post(f"/reports/{report_id}/edit/{step}",
                       data={**values, "csrf_token": csrf_of(page.get_data(as_text=True))})


def fill_all(client, report_id: int, overrides: dict | None = None) -> None:
    for step in GOOD:
        values = {**good_values(step), **(overrides or {}).get(step, {})}
        resp = post_step(client, report_id, step, values)
        assert resp.status_code == 302, (step, resp.get_data(as_text=True)[-3000:])


def submit(client, report_id: int):
    page = client.get(f"/reports/{report_id}/check")
    return client.post(f"/reports/{report_id}/check",
                       data={"attest": "y", "csrf_token": csrf_of(page.get_data(as_text=True))})


def submitted_case(app, factory, *, org_name: str | None = None, facility: bool = True,
                   filer_level: str = "confidential", reviewer_level: str = "confidential",
                   take: bool = False) -> dict:
    """A submitted T01 report, its filer and a reviewer, both signed in (the reviewer has
    taken the case when ``take``)."""
    org = factory.org(org_name, facility=facility)
    filer = factory.user("filer", org=org, level=filer_level, compartments=("T01",))
    reviewer = factory.user("reviewer", compartments=("T01",), level=reviewer_level)
    fc, rc = app.test_client(), app.test_client()
    sign_in(fc, filer)
    sign_in(rc, reviewer)
    rid = new_report(fc)
    fill_all(fc, rid)
    submit(fc, rid)
    if take:
        page = rc.get(f"/reports/{rid}").get_data(as_text=True)
        assert rc.post(f"/review/cases/{rid}/take", data={"csrf_token": csrf_of(page)}).status_code == 302
    return {"rid": rid, "filer": filer, "reviewer": reviewer, "fc": fc, "rc": rc, "org": org}


def report_row(app, rid: int):
    """The report as stored now, detached from the session (read between requests)."""
    from portal import db
    from portal.reports.models import Report

    with app.app_context():
        r = db.session().get(Report, rid)
        db.session().expunge_all()
        return r
