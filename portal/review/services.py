"""The review console: the queue a case worker may see, assignment, and the dashboard."""
from __future__ import annotations

from collections import Counter

import statistics
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import date
from typing import Any, Callable

from sqlalchemy import and_, bindparam, exists, false, func, or_, select
from sqlalchemy.orm import Session

from portal.access.levels import Role
from portal.access.policy import Action, Subject, decide
from portal.attachments.models import Attachment
from portal.auth.models import User
from portal.catalogue.models import Technology
from portal.core.i18n import gettext as _
from portal.core.service import ServiceError
from portal.core.web import parse_id
from portal.dialogue import unread as unread_cases
from portal.dialogue.models import EXTERNAL, INTERNAL, UnreadCase
from portal.reports import listing
from portal.reports import services as reports
from portal.reports import states as S
from portal.reports.models import GroupACountry, Report, ReportTally
from portal.reports import clock
from portal.reports.clock import Clocks, clocks

SORTS = {
    "submitted": (Report.submitted_at.desc(),),
    "submitted_asc": (Report.submitted_at.asc(),),
    "transfer": (Report.planned_transfer_date.asc(),),
    "reference": (Report.reference.asc(),),
    "due": (Report.response_due.asc(),),
}
PER_PAGE = 50


@dataclass
class Filters:
    status: str | None = None
    technology: str | None = None
    country: str | None = None
    assignee: str | None = None  # "me" | "none" | user id
    overdue: bool = False
    unread: bool = False
    sort: str = "submitted"
    page: int = 1


@dataclass
class Row:
    report: listing.ListedReport
    clocks: Clocks
    unread: int
    assignee: str | None
    group_a: bool = False            # the destination is a Group A country on the transfer date
    awaiting_approval: bool = False  # an inform draft awaits an approver (決裁待ち)


@dataclass
class Queue:
    rows: list[Row]
    total: int
    page: int
    pages: int
    counts: dict[str, int] = field(default_factory=dict)


# Whether a case has an inform awaiting approval: the informs' to say (a sibling package this
# one may not import), handed over when the app starts (``portal.worklists.init_app``).
_awaiting_approval: Callable[[Any], Any] | None = None


def mark_awaiting_approval_with(builder: Callable[[Any], Any]) -> None:
    global _awaiting_approval
    _awaiting_approval = builder
    _queue_statements.cache_clear()


def _group_a_column():
    """Group A on the planned transfer date (today when none), as ``reports.is_group_a`` says."""
    on = func.coalesce(Report.planned_transfer_date, bindparam("ga_today"))
    return exists().where(GroupACountry.country == Report.destination_country, GroupACountry.listed_from <= on,
                          or_(GroupACountry.listed_until.is_(None), GroupACountry.listed_until >= on))


def _overdue_condition():
    """Overdue, in SQL: exactly ``clocks(...).overdue`` (``portal.reports.clock``; proved by
    tests/test_one_clock.py). Bound by ``_overdue_params``."""
    return clock.overdue_condition()


def _overdue_params(session: Session, today: date, target_days: int) -> dict:
    return clock.overdue_params(session, today, target_days)


@lru_cache(maxsize=256)
def _queue_statements(status: bool, technology: bool, country: bool, assignee: str | None, overdue: bool,
                      unread: bool, sort: str):
    """The queue's count and page statements for one combination of filters and sort order,
    built once; every value is bound at execution."""
    cond = [reports.visible_to_government()]
    if status:
        cond.append(Report.status == bindparam("f_status"))
    if technology:
        cond.append(Report.technology_id.in_(bindparam("f_techs", expanding=True)))
    if country:
        cond.append(Report.destination_country == bindparam("f_country"))
    if assignee == "none":
        cond.append(Report.assignee_id.is_(None))
    elif assignee == "user":
        cond.append(Report.assignee_id == bindparam("f_assignee"))
    if overdue:
        cond.append(_overdue_condition())
    if unread:
        cond.append(unread_cases.condition(Report.id))
    where = and_(*cond)
    order = SORTS[sort] + (Report.id.desc(),)
    # The marks ride on the page's own statement: a page costs the same statements with them.
    marks = [_group_a_column(),
             _awaiting_approval(Report.id) if _awaiting_approval is not None else false()]
    if unread and not (technology or country or assignee or overdue):
        if sort in UNREAD_ORDERS:
            return _unread_statements(status, sort, marks)
        # Another order: the page walks the reports in it (an index per sort) and stops at 50;
        # the total, which no order changes, still comes from the reader's tallies rather than
        # from probing every visible case for unread messages.
        return (unread_cases.total(by_status=status),
                listing.statement(where, order, unread=True).add_columns(*marks))
    return (select(func.count()).select_from(Report).where(where),
            listing.statement(where, order, unread=True).add_columns(*marks))


