"""Whatever is typed into a list's address or a form, the answer is a page or a clear 400,
never a 500 (both databases: PostgreSQL refuses NUL and out-of-range integers)."""
from __future__ import annotations

from tests.conftest import sign_in
from tests.reports_helpers import good_values, new_report, post_step


def test_odd_queue_and_list_parameters_get_a_page(app, factory):
    c = app.test_client()
    sign_in(c, factory.user("reviewer", compartments=("T01",)))
    for q in ("assignee=999999999999", "assignee=0", "page=99999999999999999999", "country=%E6%97%A5",
              "technology=%E2%80%AE", "sort=x&overdue=1&unread=1", "status=draft", "page=-1"):
        assert c.get(f"/review/queue?{q}").status_code == 200, q
    f = app.test_client()
    sign_in(f, factory.user("filer"))
    for q in ("page=99999999999999999999", "status=%ff", "page=0", "technology=" + "T" * 40):
        assert f.get(f"/reports?{q}").status_code == 200, q


def test_nul_in_an_address_or_a_form_is_refused_and_changes_nothing(app, factory):
    c = app.test_client()
    sign_in(c, factory.user("reviewer", compartments=("T01",)))
    page = c.get("/review/queue?technology=%00")
    assert page.status_code == 400 and "<h1" in page.get_data(as_text=True)
    f = app.test_client()
    sign_in(f, factory.user("filer"))
    assert f.get("/reports?status=%00").status_code == 400
    rid = new_report(f)
    values = {**good_values("counterparty"), "counterparty_name": "ABC\x00Ltd"}
    assert post_step(f, rid, "counterparty", values).status_code == 400
    assert "ABC" not in f.get(f"/reports/{rid}").get_data(as_text=True)
