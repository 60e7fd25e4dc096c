"""A compliance officer files a prior report; reviewers see it arrive."""
from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import audit_events, csrf_of, ja, sign_in
from tests.reports_helpers import fill_all, good_values, new_report, post_step, report_row, submit


def _count(app, model):
    from portal import db

    with app.app_context():
        return db.session().execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


@pytest.fixture
def filer(factory):
    org = factory.org("株式会社テスト", facility=True)
    return factory.user("filer", org=org, compartments=("T01", "T08"))


def test_file_a_report_end_to_end(app, client, factory, filer):
    sign_in(client, filer)
    rid = new_report(client)
    fill_all(client, rid)
    check = client.get(f"/reports/{rid}/check").get_data(as_text=True)
    assert "ABC Electronics" in check and ja("Change") in check
    assert "120,000,000" in check  # full-width digits and commas normalised, shown with separators
    resp = submit(client, rid)
    assert resp.status_code == 302 and resp.location.endswith(f"/reports/{rid}/done")
    done = client.get(resp.location).get_data(as_text=True)
    year = date.today().year
    assert f"TTR-{year}-000001" in done
    r = report_row(app, rid)
    assert r.status == "submitted" and r.reference == f"TTR-{year}-000001" and r.version_count == 1
    receipt = client.get(f"/reports/{rid}/receipt")
    assert receipt.status_code == 200 and f"TTR-{year}-000001" in receipt.get_data(as_text=True)
    assert [e.action for e in audit_events(app) if e.action == "report.submit"] == ["report.submit"]
    # Frozen: the edit pages refuse now.
    assert client.get(f"/reports/{rid}/edit/contact").location.endswith(f"/reports/{rid}")
    token = csrf_of(client.get(f"/reports/{rid}").get_data(as_text=True))
    again = client.post(f"/reports/{rid}/edit/contact", data={**good_values("contact"), "contact_name": "X",
                                                              "csrf_token": token})
    assert again.status_code == 302
    assert json.loads(report_row(app, rid).draft)["contact_name"] == "山田 太郎"


def test_double_submit_gives_one_report_and_one_reference(app, client, filer):
    sign_in(client, filer)
    rid = new_report(client)
    fill_all(client, rid)
    page = client.get(f"/reports/{rid}/check").get_data(as_text=True)
    token = csrf_of(page)
    first = client.post(f"/reports/{rid}/check", data={"attest": "y", "csrf_token": token})
    second = client.post(f"/reports/{rid}/check", data={"attest": "y", "csrf_token": token})
    assert first.location == second.location
    from portal.reports.models import ReportVersion

    assert _count(app, ReportVersion) == 1
    assert report_row(app, rid).reference.endswith("000001")


def test_submission_needs_the_attestation(app, client, filer):
    sign_in(client, filer)
    rid = new_report(client)
    fill_all(client, rid)
    page = client.get(f"/reports/{rid}/check").get_data(as_text=True)
    resp = client.post(f"/reports/{rid}/check", data={"csrf_token": csrf_of(page)})
    assert resp.status_code == 400
    assert report_row(app, rid).status == "draft"


def test_incomplete_report_cannot_be_submitted(app, client, filer):
    sign_in(client, filer)
    rid = new_report(client)
    post_step(client, rid, "technology", good_values("technology"))
    page = client.get(f"/reports/{rid}/check").get_data(as_text=True)
    assert ja("The report is not complete") in page
    resp = client.post(f"/reports/{rid}/check", data={"attest": "y", "csrf_token": csrf_of(page)})
    assert resp.status_code == 400
    assert report_row(app, rid).status == "draft" and report_row(app, rid).reference is None


@pytest.mark.parametrize("step, change, field", [
    ("transfer", {"transfer_date": "2020-01-01", "contract_date": "2020-02-01"}, "transfer_date"),
    ("transfer", {"contract_value": "-5"}, "contract_value"),
    ("transfer", {"currency": "XYZ"}, "currency"),
    ("transfer", {"destination_country": "ZZ"}, "destination_country"),
    ("technology", {"technology": "T99"}, "technology"),
    ("technology", {"classification": "csi"}, "classification"),
    ("technology", {"description": "x" * 10001}, "description"),
    ("counterparty", {"shareholding": "150"}, "shareholding"),
    ("counterparty", {"counterparty_relation": "joint_venture", "shareholding": ""}, "shareholding"),
    ("measures", {"measures": ["made_up"]}, "measures"),
])
def test_bad_input_is_explained_beside_the_field_and_saves_nothing(app, client, filer, step, change, field):
    sign_in(client, filer)
    rid = new_report(client)
    before = report_row(app, rid).draft
    resp = post_step(client, rid, step, {**good_values(step), **change})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert f'id="{field}-error"' in body
    assert "<title>エラー：" in body
    assert report_row(app, rid).draft == before


def test_group_a_destination_warns_and_asks_for_confirmation(app, client, filer):
    sign_in(client, filer)
    rid = new_report(client)
    values = {**good_values("transfer"), "destination_country": "US"}
    resp = post_step(client, rid, "transfer", values)
    assert resp.status_code == 400
    assert 'data-test="warning-destination_country"' in resp.get_data(as_text=True)
    resp = post_step(client, rid, "transfer", {**values, "group_a_confirmed": "y"})
    assert resp.status_code == 302
    assert json.loads(report_row(app, rid).draft)["group_a_confirmed"] is True


def test_korea_is_group_a_only_while_listed(app):
    from portal import db
    from portal.reports.services import is_group_a

    with app.app_context():
        s = db.session()
        assert is_group_a(s, "KR", date(2018, 1, 1))
        assert not is_group_a(s, "KR", date(2020, 1, 1))
        assert is_group_a(s, "KR", date(2024, 1, 1))
        assert not is_group_a(s, "CN", date(2024, 1, 1))


