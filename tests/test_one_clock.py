"""One calendar, one clock, one state table (issue 12).

- The dashboard's overdue figure, the queue's overdue filter and each row's flag agree, for a
  case worker, over cases in every status with paused periods, due dates past and future,
  transfer dates passed (and in years 1 and 9999), on days around the year-end closure.
- The SQL form of the rule (``clock.overdue_condition``) selects exactly the cases whose
  ``clocks(...).overdue`` is true, visible or not.
- ``portal.calendar.business_days_between`` equals a count day by day, and stays fast for
  dates at the ends of the calendar.
- The state table carries every transition's effects.
"""
from __future__ import annotations

import random
import time
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import given, settings, strategies as st

from portal.calendar import (add_business_days, business_day_on_or_before, business_days_back,
                             business_days_between, is_business_day)
from portal.core.timeutil import JST

# ---------------------------------------------------------------- the calendar


def _naive_between(start: date, end: date) -> int:
    if end < start:
        return -_naive_between(end, start)
    n, d = 0, start
    while d < end:
        d += timedelta(days=1)
        n += is_business_day(d)
    return n


def _naive_add(start: date, n: int) -> date:
    d = start
    if n == 0:
        while not is_business_day(d):
            d += timedelta(days=1)
        return d
    while n:
        d += timedelta(days=1)
        n -= is_business_day(d)
    return d


_dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2160, 12, 31))


@settings(max_examples=300, deadline=None)
@given(_dates, st.integers(min_value=-1200, max_value=1200))
def test_business_days_between_equals_a_day_by_day_count(start, span):
    end = start + timedelta(days=span)
    assert business_days_between(start, end) == _naive_between(start, end)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.dates(max_value=date(3, 12, 31)), st.dates(min_value=date(9997, 1, 1), max_value=date(9999, 12, 1)),
                 st.dates(min_value=date(2095, 1, 1), max_value=date(2105, 1, 1)),
                 st.dates(min_value=date(1945, 1, 1), max_value=date(1952, 1, 1))),
       st.integers(min_value=0, max_value=25))
def test_the_ends_of_the_calendar_and_of_the_holiday_span(start, span):
    end = min(start + timedelta(days=span), date.max)
    assert business_days_between(start, end) == _naive_between(start, end)
    if end != date.max:
        assert add_business_days(start, min(span, 5)) == _naive_add(start, min(span, 5))


@settings(max_examples=150, deadline=None)
@given(_dates, st.integers(min_value=0, max_value=300))
def test_add_and_back_invert_the_count(start, n):
    d = add_business_days(start, n)
    assert d == _naive_add(start, n)
    if n:
        assert business_days_between(start, d) == n and is_business_day(d)
        assert business_days_back(d, n) == _naive_add(start, 1) if n else True
    on_or_before = business_day_on_or_before(start)
    assert on_or_before is not None and is_business_day(on_or_before) and on_or_before <= start
    assert all(not is_business_day(on_or_before + timedelta(days=i)) for i in range(1, (start - on_or_before).days + 1))


def test_far_dates_are_counted_at_once_and_never_leave_the_calendar():
    t0 = time.perf_counter()
    today = date(2026, 11, 20)
    forward = business_days_between(today, date(9999, 12, 31))
    backward = business_days_between(today, date(1, 1, 2))
    whole = business_days_between(date(1, 1, 1), date(9999, 12, 31))
    assert forward > 0 > backward and whole == forward - backward
    # The first days of year 1 are in the year-end closure; the last of 9999 too.
    assert business_days_between(date(1, 1, 1), date(1, 1, 4)) == 1
    assert business_days_between(date(9999, 12, 28), date(9999, 12, 31)) == 0
    assert business_day_on_or_before(date(1, 1, 3)) is None
    assert add_business_days(date(9999, 12, 1), 0) == date(9999, 12, 1)
    with pytest.raises(OverflowError):
        add_business_days(date(9999, 12, 28), 1)
    for _ in range(200):  # the queue asks this for every row
        business_days_between(today, date(9999, 12, 31))
        business_days_between(today, date(1, 1, 2))
    assert time.perf_counter() - t0 < 1.0
    # A holiday-free year repeats every 400 years: 2200 and 9800 alike.
    assert business_days_between(date(2199, 12, 31), date(2200, 12, 31)) == \
        business_days_between(date(9799, 12, 31), date(9800, 12, 31))


