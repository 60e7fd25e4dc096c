from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup

from portal import db
from portal.catalogue import services as catalogue
from portal.access.levels import LEVEL_LABELS, Level
from portal.access.policy import Action
from portal.auth.forms import EmptyForm
from portal.access.policy import OrgTarget
from portal.core.guard import after_this_request_commits, audit, by_id, can, current_subject, discard, failed, guarded
from portal.core.i18n import gettext as _, language
from portal.core.service import ServiceError
from portal.core.timeutil import today_jst
from portal.core.templating import jdate, paren
from portal.core.web import client_ip, page_arg, settings, url_template
from portal.reports import case_forms, content as C, drafts, flow
from portal.reports import deadlines, services, states as S
from portal.reports.forms import STEP_FORMS, SubmitForm, WithdrawForm, to_values
from portal.reports.models import Report, ReportVersion
from portal.reports.reference_data import countries, country_name, currencies, destination_countries

bp = Blueprint("reports", __name__)


def _load(report_id: int) -> Report | None:
    return by_id(Report, report_id)


def _load_version(report_id: int, number: int) -> ReportVersion | None:
    report = by_id(Report, report_id)
    if report is None or not 0 < number <= report.version_count:
        return None
    return services.version(db.session(), report, number)


def _own_org():
    return OrgTarget(current_user.organisation_id)


def _locale() -> str:
    return language()


def _case(obj) -> str:
    return url_for("reports.show", report_id=obj.id)


def _display(data: dict, known=None) -> dict:
    """Human-readable values for the summary and the receipt. ``known``: a technology already
    loaded (the case's own), used when it is the one the data names."""
    loc = _locale()
    code = data.get("technology")
    tech = known if known is not None and known.code == code else services.technology_by_code(db.session(), code)
    return {
        "technology": f"{tech.code} {tech.name(loc)}" if tech else "",
        "transfer_form": str(C.TRANSFER_FORMS.get(data.get("transfer_form"), "")),
        "counterparty_country": country_name(data.get("counterparty_country"), loc),
        "destination_country": country_name(data.get("destination_country"), loc),
        "counterparty_relation": str(C.RELATIONS.get(data.get("counterparty_relation"), "")),
        "measures": [str(C.MEASURES[m]) for m in data.get("measures") or [] if m in C.MEASURES],
    }


# ---------------------------------------------------------------- company side

@bp.route("/reports")
@guarded(Action.REPORT_LIST)
def index():
    s = db.session()
    status = request.args.get("status") or None
    tech = (request.args.get("technology") or "")[:32] or None
    page_no = page_arg()
    if can(Action.REVIEW_QUEUE):  # case workers list cases in the review queue
        return redirect(url_for("review.queue", **request.args))
    from portal.dialogue.models import EXTERNAL

    subject = current_subject()
    page = services.org_reports(s, subject, status=status, technology=tech, page=page_no, unread_channels=(EXTERNAL,))
    today = today_jst()
    # Every row shown is one the policy allows (the SQL filter mirrors it; this proves it).
    items = [r for r in page.items if services.decide(subject, Action.REPORT_VIEW, r, today=today).allowed]
    return render_template("reports/index.html", page=page, rows=_list_rows(items, today), status=status,
                           technology=tech, statuses=S.status_labels(),
                           technologies=catalogue.filter_options(s, today, _locale()))


@dataclass(frozen=True, slots=True)
class ListRow:
    href: str
    reference: str
    title: str
    technology: str
    destination: str
    status: str
    status_label: str
    deadline: deadlines.Shown | None
    updated: str
    unread: int


def _list_rows(items, today: date) -> list[ListRow]:
    """The list's cells as text, each label translated once per page rather than once per row
    (a list is the page people load most; Jinja calls cost as much as the query)."""
    loc = _locale()
    href = url_template("reports.show", "report_id")
    statuses = S.status_labels()
    draft = _("Draft #%(id)s")
    texts = deadlines.labels()
    rows = []
    for r in items:
        deadline = deadlines.next_deadline(r, today, officer=False, target_days=0)
        rows.append(ListRow(
            href=href(r.id), reference=r.reference or draft % {"id": r.id}, title=r.title,
            technology=r.technology_label(loc), destination=country_name(r.destination_country, loc),
            status=r.status, status_label=statuses.get(r.status, r.status),
            deadline=deadlines.shown(deadline, loc, texts),
            updated=jdate(r.updated_at, loc), unread=r.unread))
    return rows


