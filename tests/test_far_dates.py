"""Issue 13 item 1: dates are bounded where they are typed, and the pages and jobs that compute
over stored dates stay fast for any date the database can hold."""
from __future__ import annotations

import time
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from portal.calendar import window
from portal.core.timeutil import today_jst
from tests.conftest import sign_in
from tests.reports_helpers import fill_all, good_values, new_report, post_step, submit


@pytest.fixture
def filer(app, factory):
    org = factory.org(facility=True)
    c = app.test_client()
    sign_in(c, factory.user("filer", org=org, compartments=("T01",)))
    return c


@pytest.mark.parametrize("field, value", [
    ("transfer_date", "9999-12-31"), ("transfer_date", "0001-01-02"), ("contract_date", "5000-06-30"),
    ("transfer_date", (today_jst() + timedelta(days=366 * 10 + 5)).isoformat()),
])
def test_a_date_outside_the_window_is_refused_beside_the_field(app, filer, field, value):
    rid = new_report(filer)
    values = {**good_values("transfer"), field: value}
    resp = post_step(filer, rid, "transfer", values)
    assert resp.status_code == 400
    low, high = window(today_jst(), 5, 10)
    html = resp.get_data(as_text=True)
    assert f"{high.year}年" in html and f"{low.year}年" in html  # the message says the window
    with app.extensions["db_engine"].connect() as c:
        assert c.execute(sa.text("SELECT planned_transfer_date FROM reports WHERE id = :r"), {"r": rid}).scalar() is None


def test_the_furthest_accepted_date_is_accepted(app, filer):
    rid = new_report(filer)
    high = window(today_jst(), 5, 10)[1]
    values = {**good_values("transfer"), "transfer_date": high.isoformat()}
    assert post_step(filer, rid, "transfer", values).status_code == 302


def test_a_response_due_date_is_within_a_year(app, factory):
    from tests.test_dialogue import send

    org = factory.org(facility=True)
    fc = app.test_client()
    sign_in(fc, factory.user("filer", org=org, compartments=("T01",)))
    rid = new_report(fc)
    fill_all(fc, rid)
    submit(fc, rid)
    rc = app.test_client()
    sign_in(rc, factory.user("reviewer", compartments=("T01",)))
    assert send(rc, rid, "external", "照会", due=today_jst() + timedelta(days=400)).status_code == 400  # shown again, the error beside the date
    with app.extensions["db_engine"].connect() as c:
        assert c.execute(sa.text("SELECT status FROM reports WHERE id = :r"), {"r": rid}).scalar() == "submitted"


@pytest.mark.parametrize("stored", [date(9999, 12, 31), date(1, 1, 2), date(5000, 6, 30)])
def test_pages_and_jobs_stay_fast_whatever_date_is_stored(app, factory, stored):
    """A date written before the window existed (or by hand) costs no more than any other."""
    org = factory.org(facility=True)
    fc = app.test_client()
    sign_in(fc, factory.user("filer", org=org, compartments=("T01",)))
    rid = new_report(fc)
    fill_all(fc, rid)
    submit(fc, rid)
    with app.extensions["db_engine"].begin() as c:
        c.execute(sa.text("UPDATE reports SET planned_transfer_date = :d WHERE id = :r"), {"d": stored, "r": rid})
    rc = app.test_client()
    sign_in(rc, factory.user("approver", compartments=("T01",)))
    for url in (f"/reports/{rid}", "/review/queue", "/review/queue?sort=transfer", "/review/queue?overdue=1",
                "/review/dashboard"):
        started = time.process_time()
        resp = rc.get(url)
        spent = time.process_time() - started
        assert resp.status_code == 200, url
        assert spent < 0.5, f"{url} took {spent:.2f} s of CPU with a transfer date {stored}"
    assert fc.get("/reports").status_code == 200
    from portal.review.jobs import run_daily

    with app.app_context():
        from portal import db

        run_daily(db.session(), app.config["SETTINGS"], today=today_jst())