def test_the_clocks_handle_far_transfer_dates():
    from portal.reports.clock import clocks, file_by
    from portal.reports.deadlines import next_deadline as deadline

    class R:
        status, submitted_at, closed_at, paused_days, awaiting_since, response_due = (
            "under_review", datetime(2026, 11, 2, 1, tzinfo=timezone.utc), None, 0, None, None)
        planned_transfer_date = date(9999, 12, 31)

    today = date(2026, 11, 20)
    assert clocks(R, today, 20).days_to_transfer > 1_000_000 and not clocks(R, today, 20).transfer_passed
    R.planned_transfer_date = date(1, 1, 2)
    assert clocks(R, today, 20).transfer_passed and clocks(R, today, 20).days_to_transfer < -400_000
    R.status = "draft"
    d = deadline(R, today, officer=False, target_days=20)
    assert (d.kind, d.on) == ("file_by", date.min) == ("file_by", file_by(date(1, 1, 2))) and d.overdue
    R.planned_transfer_date = date(9999, 12, 31)
    d = deadline(R, today, officer=False, target_days=20)
    assert (d.kind, d.on, d.overdue) == ("file_by", date(9999, 12, 1), False)  # 30 days before; a Wednesday


# ---------------------------------------------------------------- the state table

def test_the_state_table_carries_the_effects():
    from portal.reports import states as S

    S._check_table()
    t = S.TRANSITIONS
    assert t["request_info"].pauses_clock and t["request_info"].needs_due_date and t["request_info"].notify.to == S.COMPANY
    assert t["return"].pauses_clock and t["return"].notify == S.Notify("returned", S.COMPANY)
    assert t["close"].ends_case and t["close"].notify == S.Notify("closed", S.COMPANY)
    assert t["answer"].resumes_clock and t["answer"].notify == S.Notify("answer", S.ASSIGNEE)
    assert t["issue_inform"].ends_case and t["issue_inform"].notify.kind == "inform"
    assert t["submit"].freezes_version and t["resubmit"].starts_clock
    assert set(S.CLOCK_RUNNING) < set(S.OPEN_STATUSES) and S.RETURNED not in S.CLOCK_RUNNING
    # No module spells a transition's name to decide its effects.
    import inspect

    from portal.reports import services

    src = inspect.getsource(services.transition)
    assert "name ==" not in src and "name in" not in src


def test_return_and_resubmit_move_the_clock_and_tell_the_company_once(app, factory):
    from portal import db
    from portal.access.subject import subject_for
    from portal.auth.models import User
    from portal.core.timeutil import today_jst
    from portal.notifications.models import Notification
    from portal.reports import services
    from portal.reports.models import Report
    from tests.conftest import sign_in
    from tests.reports_helpers import fill_all, new_report, submit

    org = factory.org("株式会社時計", facility=True)
    filer = factory.user("filer", org=org, compartments=("T01",))
    reviewer = factory.user("reviewer", compartments=("T01",), level="csi")
    fc = app.test_client()
    sign_in(fc, filer)
    rid = new_report(fc)
    fill_all(fc, rid)
    submit(fc, rid)
    today = today_jst()
    with app.test_request_context():
        s = db.session()
        r = s.get(Report, rid)
        rev, fil = s.get(User, reviewer.id), s.get(User, filer.id)
        rs, fs = subject_for(s, rev, today), subject_for(s, fil, today)
        services.transition(s, r, "take", subject=rs, actor=rev, today=today, ip=None, base_url="https://x.test")
        services.transition(s, r, "return", subject=rs, actor=rev, today=today, ip=None, comment="直してください",
                             base_url="https://x.test")
        assert r.status == "returned" and r.awaiting_since == today and r.response_due is None
        kinds = list(s.execute(sa.select(Notification.kind).where(Notification.user_id == filer.id)).scalars())
        assert kinds.count("returned") == 1
        services.transition(s, r, "resubmit", subject=fs, actor=fil, today=today, ip=None)
        assert r.status == "submitted" and r.awaiting_since is None and r.paused_days == 0
        services.transition(s, r, "take", subject=rs, actor=rev, today=today, ip=None)
        services.transition(s, r, "close", subject=rs, actor=rev, today=today, ip=None, comment="確認しました")
        kinds = list(s.execute(sa.select(Notification.kind).where(Notification.user_id == filer.id)).scalars())
        assert kinds.count("closed") == 1 and r.closed_at is not None
        s.rollback()


# ---------------------------------------------------------------- one clock, three readings

TODAYS = [date(2026, 12, 25), date(2026, 12, 28), date(2026, 12, 29), date(2027, 1, 2), date(2027, 1, 4),
          date(2027, 1, 9), date(2026, 5, 7), date(2027, 3, 1)]
STATUSES = ["submitted", "under_review", "awaiting_response", "returned", "closed", "inform_issued", "withdrawn", "draft"]


def _moment(rng: random.Random, base: date) -> datetime:
    """A submission instant around ``base``, often right at a JST midnight or a tick before."""
    day = base - timedelta(days=rng.randint(-3, 120))
    midnight = datetime(day.year, day.month, day.day, tzinfo=JST).astimezone(timezone.utc)
    return rng.choice([midnight, midnight - timedelta(microseconds=1), midnight + timedelta(hours=rng.randint(0, 23)),
                       midnight + timedelta(hours=8, minutes=59, seconds=59)])