@bp.route("/reports/new", methods=["POST"])
@guarded(Action.REPORT_CREATE, load=_own_org, event="report.create", back=lambda _o: url_for("reports.index"))
def new(obj: OrgTarget):
    r = services.create_draft(db.session(), subject=current_subject(), actor=current_user, today=today_jst(),
                              ip=client_ip())
    return redirect(url_for("reports.edit", report_id=r.id, step=C.STEPS[0]))


def _step_form(step: str, report: Report, formdata=None):
    form_cls = STEP_FORMS[step]
    form = form_cls(formdata=formdata) if formdata is not None else form_cls(data=_form_data(step, report))
    loc = _locale()
    if step == "technology":
        # Only what the policy lets this person write the draft under (services.writable_choices).
        offer = services.writable_choices(db.session(), report, subject=current_subject(), today=today_jst())
        form.technology.choices = [("", _("Choose…"))] + [(t.code, f"{t.code} {t.name(loc)}") for t in offer.technologies]
        form.classification.choices = [(lv, LEVEL_LABELS[Level(lv)]) for lv in offer.classifications]
        form.offer = offer
    if step == "counterparty":
        form.counterparty_country.choices = [("", _("Choose…"))] + countries(loc)
    if step == "transfer":
        form.destination_country.choices = [("", _("Choose…"))] + destination_countries(loc)
        form.currency.choices = [("", _("Choose…"))] + currencies(loc)
    return form


def _form_data(step: str, report: Report) -> dict:
    data = report.draft_data
    out = {}
    for name in C.STEP_FIELDS[step]:
        v = data.get(name)
        if name in ("contract_date", "transfer_date"):
            v = C.parse_date(v)
        out[name] = v
    return out


@bp.route("/reports/<int:report_id>/edit/<step>", methods=["GET", "POST"])
@guarded(Action.REPORT_EDIT, load=_load, target=Report.working_copy_labels, event="report.draft.save")
def edit(obj: Report):
    step = request.view_args["step"]
    if step not in C.STEPS:
        abort(404)
    if obj.status not in (S.DRAFT, S.RETURNED):
        flash(_("This report has been submitted and can no longer be changed."), "error")
        return redirect(url_for("reports.show", report_id=obj.id))
    form = _step_form(step, obj, request.form if request.method == "POST" else None)
    findings = C.Findings()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            findings = services.save_step(db.session(), obj, step, to_values(step, form), subject=current_subject(),
                                          actor=current_user, today=today_jst(), ip=client_ip())
            if not findings.errors:
                if request.form.get("save_only"):
                    flash(_("Your draft has been saved."), "success")
                    return redirect(url_for("reports.index"))
                nxt = flow.after(step)
                if request.args.get("back") == "check" or nxt is None:
                    return redirect(url_for("reports.check", report_id=obj.id))
                return redirect(flow.step_url(obj.id, nxt))
            discard()
            for name, message in findings.errors.items():
                if hasattr(form, name):
                    getattr(form, name).errors = list(getattr(form, name).errors) + [message]
        status = 400
    elif step == "transfer":
        findings = services.validate_step(db.session(), step, _form_data_raw(obj, step), today=today_jst(),
                                          draft=obj.draft_data)
        findings.errors = {}
    if step == "transfer" and ("destination_country" in findings.warnings or form.group_a_confirmed.errors):
        # Shown only for a Group A destination, and then the service requires it: say 必須, not 任意.
        form.group_a_confirmed.flags.required = True
    return render_template("reports/step.html", report=obj, form=form, step=step, steps=C.STEPS,
                           stops=flow.stops(obj.id), titles=C.STEP_TITLES, warnings=findings.warnings), status


def _form_data_raw(report: Report, step: str) -> dict:
    data = report.draft_data
    return {k: data.get(k) for k in C.STEP_FIELDS[step]}