def test_transfer_less_than_30_days_ahead_warns_but_does_not_bar(app, client, filer):
    sign_in(client, filer)
    rid = new_report(client)
    soon = (date.today() + timedelta(days=10)).isoformat()
    fill_all(client, rid, {"transfer": {"contract_date": date.today().isoformat(), "transfer_date": soon}})
    page = client.get(f"/reports/{rid}/check").get_data(as_text=True)
    assert 'data-test="warning-transfer_date"' in page
    assert submit(client, rid).status_code == 302


def test_return_amend_resubmit_keeps_every_version_and_shows_changes(app, client, factory, filer):
    from portal import db
    from portal.access.subject import subject_for
    from portal.auth.models import User
    from portal.reports import services

    sign_in(client, filer)
    rid = new_report(client)
    fill_all(client, rid)
    submit(client, rid)
    reviewer = factory.user("reviewer", compartments=("T01",))
    with app.app_context():
        s = db.session()
        r = s.get(services.Report, rid)
        rv = s.get(User, reviewer.id)
        subj = subject_for(s, rv, date.today())
        services.transition(s, r, "take", subject=subj, actor=rv, today=date.today(), ip=None)
        services.transition(s, r, "return", subject=subj, actor=rv, today=date.today(), ip=None,
                            comment="相手先の住所を補正してください")
        s.commit()
    resp = post_step(client, rid, "counterparty", {**good_values("counterparty"), "counterparty_address": "Ho Chi Minh City"})
    assert resp.status_code == 302
    assert submit(client, rid).status_code == 302
    r = report_row(app, rid)
    assert r.status == "submitted" and r.version_count == 2 and r.reference.endswith("000001")
    v1 = client.get(f"/reports/{rid}/versions/1").get_data(as_text=True)
    v2 = client.get(f"/reports/{rid}/versions/2").get_data(as_text=True)
    assert "Hanoi" in v1 and "Ho Chi Minh City" in v2
    assert 'data-test="changes"' in v2 and "<del>Hanoi</del>" in v2
    show = client.get(f"/reports/{rid}").get_data(as_text=True)
    assert "相手先の住所を補正してください" in show


def test_withdraw_needs_a_reason_and_is_final(app, client, filer):
    sign_in(client, filer)
    rid = new_report(client)
    fill_all(client, rid)
    submit(client, rid)
    page = client.get(f"/reports/{rid}").get_data(as_text=True)
    client.post(f"/reports/{rid}/withdraw", data={"comment": "", "csrf_token": csrf_of(page)})
    assert report_row(app, rid).status == "submitted"
    client.post(f"/reports/{rid}/withdraw", data={"comment": "契約中止", "csrf_token": csrf_of(page)})
    assert report_row(app, rid).status == "withdrawn"
    client.post(f"/reports/{rid}/withdraw", data={"comment": "again", "csrf_token": csrf_of(page)})
    assert report_row(app, rid).status == "withdrawn"
    assert [e.outcome for e in audit_events(app) if e.action == "report.withdraw"] == ["failure", "success", "failure"]


def test_another_organisations_draft_is_not_found(app, client, factory, filer):
    other = factory.user("filer", compartments=("T01",))
    c2 = app.test_client()
    sign_in(c2, other)
    rid = new_report(c2)
    sign_in(client, filer)
    assert client.get(f"/reports/{rid}").status_code == 404
    assert post_step(client, rid, "contact", good_values("contact")).status_code == 404
    denied = [e for e in audit_events(app, "access.denied") if e.reason == "other_organisation"]
    assert denied


def test_reviewer_sees_submitted_reports_of_their_compartments_only(app, client, factory, filer):
    c = app.test_client()
    sign_in(c, filer)
    rid = new_report(c)
    fill_all(c, rid)
    submit(c, rid)
    draft = new_report(c)
    t01 = factory.user("reviewer", compartments=("T01",))
    t08 = factory.user("reviewer", compartments=("T08",))
    sign_in(client, t01)
    assert client.get("/reports").location.startswith("/review/queue")
    listing = client.get("/review/queue").get_data(as_text=True)
    assert f"/reports/{rid}\"" in listing and f"/reports/{draft}\"" not in listing
    assert client.get(f"/reports/{rid}").status_code == 200
    assert client.get(f"/reports/{draft}").status_code == 404
    other = app.test_client()
    sign_in(other, t08)
    assert f"/reports/{rid}\"" not in other.get("/review/queue").get_data(as_text=True)
    assert other.get(f"/reports/{rid}").status_code == 403


def test_admin_cannot_read_reports(app, client, factory, filer):
    c = app.test_client()
    sign_in(c, filer)
    rid = new_report(c)
    fill_all(c, rid)
    submit(c, rid)
    draft = new_report(c)
    sign_in(client, factory.user("admin"))
    assert client.get("/reports").status_code == 403
    assert client.get(f"/reports/{rid}").status_code == 403
    assert client.get(f"/reports/{draft}").status_code == 404  # drafts are not known outside the company


def test_company_list_shows_only_what_the_filer_may_open(app, client, factory):
    """The list and its total follow the policy in SQL (compartments, level, facility)."""
    org = factory.org(facility=True)
    t01 = factory.user("filer", org=org, compartments=("T01",))
    t08 = factory.user("filer", org=org, compartments=("T08",))
    c = app.test_client()
    sign_in(c, t08)
    rid = new_report(c)
    fill_all(c, rid, {"technology": {"technology": "T08"}})
    sign_in(client, t01)
    listing = client.get("/reports").get_data(as_text=True)
    assert f"/reports/{rid}\"" not in listing
    assert client.get(f"/reports/{rid}").status_code == 403
