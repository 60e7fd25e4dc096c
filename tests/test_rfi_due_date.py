"""Issue 15 item 2: a request for information always has a due date (filled in from
PORTAL_RFI_DEFAULT_DAYS business days ahead), a closed day moves to the next open day with a
notice, and the case waits for the company with its clock stopped, as the request flow does."""
from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from portal.calendar import add_business_days, business_days_between, is_business_day
from portal.config import ConfigError, Settings
from portal.core.timeutil import today_jst
from tests.conftest import audit_events, csrf_of
from tests.reports_helpers import report_row, submitted_case


@pytest.fixture
def case(app, factory):
    c = submitted_case(app, factory)
    return c["rid"], c["fc"], c["rc"]


def _take(rc, rid):
    page = rc.get(f"/reports/{rid}").get_data(as_text=True)
    assert rc.post(f"/review/cases/{rid}/take", data={"csrf_token": csrf_of(page)}).status_code == 302


def _send(client, rid, data):
    page = client.get(f"/reports/{rid}").get_data(as_text=True)
    return client.post(f"/reports/{rid}/messages/external", data={"csrf_token": csrf_of(page), **data},
                       content_type="multipart/form-data")


def _messages(app, rid):
    from portal import db
    from portal.dialogue.models import Message

    with app.app_context():
        return [(m.is_request, m.due_date) for m in db.session().execute(
            sa.select(Message).where(Message.report_id == rid).order_by(Message.id)).scalars()]


def _due_value(html: str) -> str:
    m = re.search(r'<input[^>]*id="due-external"[^>]*>', html)
    assert m, "no due date field"
    v = re.search(r'value="([^"]*)"', m.group(0))
    return v.group(1) if v else ""


def _closed_day_after(d: date) -> date:
    while is_business_day(d):
        d += timedelta(days=1)
    return d


# ---------------------------------------------------------------- the setting and the form

def test_the_setting_defaults_to_ten_business_days_and_is_checked(tmp_path):
    assert Settings.from_env({}, env="test", instance_path=tmp_path).rfi_default_days == 10
    assert Settings.from_env({"PORTAL_RFI_DEFAULT_DAYS": "5"}, env="test", instance_path=tmp_path).rfi_default_days == 5
    for bad in ("0", "201", "ten"):
        with pytest.raises(ConfigError, match="PORTAL_RFI_DEFAULT_DAYS"):
            Settings.from_env({"PORTAL_RFI_DEFAULT_DAYS": bad}, env="test", instance_path=tmp_path)


def test_the_due_date_is_filled_in_from_the_setting(app, case):
    rid, fc, rc = case
    today = today_jst()
    html = rc.get(f"/reports/{rid}").get_data(as_text=True)
    assert _due_value(html) == add_business_days(today, 10).isoformat()
    settings = app.config["SETTINGS"]
    before = settings.rfi_default_days
    settings.rfi_default_days = 3
    try:
        html = rc.get(f"/reports/{rid}").get_data(as_text=True)
        assert _due_value(html) == add_business_days(today, 3).isoformat()
        assert business_days_between(today, date.fromisoformat(_due_value(html))) == 3
    finally:
        settings.rfi_default_days = before
    # The company's form has no request box and no due date.
    assert 'id="due-external"' not in fc.get(f"/reports/{rid}").get_data(as_text=True)


# ---------------------------------------------------------------- sending a request

def test_a_request_without_a_due_date_is_refused_beside_the_field(app, case):
    rid, fc, rc = case
    _take(rc, rid)
    body = "契約書案を提出してください（照会）。"
    resp = _send(rc, rid, {"body": body, "classification": "restricted", "request": "1", "due_date": ""})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert 'id="due-external-error"' in html and body in html and 'class="error-summary"' in html
    assert 'id="request-external"' in html and re.search(r'id="request-external"[^>]*checked', html)
    assert _messages(app, rid) == []
    r = report_row(app, rid)
    assert r.status == "under_review" and r.awaiting_since is None and r.response_due is None
    assert audit_events(app, "message.post")[-1].reason == "due_missing"