@bp.route("/reports/<int:report_id>/check", methods=["GET", "POST"])
@guarded({"GET": Action.REPORT_EDIT, "POST": Action.REPORT_SUBMIT}, load=_load, target=Report.working_copy_labels)
def check(obj: Report):
    s = db.session()
    if obj.status not in (S.DRAFT, S.RETURNED):
        if obj.status == S.SUBMITTED and obj.reference:
            # A second click on 送信: the first one went through.
            return redirect(url_for("reports.done", report_id=obj.id))
        return redirect(url_for("reports.show", report_id=obj.id))
    form = SubmitForm()
    today = today_jst()
    findings = services.check_for_submission(s, obj, today)
    status = 200
    page_error = None
    if form.validate_on_submit():
        name = "resubmit" if obj.status == S.RETURNED else "submit"
        try:
            services.transition(s, obj, name, subject=current_subject(), actor=current_user, today=today,
                                ip=client_ip())
            return redirect(url_for("reports.done", report_id=obj.id))
        except services.Refused:
            raise
        except ServiceError as e:
            failed(e, f"report.{name}", obj)
            page_error = e.message
            status = 400
    elif request.method == "POST":
        status = 400
    data = obj.draft_data
    from portal.attachments import services as attachments

    files = attachments.list_for_report(s, obj, subject=current_subject(), today=today)
    return render_template("reports/check.html", report=obj, data=data, shown=_display(data), form=form,
                           findings=findings, titles=C.STEP_TITLES, steps=C.STEPS, fields=C.STEP_FIELDS,
                           stops=flow.stops(obj.id), files=files, page_error=page_error), status


@bp.route("/reports/<int:report_id>/done")
@guarded(Action.REPORT_VIEW, load=_load)
def done(obj: Report):
    if not obj.reference:
        return redirect(url_for("reports.show", report_id=obj.id))
    return render_template("reports/done.html", report=obj)


@bp.route("/reports/<int:report_id>")
@guarded(Action.REPORT_VIEW, load=_load)
def show(obj: Report):
    from portal.dialogue import forms as dialogue_forms, services as dialogue
    from portal.review import services as review
    from portal.reports.clock import clocks

    s = db.session()
    today = today_jst()
    subject = current_subject()
    channels = dialogue.readable_threads(s, obj, subject=subject, user_id=current_user.id, today=today)
    is_worker = services.decide(subject, Action.REPORT_REVIEW, obj, today=today).allowed
    from portal.informs import services as informs_service

    informs = informs_service.readable(s, obj, subject=subject, today=today)
    audit("report.view", target_type="report", target_id=obj.id, case_ref=obj.reference, org_id=obj.organisation_id)
    vs = services.versions(s, obj)
    latest = vs[-1].data if vs else obj.draft_data
    from portal.review.forms import AssignForm, CloseForm, ReturnForm

    kept = case_forms.kept_forms()  # a form refused for what it holds, shown again with its errors
    # Only the forms the page shows are built (under the template's own conditions), and any
    # refused one: the error summary at the top links to its fields.
    workers = review.case_workers(s, obj, today) if is_worker and services.decide(
        subject, Action.REPORT_ASSIGN, obj, today=today).allowed else []
    reviewing = is_worker and obj.status == S.UNDER_REVIEW
    can_withdraw = obj.status in S.OPEN_STATUSES and can(Action.REPORT_WITHDRAW, obj)

    return render_template("reports/show.html", report=obj, versions=vs, data=latest, shown=_display(latest, known=obj.technology),
                           channels=_message_rows(channels), is_worker=is_worker, informs=informs, inform_forms=_inform_forms(obj, informs, kept),
                           can_draft_inform=services.decide(subject, Action.INFORM_DRAFT, obj, today=today).allowed,
                           clocks=clocks(obj, today, settings().review_target_days),
                           review_target_days=settings().review_target_days,
                           workers=workers,
                           assign_form=_unique_ids(kept.get("assign_form") or AssignForm(formdata=None), "assign")
                           if workers or "assign_form" in kept else None,
                           return_form=_unique_ids(kept.get("return_form") or ReturnForm(formdata=None), "return")
                           if reviewing or "return_form" in kept else None,
                           close_form=_unique_ids(kept.get("close_form") or CloseForm(formdata=None), "close")
                           if reviewing or "close_form" in kept else None,
                           case_error_forms=list(kept.values()),
                           empty=EmptyForm() if is_worker and obj.status == S.SUBMITTED else None,
                           levels=[(l.value, LEVEL_LABELS[l]) for l in Level],
                           message_forms=dialogue_forms.for_case(obj, channels, subject=subject, today=today,
                                                                 is_worker=is_worker,
                                                                 rfi_days=settings().rfi_default_days),
                           assignee=s.get(type(current_user._get_current_object()), obj.assignee_id) if obj.assignee_id else None,
                           today=today,
                           history=services.history(s, obj), fields=C.STEP_FIELDS, titles=C.STEP_TITLES,
                           steps=C.STEPS, deadline=deadlines.shown(deadlines.next_deadline(
                               obj, today, officer=is_worker, target_days=settings().review_target_days), _locale()),
                           withdraw_form=_unique_ids(kept.get("withdraw_form") or WithdrawForm(formdata=None), "withdraw")
                           if can_withdraw or "withdraw_form" in kept else None,
                           statuses=S.STATUS_LABELS,
                           can_edit=obj.status in (S.DRAFT, S.RETURNED) and can(Action.REPORT_EDIT, obj),
                           resume_url=flow.resume_url(obj.id, obj.draft_data),
                           can_withdraw=can_withdraw,
                           can_delete=drafts.deletable(obj) and can(Action.REPORT_DELETE, obj))


