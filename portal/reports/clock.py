"""The one clock of a case (DESIGN §4), in business days on the one government calendar
(``portal.calendar``). Everything that says how long a case has taken, when something is due
or whether it is late comes from here: the case page and the queue (``clocks``), every
page's next deadline (``portal.reports.deadlines``, which reads these clocks), the queue's
overdue filter and the dashboard's overdue figure (``overdue_condition``, the same rule in
SQL) and the daily job (``reminder_due`` and ``overdue_condition``). tests/test_one_clock.py
proves the SQL form equal to ``clocks``.

The rules:

- The review clock starts on the (JST) day a version is submitted (a resubmission after a
  return starts it afresh) and counts the business days after it, up to today or the day
  the case ended. It stops while the case awaits the company (``states.CLOCK_PAUSED``: an
  answer, or the correction of a returned report): ``paused_days`` holds the pauses already
  over, ``awaiting_since`` the start of the current one.
- review overdue: the clock runs (``states.CLOCK_RUNNING``) and the review days exceed the
  target (``PORTAL_REVIEW_TARGET_DAYS``); equivalently, a business day has passed since the
  review target date (submission + target + paused business days).
- response overdue: the case awaits an answer and its due date is before today.
- transfer passed: the case is open (``states.OPEN_STATUSES``: not yet decided or withdrawn)
  and its planned transfer date is before today.
- overdue: any of the three.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import and_, bindparam, case, func, or_, select
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import DateTime

from portal.calendar import (add_business_days, business_day_on_or_before, business_days_back,
                             business_days_between, previous_business_days)
from portal.core.timeutil import JST
from portal.reports import states as S
from portal.reports.content import TARGET_DAYS_BEFORE_TRANSFER
from portal.reports.models import Report


@dataclass(frozen=True)
class Clocks:
    review_days: int | None
    days_to_transfer: int | None
    response_overdue: bool
    review_overdue: bool
    transfer_passed: bool
    review_target: date | None = None        # the day the review days reach the target (as things stand)
    response_days_left: int | None = None    # business days until the response is due (awaiting only)

    @property
    def overdue(self) -> bool:
        return self.review_overdue or self.response_overdue or self.transfer_passed


def _target(target_days: int) -> int:
    return max(int(target_days), 0)


def _paused(report) -> int:
    return max(report.paused_days or 0, 0)


def _jst_date(moment: datetime) -> date:
    return moment.astimezone(JST).date()


def clocks(report, today: date, target_days: int) -> Clocks:
    """``report``: a ``Report`` or a list row (``listing.ListedReport``) — the clock columns only."""
    target = _target(target_days)
    status = report.status
    review = review_target = None
    review_overdue = False
    if report.submitted_at is not None:
        start = _jst_date(report.submitted_at)
        end = _jst_date(report.closed_at) if status in S.ENDED and report.closed_at else today
        paused = _paused(report)
        current = 0  # the pause still running
        if status in S.CLOCK_PAUSED and report.awaiting_since is not None:
            current = max(business_days_between(report.awaiting_since, end), 0)
        used = business_days_between(start, end) - paused - current
        review = max(used, 0)
        review_overdue = status in S.CLOCK_RUNNING and used > target
        try:
            review_target = add_business_days(start, target + paused + current) if target + paused + current else start
        except OverflowError:
            review_target = None
    transfer = report.planned_transfer_date
    due = report.response_due if status == S.AWAITING else None
    return Clocks(
        review_days=review,
        days_to_transfer=business_days_between(today, transfer) if transfer else None,
        response_overdue=bool(due and due < today),
        review_overdue=review_overdue,
        transfer_passed=bool(status in S.OPEN_STATUSES and transfer and transfer < today),
        review_target=review_target,
        response_days_left=business_days_between(today, due) if due else None,
    )


def file_by(transfer: date) -> date:
    """The target filing date: the business day on or before 30 days ahead of the transfer
    (the calendar's first day for a transfer planned in the first days of year 1)."""
    ordinal = transfer.toordinal() - TARGET_DAYS_BEFORE_TRANSFER
    if ordinal < 1:
        return date.min
    return business_day_on_or_before(date.fromordinal(ordinal)) or date.min


def reminder_due(report, today: date, reminder_days: int) -> bool:
    """The daily job reminds the company when the answer is due within ``reminder_days``
    business days (and not yet late)."""
    left = clocks(report, today, 0).response_days_left
    return left is not None and 0 <= left <= reminder_days


# ------------------------------------------------------------------ the same rule in SQL

class _ReviewStartLimit(FunctionElement):
    """``od_review_limits[paused_days]``: for a case that has paused ``p`` business days, the
    instant (JST midnight, as UTC) before which it must have been submitted to be past its
    target today. Element ``p`` is the (target + p + 1)-th business day counting back from
    today, so ``submitted_at < limit[p]`` ⟺ business_days_between(submitted, today) > target + p
    ⟺ review days > target. Past the list's end the value is NULL: not overdue (the list is
    long enough for every case that could be, see ``overdue_params``)."""

    name = "review_start_limit"
    type = DateTime(timezone=True)
    inherit_cache = True


@compiles(_ReviewStartLimit)
def _limit_default(element, compiler, **kw):
    raise CompileError("the overdue condition is written for SQLite and PostgreSQL only")


@compiles(_ReviewStartLimit, "sqlite")
def _limit_sqlite(element, compiler, **kw):
    limits, index = list(element.clauses)
    # A JSON array of timestamps in the form SQLite stores them: text compares in time order.
    return f"json_extract({compiler.process(limits, **kw)}, '$[' || {compiler.process(index, **kw)} || ']')"


@compiles(_ReviewStartLimit, "postgresql")
def _limit_postgresql(element, compiler, **kw):
    limits, index = list(element.clauses)
    return f"(CAST({compiler.process(limits, **kw)} AS TIMESTAMP WITH TIME ZONE[]))[{compiler.process(index, **kw)} + 1]"


def _paused_sql(t):
    p = func.coalesce(t.paused_days, 0)
    return case((p < 0, 0), else_=p)


def overdue_condition(t=None):
    """The rule of ``clocks(...).overdue`` as a WHERE clause on ``reports`` (bound by
    ``overdue_params``): the queue's overdue filter and the dashboard's figure. Each branch is
    one flag: review overdue, response overdue, transfer passed."""
    t = Report if t is None else t
    return or_(
        and_(t.status.in_(S.CLOCK_RUNNING),
             t.submitted_at < _ReviewStartLimit(bindparam("od_review_limits"), _paused_sql(t))),
        and_(t.status == S.AWAITING, t.response_due < bindparam("od_today")),
        and_(t.status.in_(S.OPEN_STATUSES), t.planned_transfer_date < bindparam("od_today")),
    )


def _start_of(d: date) -> datetime:
    return datetime.combine(d, time(), JST)


def overdue_params(session, today: date, target_days: int) -> dict:
    """The values ``overdue_condition`` is bound with for ``today``. The review limits run as
    far as the cases need: to the largest pause among the running cases that could be past
    their target, and no further back than the oldest of them (one small aggregate query)."""
    target = _target(target_days)
    limits: list[datetime] = []
    first = business_days_back(today, target + 1)
    if first is not None:
        most_paused, oldest = session.execute(
            select(func.max(_paused_sql(Report)), func.min(Report.submitted_at))
            .where(Report.status.in_(S.CLOCK_RUNNING), Report.submitted_at < _start_of(first))).one()
        if most_paused is not None and oldest is not None:
            span = business_days_between(_jst_date(oldest), today) - target
            limits = [_start_of(d) for d in previous_business_days(today, target + 1, min(most_paused + 1, span))]
    dialect = session.get_bind().dialect
    if dialect.name == "sqlite":
        store = Report.__table__.c.submitted_at.type.dialect_impl(dialect).bind_processor(dialect)
        value = json.dumps([store(x) if store else x.isoformat() for x in limits])
    else:
        value = limits
    return {"od_today": today, "od_review_limits": value}

