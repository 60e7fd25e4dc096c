"""The home page's work lists, composed from the features that own the work (DESIGN §10):

- approvers: 決裁待ち, the inform drafts they may decide (``informs.services.awaiting_approval``);
- case workers: their open cases and the cases past a deadline (``review.services``);
- companies: 対応が必要, requests awaiting their answer, returned reports
  (``reports.action_needed``) and informs to acknowledge (``informs.services.to_acknowledge``).

Every list holds only what the reader may see (the services filter with the policy) and shows
each case's next deadline as every other page does (``reports.deadlines``). This module sits
above the features, like ``create_app``: the core, which renders the home page, and the review
console, which marks the queue's cases awaiting approval, may not import them."""
from __future__ import annotations

from datetime import date

from flask import Flask, url_for
from sqlalchemy.orm import Session

from portal.access.levels import Role
from portal.core import worklists
from portal.core.i18n import gettext as _, language
from portal.core.web import settings, url_template
from portal.core.worklists import WorkItem, WorkList
from portal.informs import services as informs
from portal.reports import action_needed, deadlines
from portal.reports import states as S
from portal.review import services as review


def _item(href: str, report, what: str, today: date, *, officer: bool, loc: str, texts: dict) -> WorkItem:
    d = deadlines.next_deadline(report, today, officer=officer, target_days=settings().review_target_days)
    return WorkItem(href, report.reference or "", what, deadlines.shown(d, loc, texts))


def _by_deadline(items: list[WorkItem]) -> list[WorkItem]:
    """Overdue first, then the ones without a deadline last (stable otherwise)."""
    return sorted(items, key=lambda i: (0 if i.deadline and i.deadline.overdue else 1 if i.deadline else 2))


def for_user(session: Session, user, subject, today: date) -> list[WorkList]:
    role = Role.parse(user.role)
    if role is None:
        return []
    loc, texts = language(), deadlines.labels()
    case = url_template("reports.show", "report_id")
    lists: list[WorkList] = []
    if role.is_company:
        what = {S.AWAITING: _("METI asks for information: answer it"),
                S.RETURNED: _("Returned for correction: correct and resubmit")}
        items = [_item(case(r.id), r, what[r.status], today, officer=False, loc=loc, texts=texts)
                 for r in action_needed.cases(session, subject, today=today)]
        items += [_item(url_for("reports.show", report_id=i.report_id, _anchor="inform"), i.report,
                        _("Inform %(number)s issued: acknowledge receipt", number=i.number), today, officer=False,
                        loc=loc, texts=texts)
                  for i in informs.to_acknowledge(session, subject=subject, today=today)]
        lists.append(WorkList("company_action", _("Action needed"), _by_deadline(items),
                              _("Nothing needs your action.")))
        return lists
    if role == Role.APPROVER:
        items = [_item(url_for("informs.confirm", inform_id=i.id), i.report, _("Inform draft awaiting your approval"),
                       today, officer=True, loc=loc, texts=texts)
                 for i in informs.awaiting_approval(session, subject=subject, actor=user, today=today)]
        lists.append(WorkList("approval", _("Awaiting approval"), items, _("No inform awaits your approval.")))
    if role in (Role.REVIEWER, Role.APPROVER):
        statuses = S.status_labels()
        mine = [_item(case(r.id), r, statuses.get(r.status, r.status), today, officer=True, loc=loc, texts=texts)
                for r in review.my_cases(session, subject, user, today=today)]
        lists.append(WorkList("my_cases", _("My cases"), _by_deadline(mine), _("No open case is assigned to you."),
                              url_for("review.queue", assignee="me"), _("All my cases in the queue")))
        late = [_item(case(r.id), r, statuses.get(r.status, r.status), today, officer=True, loc=loc, texts=texts)
                for r in review.overdue_cases(session, subject, today=today,
                                              target_days=settings().review_target_days)]
        lists.append(WorkList("overdue", _("Overdue cases"), late, _("No case is overdue."),
                              url_for("review.queue", overdue="1"), _("All overdue cases in the queue")))
    return lists


def init_app(app: Flask) -> None:
    worklists.provide_with(for_user)
    review.mark_awaiting_approval_with(informs.awaiting_approval_column)