@dataclass(frozen=True, slots=True)
class MessageRow:
    """A message as the thread shows it, its metadata put into words once in Python: the
    template would otherwise follow four objects and call three filters for each message."""

    id: int
    company: bool
    author: str
    organisation: Markup
    created: str
    level: str
    is_request: bool
    due: str
    reply_to_id: int | None
    body: str
    files: list


def _message_rows(channels) -> list[tuple[str, list[MessageRow]]]:
    loc = _locale()
    levels = {lv.value: lv.label for lv in Level}
    return [(channel, [MessageRow(
        id=m.id, company=m.author.role_enum.is_company, author=m.author.name,
        organisation=paren(m.author.organisation.name), created=jdate(m.created_at, loc),
        level=levels.get(m.classification, m.classification), is_request=m.is_request,
        due=jdate(m.due_date, loc), reply_to_id=m.reply_to_id, body=m.body, files=m.files) for m in messages])
        for channel, messages in channels]


def _inform_forms(report: Report, informs, kept: dict) -> dict:
    """Forms for the inform section; a draft's edit form only for its drafter, who can read
    its rationale (the form carries it). Each form has ids of its own: the page shows several
    (the reject, return and withdraw comments), and a label must point at its own field. A
    form refused for what it held comes back from ``kept`` with the typed text and its errors."""
    from portal.informs import services as informs_service
    from portal.informs.forms import AckForm, DecisionForm, InformForm, LicenceForm, RejectForm, RevokeForm

    subject, today = current_subject(), today_jst()

    def offered(form, inform=None):
        # Only the classifications this person may give the rationale; the default is the
        # case's level (the rationale is about this case, never 公開 by accident) or the
        # highest offered below it.
        form.rationale_classification.choices = informs_service.rationale_choices(
            report, inform, subject=subject, today=today)
        values = [v for v, _label in form.rationale_classification.choices]
        if form.rationale_classification.data not in values and values:
            below = [v for v in values if Level(v) <= Level(report.classification)]
            form.rationale_classification.data = (below or values)[-1]
        return form

    edit = {}
    for v in informs:
        if v.inform.status in ("draft", "rejected") and v.rationale is not None \
                and v.inform.drafted_by_id == current_user.id:
            form = kept.get(f"inform_edit_{v.inform.id}") or InformForm(obj=v.inform, formdata=None)
            edit[v.inform.id] = _unique_ids(offered(form, v.inform), f"inform-{v.inform.id}-edit")
    forms = _FormsOnDemand({
        "draft": lambda: _unique_ids(offered(kept.get("inform_draft") or InformForm(formdata=None, data={
            "rationale_classification": report.classification})), "new-inform"),
        "decision": DecisionForm,
        "reject": lambda: _unique_ids(kept.get("inform_reject") or RejectForm(formdata=None), "reject"),
        "ack": lambda: _unique_ids(kept.get("inform_ack") or AckForm(formdata=None), "ack"),
        "licence": lambda: _unique_ids(kept.get("inform_licence") or LicenceForm(formdata=None), "licence"),
        "revoke": lambda: _unique_ids(kept.get("inform_revoke") or RevokeForm(formdata=None), "revoke"),
    }, edit=edit)
    for name in ("draft", "reject", "ack", "licence", "revoke"):
        if f"inform_{name}" in kept:
            # Now: the error summary at the top of the page links to its fields' ids.
            forms[name]
    return forms