@pytest.mark.parametrize("due", ["yesterday", "today", "next_year_and_more", "garbage"])
def test_a_due_date_outside_the_window_is_refused(app, case, due):
    rid, fc, rc = case
    _take(rc, rid)
    today = today_jst()
    value = {"yesterday": (today - timedelta(days=1)).isoformat(), "today": today.isoformat(),
             "next_year_and_more": (today + timedelta(days=400)).isoformat(), "garbage": "2027-13-45"}[due]
    resp = _send(rc, rid, {"body": "照会", "classification": "restricted", "request": "1", "due_date": value})
    assert resp.status_code == 400 and 'id="due-external-error"' in resp.get_data(as_text=True)
    assert _messages(app, rid) == [] and report_row(app, rid).status == "under_review"


def test_a_request_waits_for_the_company_and_stops_the_clock(app, case):
    rid, fc, rc = case  # submitted, not yet taken: the request takes it first, as before
    today = today_jst()
    due = add_business_days(today, 10)
    resp = _send(rc, rid, {"body": "出資比率の根拠資料を提出してください。", "classification": "restricted",
                           "request": "1", "due_date": due.isoformat()})
    assert resp.status_code == 302
    r = report_row(app, rid)
    assert r.status == "awaiting_response" and r.response_due == due and r.awaiting_since == today
    assert _messages(app, rid) == [(True, due)]
    actions = [e.action for e in audit_events(app) if e.action.startswith("report.")]
    assert actions[-2:] == ["report.take", "report.request_info"]
    # The history keeps the due date itself, and each reader reads it in their own words.
    from portal import db
    from portal.reports.models import ReportEvent

    with app.app_context():
        comments = db.session().execute(sa.select(ReportEvent.comment).where(
            ReportEvent.report_id == rid, ReportEvent.transition == "request_info")).scalars().all()
    assert comments == [due.isoformat()]
    history = fc.get(f"/reports/{rid}").get_data(as_text=True)
    assert f"{due.year}年{due.month}月{due.day}日" in history and due.isoformat() not in history
    from portal.reports.clock import clocks

    assert clocks(r, today + timedelta(days=30), 20).response_overdue is (due < today + timedelta(days=30))
    # The company answers: the clock runs again.
    assert _send(fc, rid, {"body": "資料を添付します。", "classification": "restricted"}).status_code == 302
    r = report_row(app, rid)
    assert r.status == "under_review" and r.awaiting_since is None and r.response_due is None


def test_an_unticked_message_is_an_ordinary_message_whatever_the_date_field_holds(app, case):
    rid, fc, rc = case
    _take(rc, rid)
    resp = _send(rc, rid, {"body": "参考までに。", "classification": "restricted",
                           "due_date": add_business_days(today_jst(), 10).isoformat()})
    assert resp.status_code == 302
    assert _messages(app, rid) == [(False, None)]
    assert report_row(app, rid).status == "under_review"


@pytest.mark.parametrize("which", ["weekend", "new_year"])
def test_a_closed_day_moves_to_the_next_open_day_with_a_notice(app, case, which):
    rid, fc, rc = case
    _take(rc, rid)
    today = today_jst()
    asked = _closed_day_after(today + timedelta(days=2)) if which == "weekend" else date(today.year + 1, 1, 1)
    assert not is_business_day(asked)
    expected = add_business_days(asked, 0)
    assert expected > asked and is_business_day(expected)
    resp = _send(rc, rid, {"body": "照会です。", "classification": "restricted", "request": "1",
                           "due_date": asked.isoformat()})
    assert resp.status_code == 302
    r = report_row(app, rid)
    assert r.status == "awaiting_response" and r.response_due == expected
    assert _messages(app, rid) == [(True, expected)]
    page = rc.get(resp.location).get_data(as_text=True)
    notice = re.search(r'<div class="notice notice--warning"[^>]*>(.*?)</div>', page, re.DOTALL)
    assert notice, "no notice that the date moved"
    text = notice.group(1)
    assert f"{asked.month}月{asked.day}日" in text and f"{expected.month}月{expected.day}日" in text


def test_a_second_request_while_awaiting_is_refused_beside_the_box(app, case):
    rid, fc, rc = case
    due = add_business_days(today_jst(), 10)
    assert _send(rc, rid, {"body": "一回目の照会", "classification": "restricted", "request": "1",
                           "due_date": due.isoformat()}).status_code == 302
    resp = _send(rc, rid, {"body": "二回目の照会です", "classification": "restricted", "request": "1",
                           "due_date": due.isoformat()})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "二回目の照会です" in html and 'id="request-external-error"' in html
    assert _messages(app, rid) == [(True, due)]
    assert audit_events(app, "message.post")[-1].reason == "illegal_transition"