def _build_cases(session, org_id: int, user_id: int) -> None:
    from portal.catalogue.models import Technology
    from portal.reports.models import Report

    tech = {code: id_ for code, id_ in session.execute(sa.select(Technology.code, Technology.id))}
    rng = random.Random(12)
    base = date(2026, 12, 28)
    transfers = [None, date(9999, 12, 31), date(1, 1, 2), base, base - timedelta(days=1), base + timedelta(days=1),
                 date(2026, 12, 31), date(2027, 1, 3), date(2027, 1, 4)]
    rows = []
    for i in range(150):
        status = STATUSES[i % len(STATUSES)]
        submitted = None if status == "draft" else _moment(rng, base)
        paused = rng.choice([0, 0, 0, 1, 2, 5, 13, 40])
        r = Report(organisation_id=org_id, created_by_id=user_id, status=status, classification="restricted",
                   technology_id=tech["T02" if i % 23 == 0 else "T01"], destination_country="VN",
                   title=f"case {i}", submitted_at=submitted, paused_days=paused if submitted else 0,
                   planned_transfer_date=rng.choice(transfers) if i % 3 else base + timedelta(days=rng.randint(-40, 40)),
                   reference=None if status == "draft" else f"TTR-2026-{i:06d}")
        if status in ("awaiting_response", "returned"):
            r.awaiting_since = submitted.astimezone(JST).date() + timedelta(days=rng.randint(0, 10))
        if status == "awaiting_response":
            r.response_due = rng.choice([base - timedelta(days=rng.randint(1, 20)), base, base + timedelta(days=1),
                                         date(2027, 1, 4), date(9999, 12, 31), date(1, 1, 2)])
        if status in ("closed", "inform_issued", "withdrawn"):
            r.closed_at = submitted + timedelta(days=rng.randint(0, 60))
        rows.append(r)
    # A few odd ones: submitted long ago with long pauses, in year 1, and in the future.
    odd = [(datetime(1999, 3, 1, tzinfo=timezone.utc), 3000), (datetime(1, 1, 5, 3, tzinfo=timezone.utc), 7),
           (datetime(2027, 6, 1, tzinfo=timezone.utc), 0), (datetime(2026, 12, 1, tzinfo=timezone.utc), 10_000)]
    for j, (submitted, paused) in enumerate(odd):
        rows.append(Report(organisation_id=org_id, created_by_id=user_id, status="under_review", classification="restricted",
                           technology_id=tech["T01"], destination_country="CN", title=f"odd {j}",
                           submitted_at=submitted, paused_days=paused, reference=f"TTR-1999-{j:06d}"))
    session.add_all(rows)
    session.commit()


def _all_rows(session, subject, user, f, today, target_days):
    from portal.review import services

    rows, page = [], 1
    while True:
        q = services.queue(session, subject, user, replace(f, page=page), today=today, target_days=target_days)
        rows += q.rows
        if page >= q.pages:
            return q.total, rows
        page += 1


def test_dashboard_queue_filter_and_row_flags_agree(app, factory):
    from portal import db
    from portal.access.subject import subject_for
    from portal.auth.models import User
    from portal.reports.models import Report
    from portal.review import services
    from portal.reports.clock import clocks, overdue_condition, overdue_params

    org = factory.org("株式会社期限", facility=True)
    filer = factory.user("filer", org=org, compartments=("T01",))
    worker = factory.user("approver", compartments=("T01",), level="confidential")
    with app.test_request_context():
        s = db.session()
        _build_cases(s, org.id, filer.id)
        worker = s.get(User, worker.id)
        everyone = list(s.execute(sa.select(Report)).scalars())
        seen_flags = set()
        for today in TODAYS:
            subject = subject_for(s, worker, today)
            for target in (0, 5, 20):
                # The SQL form against the clock, over every case (visible or not).
                in_sql = set(s.execute(sa.select(Report.id).where(overdue_condition()),
                                       overdue_params(s, today, target)).scalars())
                by_clock = {r.id for r in everyone if clocks(r, today, target).overdue}
                assert in_sql == by_clock, (today, target, sorted(in_sql ^ by_clock))
                # What a case worker sees: the queue, its overdue filter, the dashboard.
                total, rows = _all_rows(s, subject, worker, services.Filters(), today, target)
                assert total == len(rows) > 100
                flagged = {row.report.id for row in rows if row.clocks.overdue}
                od_total, od_rows = _all_rows(s, subject, worker, services.Filters(overdue=True), today, target)
                assert {row.report.id for row in od_rows} == flagged
                assert all(row.clocks.overdue for row in od_rows)
                assert od_total == len(flagged) == services.dashboard(s, subject, today=today, target_days=target).overdue
                assert 0 < len(flagged) < len(rows)
                for row in rows:
                    c = row.clocks
                    seen_flags.update(k for k in ("review_overdue", "response_overdue", "transfer_passed") if getattr(c, k))
                    if c.review_target is not None and row.report.status in ("submitted", "under_review"):
                        # The target date and the count say the same thing.
                        assert c.review_overdue == (business_days_between(c.review_target, today) > 0)
        assert seen_flags == {"review_overdue", "response_overdue", "transfer_passed"}
