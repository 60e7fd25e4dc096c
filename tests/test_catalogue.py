"""The technology catalogue is data an admin keeps; entries in use are never deleted."""
from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa

from tests.conftest import audit_events, csrf_of, sign_in
from tests.reports_helpers import new_report, post_step, good_values


def _tech(app, code):
    from portal import db
    from portal.catalogue.models import Technology

    with app.app_context():
        t = db.session().execute(sa.select(Technology).where(Technology.code == code)).scalar_one_or_none()
        db.session().expunge_all()
        return t


def test_seeded_with_the_19_designated_technologies(app):
    from portal import db
    from portal.catalogue.models import Technology

    with app.app_context():
        rows = list(db.session().execute(sa.select(Technology).order_by(Technology.code)).scalars())
        db.session().expunge_all()
    assert len(rows) == 19
    assert rows[0].name_ja.startswith("積層セラミックコンデンサ") and rows[0].name_en == "Multilayer ceramic capacitors"
    first, later = rows[:15], rows[15:]
    assert {t.effective_from for t in first} == {date(2024, 12, 30)}
    assert all(t.effective_from > date(2024, 12, 30) for t in later)


def test_admin_adds_renames_and_end_dates(app, client, factory):
    sign_in(client, factory.user("admin"))
    page = client.get("/admin/technologies/").get_data(as_text=True)
    resp = client.post("/admin/technologies/", data={"code": "t20", "name_ja": "新技術", "name_en": "New tech",
                                                     "effective_from": "2027-04-01", "csrf_token": csrf_of(page)})
    assert resp.status_code == 302
    t = _tech(app, "T20")
    assert t.name_en == "New tech" and t.effective_from == date(2027, 4, 1)
    dup = client.post("/admin/technologies/", data={"code": "T20", "name_ja": "x", "name_en": "x",
                                                    "effective_from": "2027-04-01", "csrf_token": csrf_of(page)})
    assert dup.status_code == 400
    edit = client.get(f"/admin/technologies/{t.id}").get_data(as_text=True)
    bad = client.post(f"/admin/technologies/{t.id}", data={"name_ja": "新技術", "name_en": "New tech",
                                                           "effective_until": "2026-01-01", "csrf_token": csrf_of(edit)})
    assert bad.status_code == 400 and _tech(app, "T20").effective_until is None
    ok = client.post(f"/admin/technologies/{t.id}", data={"name_ja": "改名", "name_en": "Renamed",
                                                          "effective_until": "2028-03-31", "csrf_token": csrf_of(edit)})
    assert ok.status_code == 302
    t = _tech(app, "T20")
    assert (t.name_ja, t.effective_until) == ("改名", date(2028, 3, 31))
    events = [(e.action, e.outcome) for e in audit_events(app) if e.action.startswith("catalogue.")]
    assert events == [("catalogue.add", "success"), ("catalogue.add", "failure"), ("catalogue.update", "failure"),
                      ("catalogue.update", "success")]


def test_an_entry_in_use_cannot_be_deleted_but_an_unused_one_can(app, client, factory):
    filer = factory.user("filer", compartments=("T03", "T05"))
    c = app.test_client()
    sign_in(c, filer)
    rid = new_report(c)
    assert post_step(c, rid, "technology", {**good_values("technology"), "technology": "T05"}).status_code == 302
    sign_in(client, factory.user("admin", compartments=()))
    page = client.get("/admin/technologies/").get_data(as_text=True)
    for code in ("T05", "T03"):  # used by a report, used by a clearance
        t = _tech(app, code)
        client.post(f"/admin/technologies/{t.id}/delete", data={"csrf_token": csrf_of(page)})
        assert _tech(app, code) is not None
    # An entry of this test's own: the seeded catalogue is shared with every later test in the
    # process (the access and fuzz worlds use T19 as "the unused entry").
    with app.extensions["db_engine"].begin() as conn:
        conn.execute(sa.text("INSERT INTO technologies (code, name_ja, name_en, effective_from, created_at) "
                             "VALUES ('T90', '試験用', 'Test entry', '2026-01-01', CURRENT_TIMESTAMP)"))
    t = _tech(app, "T90")
    client.post(f"/admin/technologies/{t.id}/delete", data={"csrf_token": csrf_of(page)})
    assert _tech(app, "T90") is None
    outcomes = [(e.action, e.outcome) for e in audit_events(app) if e.action == "catalogue.delete"]
    assert outcomes == [("catalogue.delete", "failure"), ("catalogue.delete", "failure"), ("catalogue.delete", "success")]


def test_an_ended_entry_cannot_be_chosen_for_a_new_report(app, client, factory):
    from portal import db
    from portal.catalogue.models import Technology

    with app.app_context():
        t = db.session().execute(sa.select(Technology).where(Technology.code == "T02")).scalar_one()
        t.effective_until = date.today() - timedelta(days=1)
        db.session().commit()
    sign_in(client, factory.user("filer", compartments=("T02",)))
    rid = new_report(client)
    page = client.get(f"/reports/{rid}/edit/technology").get_data(as_text=True)
    assert 'value="T02"' not in page
    resp = post_step(client, rid, "technology", {**good_values("technology"), "technology": "T02"})
    assert resp.status_code == 400


def test_only_admins_manage_the_catalogue(client, factory):
    sign_in(client, factory.user("reviewer"))
    assert client.get("/admin/technologies/").status_code == 403


def test_the_list_filters_follow_a_catalogue_change_at_once(app, client, factory):
    """The lists' technology filter is cached per process; a change made in this process
    clears it (other processes follow within catalogue.services.FILTER_TTL)."""
    filer = app.test_client()
    sign_in(filer, factory.user("filer"))
    assert 'value="T90"' not in filer.get("/reports").get_data(as_text=True)  # the options are cached now
    sign_in(client, factory.user("admin"))
    page = client.get("/admin/technologies/").get_data(as_text=True)
    since = (date.today() - timedelta(days=1)).isoformat()
    assert client.post("/admin/technologies/", data={"code": "T90", "name_ja": "試験技術", "name_en": "Test tech",
                                                     "effective_from": since, "csrf_token": csrf_of(page)}).status_code == 302
    assert '<option value="T90" >T90 試験技術</option>' in filer.get("/reports").get_data(as_text=True)
    t = _tech(app, "T90")
    client.post(f"/admin/technologies/{t.id}/delete", data={"csrf_token": csrf_of(page)})
    assert _tech(app, "T90") is None
    assert 'value="T90"' not in filer.get("/reports").get_data(as_text=True)
