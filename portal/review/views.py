from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup, escape

from portal import db
from portal.catalogue import services as catalogue
from portal.access.policy import Action
from portal.auth.forms import EmptyForm
from portal.core.guard import by_id, current_subject, guarded
from portal.core.i18n import gettext as _, language
from portal.core.service import Refused, ServiceError
from portal.core.timeutil import today_jst
from portal.core.web import client_ip, page_arg, settings, url_template
from portal.reports import case_forms, deadlines
from portal.reports import services as reports
from portal.reports import states as S
from portal.reports.models import Report
from portal.reports.reference_data import countries, country_name
from portal.review import charts, services
from portal.review.forms import AssignForm, CloseForm, ReturnForm

bp = Blueprint("review", __name__, url_prefix="/review")


def _load(report_id: int):
    return by_id(Report, report_id)


@bp.route("/queue")
@guarded(Action.REVIEW_QUEUE)
def queue():
    a = request.args
    f = services.Filters(
        status=a.get("status") or None, technology=(a.get("technology") or "")[:32] or None,
        country=(a.get("country") or "")[:2] or None, assignee=(a.get("assignee") or "")[:12] or None,
        overdue=a.get("overdue") == "1", unread=a.get("unread") == "1",
        sort=a.get("sort") if a.get("sort") in services.SORTS else "submitted",
        page=page_arg())
    today = today_jst()
    q = services.queue(db.session(), current_subject(), current_user, f, today=today,
                       target_days=settings().review_target_days)
    loc = language()
    return render_template("review/queue.html", q=q, f=f, statuses=S.status_labels(), rows=_queue_rows(q, loc, today),
                           technologies=catalogue.filter_options(db.session(), today, loc),
                           country_options=_country_options(loc, f.country), sorts=services.SORTS,
                           args={k: v for k, v in a.items() if k != "page"})


@dataclass(frozen=True, slots=True)
class QueueRow:
    href: str
    reference: str
    overdue: bool
    response_overdue: bool
    organisation: str
    technology: str
    destination: str
    status: str
    status_label: str
    deadline: deadlines.Shown | None
    group_a: bool
    assignee: str
    review_days: str
    days_to_transfer: str
    unread: int


def _queue_rows(q, loc: str, today) -> list[QueueRow]:
    """The queue's cells as text, each label translated once per page (see reports.views)."""
    href = url_template("reports.show", "report_id")
    statuses = S.status_labels()
    awaiting_approval = _("Awaiting approval")
    texts = deadlines.labels()
    target_days = settings().review_target_days
    rows = []
    for row in q.rows:
        r, c = row.report, row.clocks
        # A case whose inform draft waits for an approver says so, not 審査中.
        pending = row.awaiting_approval and r.status == S.UNDER_REVIEW
        rows.append(QueueRow(
            href=href(r.id), reference=r.reference or "", overdue=c.overdue, response_overdue=c.response_overdue,
            organisation=r.organisation_name, technology=r.technology_code or "",
            destination=country_name(r.destination_country, loc),
            status="awaiting_approval" if pending else r.status,
            status_label=awaiting_approval if pending else statuses.get(r.status, r.status),
            deadline=deadlines.shown(deadlines.next_deadline(r, today, officer=True, target_days=target_days, known=c),
                                     loc, texts),
            group_a=row.group_a, assignee=row.assignee or "–",
            review_days="" if c.review_days is None else str(c.review_days),
            days_to_transfer="" if c.days_to_transfer is None else str(c.days_to_transfer), unread=row.unread))
    return rows


@lru_cache(maxsize=4)
def _country_option_tags(loc: str) -> tuple[tuple[str, Markup], ...]:
    return tuple((code, Markup('<option value="{0}">{1}</option>').format(code, name)) for code, name in countries(loc))


def _country_options(loc: str, selected: str | None) -> Markup:
    """The destination filter's ~250 options, escaped once per process and language."""
    return Markup("").join(Markup(f'<option value="{escape(code)}" selected>{escape(country_name(code, loc))}</option>')
                           if code == selected else tag for code, tag in _country_option_tags(loc))


def _case(obj: Report) -> str:
    return url_for("reports.show", report_id=obj.id)


def _transition(report: Report, name: str, comment: str | None = None):
    """A review transition; its effects (clock, notifications) come from the state table."""
    reports.transition(db.session(), report, name, subject=current_subject(), actor=current_user, today=today_jst(),
                       ip=client_ip(), comment=comment, base_url=settings().base_url)


@bp.route("/cases/<int:report_id>/take", methods=["POST"])
@guarded(Action.REPORT_REVIEW, load=_load, event="report.take", back=_case)
def take(obj: Report):
    if not EmptyForm().validate_on_submit():
        abort(400)
    _transition(obj, "take")
    flash(_("You have taken this case."), "success")
    return redirect(_case(obj))


@bp.route("/cases/<int:report_id>/assign", methods=["POST"])
@guarded(Action.REPORT_ASSIGN, load=_load, event="report.assign", back=_case)
def assign(obj: Report):
    form = AssignForm()
    if not form.validate_on_submit():
        return case_forms.show_again(obj, "report.assign", ServiceError(
            _("Choose a reviewer."), field="assignee", reason="invalid_input"), assign_form=form)
    try:
        services.assign(db.session(), obj, form.assignee.data, subject=current_subject(), actor=current_user,
                        today=today_jst(), ip=client_ip(), base_url=settings().base_url)
    except Refused:
        raise
    except ServiceError as e:
        if e.field != "assignee":
            raise
        form.assignee.errors = [*form.assignee.errors, e.message]
        form._errors = None
        return case_forms.show_again(obj, "report.assign", e, assign_form=form)
    flash(_("The case has been assigned."), "success")
    return redirect(_case(obj))


@bp.route("/cases/<int:report_id>/return", methods=["POST"])
@guarded(Action.REPORT_REVIEW, load=_load, event="report.return", back=_case)
def return_(obj: Report):
    form = ReturnForm()
    if not form.validate_on_submit():
        return case_forms.show_again(obj, "report.return", ServiceError(
            _("Enter what the company must correct."), field="comment", reason="comment_missing"), return_form=form)
    _transition(obj, "return", form.comment.data)
    flash(_("The report has been returned for correction."), "success")
    return redirect(_case(obj))


@bp.route("/cases/<int:report_id>/close", methods=["POST"])
@guarded(Action.REPORT_REVIEW, load=_load, event="report.close", back=_case)
def close(obj: Report):
    form = CloseForm()
    if not form.validate_on_submit():
        return case_forms.show_again(obj, "report.close", ServiceError(
            _("Enter a summary for the company."), field="summary", reason="comment_missing"), close_form=form)
    _transition(obj, "close", form.summary.data)
    flash(_("The case has been closed without an inform."), "success")
    return redirect(_case(obj))


@bp.route("/dashboard")
@guarded(Action.DASHBOARD_VIEW)
def dashboard():
    d = services.dashboard(db.session(), current_subject(), today=today_jst(), target_days=settings().review_target_days)
    loc = language()
    status_chart = charts.bars([(str(S.STATUS_LABELS.get(k, k)), n) for k, n in d.by_status], _("Cases by status"))
    tech_chart = charts.bars(d.by_technology, _("Cases by technology"))
    country_chart = charts.bars([(country_name(c, loc) if c != "–" else c, n) for c, n in d.by_country],
                                _("Cases by destination"))
    return render_template("review/dashboard.html", d=d, charts=[status_chart, tech_chart, country_chart])
