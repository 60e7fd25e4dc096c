"""The home page's work lists: 決裁待ち for approvers, 対応が必要 for companies, my cases and
overdue for case workers; each shows only what its reader may see."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.core.timeutil import today_jst
from tests.conftest import csrf_of, sign_in
from tests.inform_helpers import approve
from tests.reports_helpers import fill_all, new_report, submit
from tests.test_dialogue import send

pytest.importorskip("portal.informs.notice")

INFORM = {"legal_basis": "外国為替及び外国貿易法第55条の8", "reasons": "管理措置が不十分であるため。", "conditions": "",
          "internal_rationale": "内部の根拠。", "rationale_classification": "restricted"}


@pytest.fixture
def world(app, factory, tmp_path):
    s = app.config["SETTINGS"]
    s.blob_store, s.blob_dir = "directory", tmp_path / "blobs"
    org = factory.org("株式会社ワークリスト", facility=True)
    people = {"filer": factory.user("filer", org=org, compartments=("T01",)),
              "stranger": factory.user("filer", compartments=("T01",)),  # another organisation
              "reviewer": factory.user("reviewer", compartments=("T01",)),
              "reviewer_t08": factory.user("reviewer", compartments=("T08",)),
              "approver": factory.user("approver", compartments=("T01",)),
              "approver_t08": factory.user("approver", compartments=("T08",)),
              "auditor": factory.user("auditor")}
    clients = {}
    for name, user in people.items():
        clients[name] = app.test_client()
        sign_in(clients[name], user)
    return {"app": app, "users": people, **clients}


def _case(w, *, take: bool = True) -> int:
    rid = new_report(w["filer"])
    fill_all(w["filer"], rid)
    submit(w["filer"], rid)
    if take:
        _post(w["reviewer"], rid, f"/review/cases/{rid}/take")
    return rid


def _post(client, rid, url, data=None):
    token = csrf_of(client.get(f"/reports/{rid}").get_data(as_text=True))
    resp = client.post(url, data={**(data or {}), "csrf_token": token})
    assert resp.status_code == 302, (url, resp.status_code)
    return resp


def _sql(app, sql, **params):
    from portal import db

    with app.app_context():
        result = db.session().execute(sa.text(sql), params)
        rows = result.all() if result.returns_rows else []
        db.session().commit()
        return rows


def _reference(app, rid) -> str:
    return _sql(app, "SELECT reference FROM reports WHERE id = :r", r=rid)[0][0]


def section(client, key: str) -> str | None:
    html = client.get("/").get_data(as_text=True)
    start = html.find(f'data-test="work-list-{key}"')
    if start < 0:
        return None
    return html[start:html.index("</section>", start)]


def test_case_workers_see_their_cases_and_the_overdue_ones(world):
    app = world["app"]
    rid = _case(world)
    ref = _reference(app, rid)
    mine = section(world["reviewer"], "my_cases")
    assert mine is not None and f'href="/reports/{rid}"' in mine and ref in mine
    assert 'data-kind="review_target"' in mine  # the officer's next deadline
    overdue = section(world["reviewer"], "overdue")
    assert overdue is not None and f'href="/reports/{rid}"' not in overdue and 'data-test="work-empty"' in overdue
    # The planned transfer passes: the case is overdue.
    _sql(app, "UPDATE reports SET planned_transfer_date = :d WHERE id = :r", d=today_jst() - timedelta(days=3), r=rid)
    overdue = section(world["reviewer"], "overdue")
    assert f'href="/reports/{rid}"' in overdue
    # Someone without the case's compartment sees it on neither list.
    for key in ("my_cases", "overdue"):
        assert f'href="/reports/{rid}"' not in section(world["reviewer_t08"], key)
    # Unassigned from the reviewer: off their list.
    _sql(app, "UPDATE reports SET assignee_id = :a WHERE id = :r", a=world["users"]["approver"].id, r=rid)
    assert f'href="/reports/{rid}"' not in section(world["reviewer"], "my_cases")
    assert f'href="/reports/{rid}"' in section(world["approver"], "my_cases")


def test_approvers_see_the_drafts_awaiting_their_approval(world):
    app = world["app"]
    rid = _case(world)
    assert 'data-test="work-empty"' in section(world["approver"], "approval")
    assert section(world["reviewer"], "approval") is None  # a reviewer decides nothing
    _post(world["reviewer"], rid, f"/reports/{rid}/informs", INFORM)
    [(iid,)] = _sql(app, "SELECT id FROM informs WHERE report_id = :r", r=rid)
    # A draft not yet sent waits for nobody.
    assert f"/informs/{iid}/confirm" not in section(world["approver"], "approval")
    _post(world["reviewer"], rid, f"/informs/{iid}/send")
    waiting = section(world["approver"], "approval")
    assert f'href="/informs/{iid}/confirm"' in waiting and _reference(app, rid) in waiting
    assert 'data-test="work-count">1<' in waiting
    assert f"/informs/{iid}/confirm" not in section(world["approver_t08"], "approval")
    assert approve(world["approver"], iid).status_code == 302
    assert f"/informs/{iid}/confirm" not in section(world["approver"], "approval")


def test_an_approvers_own_draft_is_not_on_their_list(world):
    app = world["app"]
    rid = _case(world)
    _post(world["approver"], rid, f"/reports/{rid}/informs", INFORM)
    [(iid,)] = _sql(app, "SELECT id FROM informs WHERE report_id = :r", r=rid)
    _post(world["approver"], rid, f"/informs/{iid}/send")
    assert f"/informs/{iid}/confirm" not in section(world["approver"], "approval")


def test_the_company_sees_what_needs_its_action(world):
    app = world["app"]
    asked, returned, issued = _case(world), _case(world), _case(world)
    action = section(world["filer"], "company_action")
    assert action is not None and 'data-test="work-empty"' in action
    due = today_jst() + timedelta(days=21)
    assert send(world["reviewer"], asked, "external", "資料を提出してください。", due=due).status_code == 302
    _post(world["reviewer"], returned, f"/review/cases/{returned}/return", {"comment": "出資比率を補正してください。"})
    _post(world["reviewer"], issued, f"/reports/{issued}/informs", INFORM)
    [(iid,)] = _sql(app, "SELECT id FROM informs WHERE report_id = :r", r=issued)
    _post(world["reviewer"], issued, f"/informs/{iid}/send")
    assert approve(world["approver"], iid).status_code == 302
    action = section(world["filer"], "company_action")
    assert f'href="/reports/{asked}"' in action and f'href="/reports/{returned}"' in action
    assert f'href="/reports/{issued}#inform"' in action
    assert action.count('data-test="work-item"') == 3
    # The request shows its response due date, not the transfer date.
    row = action[action.index(f'href="/reports/{asked}"'):]
    row = row[:row.index("</tr>")]
    assert 'data-kind="response"' in row
    # Another organisation's filer sees none of it.
    other = section(world["stranger"], "company_action")
    assert other is not None and 'data-test="work-item"' not in other
    # Acknowledged: off the list.
    _post(world["filer"], issued, f"/informs/{iid}/acknowledge", {"confirm": "y"})
    assert f'href="/reports/{issued}#inform"' not in section(world["filer"], "company_action")


def test_an_overdue_answer_comes_first_and_says_so(world):
    app = world["app"]
    later, late = _case(world), _case(world)
    for rid in (later, late):
        assert send(world["reviewer"], rid, "external", "追加資料を提出してください。",
                    due=today_jst() + timedelta(days=21)).status_code == 302
    _sql(app, "UPDATE reports SET response_due = :d WHERE id = :r", d=today_jst() - timedelta(days=2), r=late)
    action = section(world["filer"], "company_action")
    assert action.index(f'href="/reports/{late}"') < action.index(f'href="/reports/{later}"')
    row = action[action.index(f'href="/reports/{late}"'):]
    row = row[:row.index("</tr>")]
    assert "deadline--overdue" in row and 'class="tag tag--overdue"' in row


def test_people_without_case_work_get_no_lists(world):
    resp = world["auditor"].get("/")
    assert resp.status_code == 200 and 'data-test="work-list-' not in resp.get_data(as_text=True)