class _FormsOnDemand(dict):
    """Forms built the first time the template asks for one: the inform section shows only
    the forms its informs' states call for, and building a form costs about as much as
    drawing it."""

    def __init__(self, builders: dict, **built) -> None:
        super().__init__(**built)
        self._builders = builders

    def __missing__(self, name: str):
        if name not in self._builders:
            raise KeyError(name)
        form = self[name] = self._builders[name]()
        return form


def _unique_ids(form, prefix: str):
    """Give a form's fields page-unique ids (the field names, which the server reads, stay)."""
    for f in form:
        if f.type != "CSRFTokenField":
            f.id = f"{prefix}-{f.name}"
            f.label.field_id = f.id
    return form


@bp.route("/reports/<int:report_id>/versions/<int:number>")
@guarded(Action.REPORT_VIEW, load=_load_version)
def show_version(obj: ReportVersion):
    v, number = obj, obj.number
    obj = v.report
    audit("report.view", target_type="report", target_id=obj.id, case_ref=obj.reference, org_id=obj.organisation_id,
          details={"version": number})
    prev = services.version(db.session(), obj, number - 1) if number > 1 else None
    if prev is not None and not services.decide(current_subject(), Action.REPORT_VIEW, prev, today=today_jst()).allowed:
        prev = None  # an earlier version under labels the reader does not hold: no comparison
    changed = C.changed_fields(prev.data, v.data) if prev else []
    return render_template("reports/version.html", report=obj, v=v, data=v.data, shown=_display(v.data, known=v.technology),
                           prev=prev, prev_shown=_display(prev.data, known=prev.technology) if prev else None, changed=changed,
                           fields=C.STEP_FIELDS, titles=C.STEP_TITLES, steps=C.STEPS)


@bp.route("/reports/<int:report_id>/receipt")
@guarded(Action.REPORT_VIEW, load=_load)
def receipt(obj: Report):
    if not obj.reference:
        abort(404)
    vs = services.versions(db.session(), obj)
    v = vs[-1]
    audit("report.view", target_type="report", target_id=obj.id, case_ref=obj.reference, org_id=obj.organisation_id,
          details={"version": v.number, "page": "receipt"})
    return render_template("reports/receipt.html", report=obj, v=v, data=v.data, shown=_display(v.data, known=v.technology))


@bp.route("/reports/<int:report_id>/withdraw", methods=["POST"])
@guarded(Action.REPORT_WITHDRAW, load=_load, event="report.withdraw", back=_case)
def withdraw(obj: Report):
    form = WithdrawForm()
    if not form.validate_on_submit():
        return case_forms.show_again(obj, "report.withdraw", ServiceError(
            _("Enter the reason for withdrawing the report."), field="comment", reason="comment_missing"),
            withdraw_form=form)
    services.transition(db.session(), obj, "withdraw", subject=current_subject(), actor=current_user,
                        today=today_jst(), ip=client_ip(), comment=form.comment.data)
    flash(_("The report has been withdrawn."), "success")
    return redirect(url_for("reports.show", report_id=obj.id))


@bp.route("/reports/<int:report_id>/delete", methods=["GET", "POST"])
@guarded(Action.REPORT_DELETE, load=_load, event="report.delete", back=_case)
def delete(obj: Report):
    """A confirmation page, then the deletion (GOV.UK: never delete on one click)."""
    from portal.attachments import services as attachments
    from portal.attachments.blobstore import DatabaseBlobStore

    s = db.session()
    form = EmptyForm()
    if request.method == "POST" and form.validate_on_submit() and request.form.get("confirm") == "delete":
        store = attachments.store_for(settings(), db.session)
        keys = drafts.delete_draft(s, store, obj, subject=current_subject(), actor=current_user, today=today_jst(),
                                   ip=client_ip())
        if not isinstance(store, DatabaseBlobStore):
            after_this_request_commits(lambda: [store.delete(k) for k in keys])
        flash(_("The draft has been deleted."), "success")
        return redirect(url_for("reports.index"))
    files = attachments.list_for_report(s, obj, subject=current_subject(), today=today_jst())
    return render_template("reports/delete.html", report=obj, form=form, files=files,
                           deletable=drafts.deletable(obj)), 400 if request.method == "POST" else 200
