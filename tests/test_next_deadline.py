"""One definition of a case's next deadline (portal.reports.deadlines), drawn the same way on
the company's list, the home work lists, the case page and the queue; overdue said in words;
the review target shown to officers; Group A marked in the queue."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from portal.calendar import add_business_days
from portal.core.timeutil import today_jst
from portal.reports import deadlines
from portal.reports.clock import file_by
from tests.conftest import ja
from tests.reports_helpers import submitted_case
from tests.test_dialogue import send

TODAY = date(2026, 12, 1)  # a Tuesday


def row(status, *, transfer=date(2027, 3, 1), due=None, submitted=date(2026, 11, 2), awaiting_since=None, paused=0):
    at = datetime(submitted.year, submitted.month, submitted.day, 1, tzinfo=timezone.utc) if submitted else None
    return SimpleNamespace(status=status, planned_transfer_date=transfer, response_due=due, submitted_at=at,
                           closed_at=None, paused_days=paused, awaiting_since=awaiting_since)


@pytest.mark.parametrize("officer", [False, True])
def test_awaiting_shows_the_response_due_date_not_the_transfer(officer):
    d = deadlines.next_deadline(row("awaiting_response", due=date(2026, 12, 15), awaiting_since=date(2026, 11, 20)),
                                TODAY, officer=officer, target_days=20)
    assert d == deadlines.Deadline("response", date(2026, 12, 15), False)
    late = deadlines.next_deadline(row("awaiting_response", due=date(2026, 11, 30), awaiting_since=date(2026, 11, 20)),
                                   TODAY, officer=officer, target_days=20)
    assert late == deadlines.Deadline("response", date(2026, 11, 30), True)


def test_the_company_minds_the_transfer_and_the_officer_the_review_target():
    r = row("under_review", submitted=date(2026, 11, 2))
    company = deadlines.next_deadline(r, TODAY, officer=False, target_days=20)
    officer = deadlines.next_deadline(r, TODAY, officer=True, target_days=20)
    assert company == deadlines.Deadline("transfer", date(2027, 3, 1), False)
    assert officer.kind == "review_target" and officer.on == add_business_days(date(2026, 11, 2), 20)
    assert not officer.overdue
    # Submitted long ago: past the target.
    old = deadlines.next_deadline(row("under_review", submitted=date(2026, 9, 1)), TODAY, officer=True, target_days=20)
    assert old.kind == "review_target" and old.overdue and old.on < TODAY


def test_with_the_company_the_file_by_date_and_ended_cases_none():
    for status in ("draft", "returned"):
        d = deadlines.next_deadline(row(status, submitted=None), TODAY, officer=False, target_days=20)
        assert d == deadlines.Deadline("file_by", file_by(date(2027, 3, 1)), False)
    late = deadlines.next_deadline(row("draft", transfer=date(2026, 12, 20), submitted=None), TODAY, officer=False,
                                   target_days=20)
    assert late.kind == "file_by" and late.overdue
    # An officer minds the transfer of a returned case, not the company's file-by date.
    assert deadlines.next_deadline(row("returned"), TODAY, officer=True, target_days=20).kind == "transfer"
    for status in ("closed", "inform_issued", "withdrawn"):
        assert deadlines.next_deadline(row(status), TODAY, officer=True, target_days=20) is None
    passed = deadlines.next_deadline(row("submitted", transfer=date(2026, 11, 30)), TODAY, officer=False, target_days=20)
    assert passed == deadlines.Deadline("transfer", date(2026, 11, 30), True)


@pytest.mark.parametrize("officer", [False, True])
def test_a_passed_transfer_is_said_beside_the_deadline_shown_instead(officer):
    """A case on the overdue list only because its planned transfer passed shows why: the
    deadline it shows (the response due date, the review target) carries the passed date."""
    awaiting = row("awaiting_response", transfer=date(2026, 11, 30), due=date(2026, 12, 15),
                   awaiting_since=date(2026, 11, 20))
    d = deadlines.next_deadline(awaiting, TODAY, officer=officer, target_days=20)
    assert (d.kind, d.on, d.overdue, d.passed_transfer) == ("response", date(2026, 12, 15), False, date(2026, 11, 30))
    shown = deadlines.shown(d, "ja", {k: v for k, v in _texts().items()})
    assert shown.note == "Planned transfer date 2026年11月30日 has passed"
    if officer:
        review = deadlines.next_deadline(row("under_review", transfer=date(2026, 11, 30), submitted=date(2026, 11, 2)),
                                         TODAY, officer=True, target_days=20)
        assert review.kind == "review_target" and not review.overdue and review.passed_transfer == date(2026, 11, 30)
    # Not passed, or ended: nothing said.
    assert deadlines.next_deadline(row("awaiting_response", due=date(2026, 12, 15), awaiting_since=date(2026, 11, 20)),
                                   TODAY, officer=officer, target_days=20).passed_transfer is None
    assert deadlines.next_deadline(row("closed", transfer=date(2026, 11, 30)), TODAY, officer=officer,
                                   target_days=20) is None


def _texts() -> dict[str, str]:
    return {deadlines.FILE_BY: "File by %(date)s", deadlines.RESPONSE: "Respond by %(date)s",
            deadlines.TRANSFER: "Transfer %(date)s", deadlines.REVIEW_TARGET: "Review target %(date)s",
            deadlines.TRANSFER_PASSED: "Planned transfer date %(date)s has passed"}


# ---------------------------------------------------------------- on the pages

@pytest.fixture
def case(app, factory):
    return submitted_case(app, factory, org_name="株式会社デッドライン", take=True)


def _sql(app, sql, **params):
    from portal import db

    with app.app_context():
        db.session().execute(sa.text(sql), params)
        db.session().commit()


def _deadline_of(html: str, rid: int | None = None) -> str:
    """The first deadline markup in ``html``, or on the row of case ``rid``."""
    scope = html[html.index(f'href="/reports/{rid}"'):] if rid is not None else html
    m = re.search(r'<span class="deadline[^"]*" data-test="deadline"[^>]*>.*?</span>', scope, re.DOTALL)
    assert m, "no deadline shown"
    return m.group(0)


def test_one_deadline_drawn_the_same_everywhere_and_overdue_in_words(app, case):
    rid, fc = case["rid"], case["fc"]
    assert send(case["rc"], rid, "external", "資料を提出してください。",
                due=today_jst() + timedelta(days=21)).status_code == 302
    listed = _deadline_of(fc.get("/reports").get_data(as_text=True), rid)
    assert 'data-kind="response"' in listed and "deadline--overdue" not in listed
    page = fc.get(f"/reports/{rid}").get_data(as_text=True)
    on_page = _deadline_of(page[page.index('data-test="next-deadline"'):])
    on_home = _deadline_of(fc.get("/").get_data(as_text=True), rid)
    assert listed == on_page == on_home
    # The due date passes: highlighted, and said in words.
    _sql(app, "UPDATE reports SET response_due = :d WHERE id = :r", d=today_jst() - timedelta(days=1), r=rid)
    listed = _deadline_of(fc.get("/reports").get_data(as_text=True), rid)
    assert "deadline--overdue" in listed and ja("Overdue") in listed
    page = fc.get(f"/reports/{rid}").get_data(as_text=True)
    assert _deadline_of(page[page.index('data-test="next-deadline"'):]) == listed
    queue = _deadline_of(case["rc"].get("/review/queue").get_data(as_text=True), rid)
    assert 'data-kind="response"' in queue and ja("Overdue") in queue


def test_officers_see_the_review_target_and_the_company_does_not(app, case):
    rid = case["rid"]
    page = case["rc"].get(f"/reports/{rid}").get_data(as_text=True)
    m = re.search(r'data-test="review-target">(.*?)</dd>', page, re.DOTALL)
    assert m, "no review target on the officer's case page"
    target = add_business_days(today_jst(), app.config["SETTINGS"].review_target_days)
    assert f"{target.year}年{target.month}月{target.day}日" in m.group(1)
    assert 'data-kind="review_target"' in page[page.index('data-test="next-deadline"'):]
    company = case["fc"].get(f"/reports/{rid}").get_data(as_text=True)
    assert 'data-test="review-target"' not in company and 'data-kind="review_target"' not in company
    # Past the target: highlighted with the words.
    _sql(app, "UPDATE reports SET submitted_at = :d WHERE id = :r",
         d=datetime.now(timezone.utc) - timedelta(days=60), r=rid)
    page = case["rc"].get(f"/reports/{rid}").get_data(as_text=True)
    cell = re.search(r'data-test="review-target">(.*?)</dd>', page, re.DOTALL).group(1)
    assert "deadline--overdue" in cell and ja("Overdue") in cell


def test_group_a_cases_are_marked_in_the_queue_with_a_legend(app, case):
    rid, rc = case["rid"], case["rc"]

    def destination_cell():
        html = rc.get("/review/queue").get_data(as_text=True)
        start = html.index(f'href="/reports/{rid}"')
        return html, html[start:html.index("</tr>", start)]

    html, cell = destination_cell()
    assert 'data-test="group-a"' not in cell and 'data-test="queue-legend"' in html
    _sql(app, "INSERT INTO group_a_countries (country, listed_from) VALUES ('VN', :d)", d=date(2000, 1, 1))
    _html, cell = destination_cell()
    assert 'data-test="group-a"' in cell
    # Delisted before the planned transfer: no longer marked.
    _sql(app, "UPDATE group_a_countries SET listed_until = :d WHERE country = 'VN'", d=today_jst())
    _html, cell = destination_cell()
    assert 'data-test="group-a"' not in cell