# Unread only, in the order of submission (and by status): the total and the page's ids come
# from the reader's kept rows alone (``unread_cases.visible_rows``: the same visibility, on the
# labels copied into them), the page's columns for its 50 rows only.
UNREAD_ORDERS = {"submitted": (UnreadCase.submitted_at.desc(), UnreadCase.report_id.desc()),
                 "submitted_asc": (UnreadCase.submitted_at.asc(), UnreadCase.report_id.desc())}


def _unread_statements(status: bool, sort: str, marks: list):
    rows = unread_cases.visible_rows()
    if status:
        rows = and_(rows, UnreadCase.status == bindparam("f_status"))
    ids = (select(UnreadCase.report_id.label("id")).where(rows).order_by(*UNREAD_ORDERS[sort])
           .limit(bindparam("limit")).offset(bindparam("offset")).subquery("page"))
    return (unread_cases.total(by_status=status),
            listing.page_of(ids, SORTS[sort] + (Report.id.desc(),), unread=True).add_columns(*marks))


def queue(session: Session, subject: Subject, user: User, f: Filters, *, today: date, target_days: int) -> Queue:
    params = {**reports.government_params(session, subject), "unread_user": user.id,
              "unread_channels": [EXTERNAL, INTERNAL]}
    params["unread_rank"] = unread_cases.rank_param(params["vis_levels"])
    status = f.status if f.status in S.STATUS_LABELS and f.status != S.DRAFT else None
    if status:
        params["f_status"] = status
    if f.technology:
        params["f_techs"] = reports._technology_ids(session, [f.technology])
    if f.country:
        params["f_country"] = f.country
    assignee = None
    if f.assignee == "me" or (f.assignee and f.assignee.isascii() and f.assignee.isdigit()):
        # An id beyond the column's range names nobody (and must not reach the database as one).
        wanted = user.id if f.assignee == "me" else parse_id(f.assignee)
        assignee, params["f_assignee"] = "user", wanted or 0
    elif f.assignee == "none":
        assignee = "none"
    if f.overdue:
        params.update(_overdue_params(session, today, target_days))
    sort = f.sort if f.sort in SORTS else "submitted"
    count_stmt, page_stmt = _queue_statements(bool(status), bool(f.technology), bool(f.country), assignee,
                                              f.overdue, f.unread, sort)
    conn = session.connection()
    counts = reports.government_counts(session, subject)
    if not (f.technology or f.country or assignee or f.overdue or f.unread):
        # No filter but the status: the total is one of the counts.
        total = counts.get(status, 0) if status else sum(counts.values())
    else:
        total = conn.execute(count_stmt, params).scalar_one()
    pages = max(1, -(-total // PER_PAGE))
    page = max(1, min(f.page, pages))
    result = conn.execute(page_stmt, {**params, "ga_today": today, "limit": PER_PAGE, "offset": (page - 1) * PER_PAGE})
    rows = []
    for *columns, group_a, awaiting in result:
        r = listing.ListedReport(*columns)
        if decide(subject, Action.REPORT_VIEW, r, today=today).allowed:
            rows.append(Row(r, clocks(r, today, target_days), r.unread, r.assignee_name, bool(group_a),
                            bool(awaiting)))
    return Queue(rows, total, page, pages, counts)


def case_workers(session: Session, report: Report, today: date) -> list[User]:
    """Who may be assigned a case: active reviewers and approvers whom the policy lets review it."""
    from portal.access.subject import subject_for

    users = session.execute(select(User).where(User.active.is_(True),
                                               User.role.in_([Role.REVIEWER.value, Role.APPROVER.value]))
                            .order_by(User.name)).scalars()
    return [u for u in users if decide(subject_for(session, u, today), Action.REPORT_REVIEW, report, today=today).allowed]


def assign(session: Session, report: Report, assignee_id: int, *, subject: Subject, actor: User, today: date,
           ip: str | None, base_url: str) -> None:
    from portal.audit.trail import record
    from portal.notifications import notify

    d = decide(subject, Action.REPORT_ASSIGN, report, today=today)
    if not d.allowed:
        raise reports.Refused(_("You are not allowed to do this."), reason=d.reason, conceal=d.conceal)
    target = next((u for u in case_workers(session, report, today) if u.id == assignee_id), None)
    if target is None:
        raise ServiceError(_("Choose a reviewer who may see this case."), field="assignee", reason="bad_assignee")
    if report.status == S.SUBMITTED:
        # The state table's "take" tells the new assignee.
        reports.transition(session, report, "take", subject=subject, actor=actor, today=today, ip=ip, assignee=target,
                           base_url=base_url)
    elif report.status in (S.UNDER_REVIEW, S.AWAITING):
        report.assignee_id = target.id
        if target.id != actor.id:
            notify.notify(session, [target], report, "assigned", base_url)
    else:
        raise ServiceError(_("Only open cases can be assigned."), reason="illegal_transition")
    record(session, "report.assign", actor=actor, source_ip=ip, target_type="report", target_id=report.id,
           case_ref=report.reference, org_id=report.organisation_id, details={"assignee": target.id})


# ------------------------------------------------------------------ dashboard

@dataclass
class Dashboard:
    by_status: list[tuple[str, int]]
    by_technology: list[tuple[str, int]]
    by_country: list[tuple[str, int]]
    median_days_to_close: float | None
    closed_count: int
    overdue: int
    # Files of the cases the viewer may see, by malware-scan state (pending, infected, ...).
    scans: dict[str, int] = field(default_factory=dict)


def dashboard(session: Session, subject: Subject, *, today: date, target_days: int) -> Dashboard:
    params = reports.government_params(session, subject)
    visible = reports.visible_to_government()
    by_status = sorted(reports.government_counts(session, subject).items(), key=lambda kv: (-kv[1], kv[0]))
    hidden_by_code = Counter(r.code for r in params["hidden"])
    by_tech = [(code, int(n) - hidden_by_code[code]) for code, n in session.execute(
        select(Technology.code, func.sum(ReportTally.n)).join(ReportTally, ReportTally.technology_id == Technology.id)
        .where(reports.visible_to_government(ReportTally)).group_by(Technology.code).order_by(Technology.code),
        params).all() if n and int(n) - hidden_by_code[code]]
    by_country = session.execute(select(Report.destination_country, func.count()).where(visible)
                                 .group_by(Report.destination_country).order_by(func.count().desc()).limit(12),
                                 params).all()
    # Only cases the viewer may see count, in the charts and in the figures alike.
    # The clock columns only (no ORM objects, no sealed working copies) for the median.
    closed = listing.run(session.connection(), listing.statement(
        and_(visible, Report.status.in_([S.CLOSED, S.INFORM_ISSUED]), Report.submitted_at.is_not(None),
             Report.closed_at.is_not(None)), (Report.closed_at.desc(), Report.id.desc())),
        {**params, "limit": 2000, "offset": 0})
    durations = [clocks(r, today, target_days).review_days for r in closed]
    durations = [d for d in durations if d is not None]
    overdue = session.execute(select(func.count()).select_from(Report).where(visible, _overdue_condition()),
                              {**params, **_overdue_params(session, today, target_days)}).scalar_one()
    scans = dict(session.execute(select(Attachment.scan_state, func.count()).join(Report, Attachment.report_id == Report.id)
                                 .where(visible).group_by(Attachment.scan_state), params).all())
    return Dashboard(list(by_status), list(by_tech), [(c or "–", n) for c, n in by_country],
                     statistics.median(durations) if durations else None, len(durations), overdue, scans)


# ------------------------------------------------------------------ the home page's work lists

WORK_LIST_LIMIT = 20


@lru_cache(maxsize=1)
def _work_statements():
    visible = reports.visible_to_government()
    mine = listing.statement(and_(visible, Report.assignee_id == bindparam("me"), Report.status.in_(S.OPEN_STATUSES)),
                             (Report.submitted_at.asc(), Report.id.asc()))
    late = listing.statement(and_(visible, _overdue_condition()), (Report.submitted_at.asc(), Report.id.asc()))
    return mine, late


def my_cases(session: Session, subject: Subject, user: User, *, today: date,
             limit: int = WORK_LIST_LIMIT) -> list[listing.ListedReport]:
    """The open cases assigned to ``user`` that they may see, oldest submission first."""
    mine, _late = _work_statements()
    params = {**reports.government_params(session, subject), "me": user.id, "limit": limit, "offset": 0}
    return [r for r in listing.run(session.connection(), mine, params)
            if decide(subject, Action.REPORT_VIEW, r, today=today).allowed]


def overdue_cases(session: Session, subject: Subject, *, today: date, target_days: int,
                  limit: int = WORK_LIST_LIMIT) -> list[listing.ListedReport]:
    """The cases past a deadline (``clock.overdue_condition``) that the reader may see."""
    _mine, late = _work_statements()
    params = {**reports.government_params(session, subject), **_overdue_params(session, today, target_days),
              "limit": limit, "offset": 0}
    return [r for r in listing.run(session.connection(), late, params)
            if decide(subject, Action.REPORT_VIEW, r, today=today).allowed]
