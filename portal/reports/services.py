"""Prior reports: drafts, the scheme's validation, the state machine, references and versions.
Views parse and render; every rule about a report is here."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from datetime import date, timedelta

from sqlalchemy import Row, and_, bindparam, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, lazyload

from portal.access.levels import Level
from portal.access.policy import Action, Subject, compartment_set, compartment_text, decide
from portal.attachments.models import Attachment
from portal.audit.trail import record
from portal.auth.models import User
from portal.calendar import business_days_between, window
from portal.catalogue.models import Technology
from portal.core.i18n import gettext as _
from portal.core.service import Refused, ServiceError
from portal.core.templating import jdate
from portal.db import utcnow
from portal.reports import content as C
from portal.reports import listing
from portal.reports import states as S
from portal.reports.models import GroupACountry, ReferenceCounter, Report, ReportEvent, ReportTally, ReportVersion
from portal.reports.reference_data import HOME_COUNTRY, country_codes, currency_codes

MAX_TEXT = 10000


__all__ = ["Refused", "ServiceError"]  # Refused: the policy said no (portal.core.service)


def _ask(subject: Subject, action: Action, report: Report, today: date) -> None:
    d = decide(subject, action, report, today=today)
    if not d.allowed:
        raise Refused(_("You are not allowed to do this."), reason=d.reason, conceal=d.conceal)


# ------------------------------------------------------------------ catalogue and Group A

def technologies_in_force(session: Session, on: date) -> list[Technology]:
    return list(session.execute(
        select(Technology).where(Technology.effective_from <= on,
                                 or_(Technology.effective_until.is_(None), Technology.effective_until >= on))
        .order_by(Technology.code)).scalars())


def technology_by_code(session: Session, code: str | None) -> Technology | None:
    if not code:
        return None
    return session.execute(select(Technology).where(Technology.code == code)).scalar_one_or_none()


def is_group_a(session: Session, country: str | None, on: date) -> bool:
    if not country:
        return False
    return session.execute(
        select(GroupACountry.id).where(GroupACountry.country == country, GroupACountry.listed_from <= on,
                                       or_(GroupACountry.listed_until.is_(None), GroupACountry.listed_until >= on))
        .limit(1)).first() is not None


# ------------------------------------------------------------------ drafts

def create_draft(session: Session, *, subject: Subject, actor: User, today: date, ip: str | None) -> Report:
    from portal.access.policy import OrgTarget

    d = decide(subject, Action.REPORT_CREATE, OrgTarget(actor.organisation_id), today=today)
    if not d.allowed:
        raise Refused(_("You are not allowed to do this."), reason=d.reason, conceal=d.conceal)
    r = Report(organisation_id=actor.organisation_id, created_by_id=actor.id, status=S.DRAFT,
               classification=_first_classification(subject, actor.organisation_id, today),
               draft=json.dumps({"contact_name": actor.name, "contact_email": actor.email}, ensure_ascii=False))
    session.add(r)
    session.flush()
    _history(session, r, actor, "create", S.DRAFT, S.DRAFT, None)
    record(session, "report.create", actor=actor, source_ip=ip, target_type="report", target_id=r.id,
           org_id=r.organisation_id)
    return r


def _first_classification(subject: Subject, org_id: int, today: date) -> str:
    """A new draft's level before the company chooses one: restricted, or public for someone
    cleared below it (a draft above its author's clearance would vanish from their list)."""
    from portal.access.policy import Labels

    for level in ("restricted", "public"):
        labels = Labels(org_id=org_id, classification=level, compartments=frozenset(), draft=True)
        if decide(subject, Action.REPORT_EDIT, labels, today=today).allowed:
            return level
    return "restricted"


def validate_step(session: Session, step: str, values: dict, *, today: date, draft: dict) -> C.Findings:
    """The scheme's rules for one step's values (already parsed by the form)."""
    f = C.Findings()
    if step == "technology":
        tech = technology_by_code(session, values.get("technology"))
        if tech is None or not tech.in_force(today):
            f.errors["technology"] = _("Choose a designated technology from the list.")
        if values.get("transfer_form") not in C.TRANSFER_FORMS:
            f.errors["transfer_form"] = _("Choose the form of transfer from the list.")
        if values.get("classification") not in C.FILER_CLASSIFICATIONS:
            f.errors["classification"] = _("Choose a classification from the list.")
    elif step == "counterparty":
        if values.get("counterparty_country") not in country_codes():
            f.errors["counterparty_country"] = _("Choose a country from the list.")
        rel = values.get("counterparty_relation")
        if rel not in C.RELATIONS:
            f.errors["counterparty_relation"] = _("Choose the relation from the list.")
        share = values.get("shareholding")
        if rel in C.RELATIONS_WITH_SHAREHOLDING and share is None:
            f.errors["shareholding"] = _("Enter your shareholding in the subsidiary or joint venture, from 0 to 100.")
    elif step == "transfer":
        if values.get("destination_country") not in country_codes():
            f.errors["destination_country"] = _("Choose a country from the list.")
        elif values.get("destination_country") == HOME_COUNTRY:
            f.errors["destination_country"] = _("Japan cannot be the destination: a prior report is about technology "
                                                "going abroad. Choose the country where it will be used.")
        if values.get("currency") not in currency_codes():
            f.errors["currency"] = _("Choose a currency from the list.")
        contract, transfer = C.parse_date(values.get("contract_date")), C.parse_date(values.get("transfer_date"))
        low, high = window(today, *C.DATE_WINDOW_YEARS)
        for name, value in (("contract_date", contract), ("transfer_date", transfer)):
            if value is not None and not low <= value <= high:
                f.errors[name] = _("Enter a date from %(low)s to %(high)s.", low=jdate(low), high=jdate(high))
        in_window = "contract_date" not in f.errors and "transfer_date" not in f.errors
        if in_window and contract and transfer and transfer < contract:
            f.errors["transfer_date"] = _("The transfer cannot be planned before the contract date.")
        if transfer and transfer < today + timedelta(days=C.TARGET_DAYS_BEFORE_TRANSFER) and "transfer_date" not in f.errors:
            f.warnings["transfer_date"] = _(
                "The transfer is planned less than %(n)d days from today. Reports are due in principle %(n)d days before the transfer; you can still submit.",
                n=C.TARGET_DAYS_BEFORE_TRANSFER)
        dest = values.get("destination_country")
        if "destination_country" not in f.errors and is_group_a(session, dest, transfer or today):
            f.warnings["destination_country"] = _(
                "This destination is a Group A country (Export Trade Control Order, Appended Table 3): transfers there are outside the scheme and need no prior report. Tick the box below to continue anyway.")
            if not values.get("group_a_confirmed"):
                f.errors["group_a_confirmed"] = _("Confirm that you want to report a transfer to a Group A country, or change the destination.")
    elif step == "measures":
        bad = [m for m in values.get("measures") or [] if m not in C.MEASURES]
        if bad or not values.get("measures"):
            f.errors["measures"] = _("Tick at least one management measure from the list.")
    for k, v in values.items():
        if isinstance(v, str) and len(v) > MAX_TEXT:
            f.errors[k] = _("Enter at most %(n)d characters.", n=MAX_TEXT)
    return f


def save_step(session: Session, report: Report, step: str, values: dict, *, subject: Subject, actor: User,
              today: date, ip: str | None) -> C.Findings:
    """Validate and save one step into the draft. Nothing is saved when there are errors."""
    if step not in C.STEPS:
        raise ServiceError(_("That page does not exist."), reason="unknown_step")
    _ask(subject, Action.REPORT_EDIT, report, today)
    if report.status not in (S.DRAFT, S.RETURNED):
        raise ServiceError(_("This report has been submitted and can no longer be changed."), reason="not_editable")
    data = report.draft_data
    findings = validate_step(session, step, values, today=today, draft=data)
    if findings.errors:
        return findings
    if step == "technology":
        _check_working_labels(session, report, values, subject=subject, today=today, findings=findings)
        if findings.errors:
            return findings
    for name in C.STEP_FIELDS[step]:
        if name in values:
            data[name] = values[name]
    if step == "counterparty" and values.get("counterparty_relation") not in C.RELATIONS_WITH_SHAREHOLDING:
        data["shareholding"] = None
    _apply_labels(session, report, data)
    report.draft = json.dumps(data, ensure_ascii=False, sort_keys=True)
    if not decide(subject, Action.REPORT_EDIT, report.working_copy_labels(), today=today).allowed:
        # Whatever the step, a save never leaves the author unable to open their own report.
        raise ServiceError(_("This change would take the report out of your reach. Nothing was saved."),
                           reason="locks_out_author")
    report.updated_at = utcnow()
    record(session, "report.draft.save", actor=actor, source_ip=ip, target_type="report", target_id=report.id,
           org_id=report.organisation_id, case_ref=report.reference, details={"step": step})
    return findings


def labels_if(report: Report, technology: str | None, classification: str | None):
    """The labels the working copy would carry with this technology and classification (what
    ``Report.working_copy_labels`` reads once they are saved): a draft's are its own choices; a
    returned report keeps every earlier version's compartments and at least the case's level."""
    from dataclasses import replace

    labels = report.working_copy_labels()
    level = Level.parse(classification or "") or Level(report.classification)
    if report.version_count:
        level = max(level, Level(report.classification))
        compartments = report.case_compartments() | ({technology} if technology else frozenset())
    else:
        compartments = frozenset({technology}) if technology else frozenset()
    return replace(labels, classification=level.value, compartments=compartments)


@dataclass(frozen=True)
class Withheld:
    """Why choices are not offered: the policy's reason, and the choices it covers."""

    reason: str
    choices: tuple[str, ...]


@dataclass(frozen=True)
class Choices:
    """What the technology step may offer this person: only what the policy lets them write."""

    technologies: list[Technology]
    technologies_withheld: int
    classifications: list[str]
    classifications_withheld: list[Withheld]


def writable_choices(session: Session, report: Report, *, subject: Subject, today: date) -> Choices:
    """Every technology and classification offered is one the policy allows this person to
    write the working copy under, so a choice can never lock them out of their own draft."""
    data = report.draft_data
    techs = technologies_in_force(session, today)
    lowest = C.FILER_CLASSIFICATIONS[0]
    ok = [t for t in techs
          if decide(subject, Action.REPORT_EDIT, labels_if(report, t.code, lowest), today=today).allowed]
    chosen_tech = data.get("technology") if data.get("technology") in {t.code for t in ok} else None
    levels: list[str] = []
    withheld: dict[str, list[str]] = {}
    for level in C.FILER_CLASSIFICATIONS:
        d = decide(subject, Action.REPORT_EDIT, labels_if(report, chosen_tech, level), today=today)
        if d.allowed:
            levels.append(level)
        else:
            withheld.setdefault(d.reason, []).append(level)
    return Choices(ok, len(techs) - len(ok), levels, [Withheld(r, tuple(c)) for r, c in withheld.items()])


def _check_working_labels(session: Session, report: Report, values: dict, *, subject: Subject, today: date,
                          findings: C.Findings) -> None:
    """The technology and classification chosen must be ones this person may write the working
    copy under (the page offers only those; this holds for a hand-made request too): otherwise
    the report would vanish from the person writing it. Said beside the field, the typed
    values kept, never a bare 403."""
    tech = technology_by_code(session, values.get("technology"))
    level = values.get("classification")
    d = decide(subject, Action.REPORT_EDIT, labels_if(report, tech.code if tech else None, level), today=today)
    if d.allowed:
        return
    if d.reason == "compartment":
        findings.errors["technology"] = _("Your clearance does not cover this technology. Choose one you are cleared for, or ask your security officer.")
    elif d.reason == "facility_clearance":
        findings.errors["classification"] = _("Your organisation has no valid facility clearance, so it cannot file at this classification.")
    else:
        findings.errors["classification"] = _("Your clearance does not cover this classification. Choose a lower one, or ask your security officer.")


def _apply_labels(session: Session, report: Report, data: dict) -> None:
    """A draft's labels follow its working copy. Once a version was submitted the case's labels
    move only at the next submission (rule 7): a returned report's edits stay in the working
    copy, so nobody gains or loses access to METI's material before METI sees the new version."""
    if report.version_count:
        return
    tech = technology_by_code(session, data.get("technology"))
    if tech is not None:
        report.technology_id = tech.id
        report.technology = tech
    if data.get("classification") in C.FILER_CLASSIFICATIONS:
        report.classification = data["classification"]
    report.destination_country = data.get("destination_country")
    report.planned_transfer_date = C.parse_date(data.get("transfer_date"))
    report.title = (data.get("counterparty_name") or "")[:200]


def check_for_submission(session: Session, report: Report, today: date) -> C.Findings:
    data = report.draft_data
    f = C.Findings(incomplete_steps=C.missing_steps(data))
    for step in C.STEPS:
        sub = validate_step(session, step, {k: data.get(k) for k in C.STEP_FIELDS[step]}, today=today, draft=data)
        if step not in f.incomplete_steps:
            f.errors.update(sub.errors)
        f.warnings.update(sub.warnings)
    return f


# ------------------------------------------------------------------ transitions

def transition(session: Session, report: Report, name: str, *, subject: Subject, actor: User, today: date,
               ip: str | None, comment: str | None = None, due: date | None = None,
               assignee: User | None = None, base_url: str | None = None) -> Report:
    t = S.TRANSITIONS.get(name)
    if t is None:
        raise ServiceError(_("This action does not exist."), reason="unknown_transition")
    _ask(subject, t.permission, report, today)
    # Re-read the status under a write lock so that two clicks or two people cannot both move it.
    _lock_report(session, report)
    if report.status not in t.sources:
        raise ServiceError(_("This cannot be done while the report is “%(status)s”.",
                             status=S.STATUS_LABELS.get(report.status, report.status)), reason="illegal_transition")
    comment = (comment or "").strip() or None
    if t.needs_comment and not comment:
        raise ServiceError(_("Enter a reason."), field="comment", reason="comment_missing")
    if comment and len(comment) > MAX_TEXT:
        raise ServiceError(_("Enter at most %(n)d characters.", n=MAX_TEXT), field="comment", reason="too_long")
    if t.needs_due_date and (due is None or not today < due <= window(today, 0, 1)[1]):
        raise ServiceError(_("Enter a response due date after today and within a year."), field="due_date",
                           reason="bad_due_date")
    source = report.status
    # The row's effects, in the table's order; nothing here names a transition.
    if t.freezes_version:
        _freeze_version(session, report, actor=actor, today=today)
    if t.starts_clock:
        report.paused_days, report.awaiting_since, report.response_due = 0, None, None
    if t.assigns:
        report.assignee_id = (assignee or actor).id
    if report.awaiting_since is not None and (t.resumes_clock or t.ends_case):
        # The company answered (or the case ended): the paused days are banked.
        report.paused_days += business_days_between(report.awaiting_since, today)
        report.awaiting_since = None
        report.response_due = None
    if t.pauses_clock:
        report.awaiting_since = today
        report.response_due = due if t.needs_due_date else None
    if t.ends_case:
        report.closed_at = utcnow()
    if t.reopens_working_copy:
        report.draft = _latest_content(session, report)
    report.status = t.target
    report.updated_at = utcnow()
    _history(session, report, actor, name, source, t.target, comment)
    record(session, f"report.{name}", actor=actor, source_ip=ip, target_type="report", target_id=report.id,
           org_id=report.organisation_id, case_ref=report.reference,
           details={"from": source, "to": t.target, "version": report.version_count})
    if t.notify is not None:
        _tell(session, report, t.notify, actor=actor, base_url=base_url)
    session.flush()
    return report


def _tell(session: Session, report: Report, n: S.Notify, *, actor: User, base_url: str | None) -> None:
    """The transition's notification (the table's ``notify``): never to the person who acted."""
    from portal.notifications import notify

    if n.to == S.COMPANY:
        users = notify.company_recipients(session, report.organisation_id)
    else:
        users = [session.get(User, report.assignee_id)] if report.assignee_id else []
    users = [u for u in users if u is not None and u.id != actor.id]
    if users:
        notify.notify(session, users, report, n.kind, base_url or _base_url())


def _base_url() -> str:
    from flask import current_app, has_app_context

    return current_app.config["SETTINGS"].base_url if has_app_context() else ""


def _lock_report(session: Session, report: Report) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Report.id).where(Report.id == report.id).with_for_update())
    session.refresh(report, attribute_names=["status", "version_count", "reference", "_draft", "awaiting_since",
                                             "paused_days", "assignee_id"])


def _freeze_version(session: Session, report: Report, *, actor: User, today: date) -> None:
    findings = check_for_submission(session, report, today)
    if findings.incomplete_steps or findings.errors:
        raise ServiceError(_("The report is not complete. Check the pages marked below."), reason="incomplete")
    data = report.draft_data
    tech = technology_by_code(session, data.get("technology"))
    if tech is None or not tech.in_force(today):
        raise ServiceError(_("The designated technology chosen is not in force on the filing date. Choose another."),
                           field="technology", reason="technology_not_in_force")
    classification = data.get("classification") if data.get("classification") in C.FILER_CLASSIFICATIONS \
        else report.classification
    if report.reference is None:
        report.reference = next_reference(session, "TTR", today.year, width=6)
    report.version_count += 1
    report.submitted_at = utcnow()
    # Rule 7: the case now carries every version's labels (the union of compartments, the
    # highest classification), so what was written under the earlier labels keeps its readers.
    earlier = compartment_set(report.compartments) if report.version_count > 1 else frozenset()
    session.info.pop("hidden_cases", None)  # a case may now carry several compartments
    report.compartments = compartment_text(earlier | {tech.code})
    report.classification = max(Level(classification), Level(report.classification)).value \
        if report.version_count > 1 else classification
    report.technology_id = tech.id
    report.technology = tech
    report.destination_country = data.get("destination_country")
    report.planned_transfer_date = C.parse_date(data.get("transfer_date"))
    report.title = (data.get("counterparty_name") or "")[:200]
    session.add(ReportVersion(report_id=report.id, number=report.version_count,
                              content=json.dumps(data, ensure_ascii=False, sort_keys=True),
                              technology_id=tech.id, classification=classification, submitted_by_id=actor.id))
    # The working copy's files are now part of this version: frozen, never deleted, and labelled
    # as the case that now holds them (whatever technology the working copy had on upload).
    session.execute(update(Attachment).where(Attachment.report_id == report.id, Attachment.message_id.is_(None),
                                             Attachment.version.is_(None))
                    .values(version=report.version_count, compartments=report.compartments))


def next_reference(session: Session, kind: str, year: int, *, width: int) -> str:
    """``KIND-YYYY-NNNN…``: gap-free per year. The counter row stays locked until the
    transaction ends, so concurrent submitters queue and a rollback returns the number."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(pg_insert(ReferenceCounter).values(kind=kind, year=year, last=0)
                        .on_conflict_do_nothing(index_elements=["kind", "year"]))
        n = session.execute(
            update(ReferenceCounter).where(ReferenceCounter.kind == kind, ReferenceCounter.year == year)
            .values(last=ReferenceCounter.last + 1).returning(ReferenceCounter.last)).scalar_one()
    else:  # SQLite: the transaction already holds the write lock (BEGIN IMMEDIATE)
        row = session.get(ReferenceCounter, (kind, year))
        if row is None:
            row = ReferenceCounter(kind=kind, year=year, last=0)
            session.add(row)
        row.last += 1
        session.flush()
        n = row.last
    return f"{kind}-{year}-{n:0{width}d}"


def _latest_content(session: Session, report: Report) -> str:
    v = session.execute(select(ReportVersion).where(ReportVersion.report_id == report.id)
                        .order_by(ReportVersion.number.desc()).limit(1)).scalar_one_or_none()
    return v.content if v else report.draft


def _history(session, report, actor, name, source, target, comment) -> None:
    session.add(ReportEvent(report_id=report.id, actor_id=actor.id if actor else None, transition=name,
                            from_status=source, to_status=target, comment=comment))


# ------------------------------------------------------------------ reading

# The case page's statements are built once, the case bound at execution: building one with
# its options and its cache key cost 100-250 us of Python on every request (bench/profile_case.py).
@lru_cache(maxsize=1)
def _versions_statement():
    # A version's case is the one the caller holds (in the session's identity map): no join to
    # it, with its sealed working copy, per version row.
    return (select(ReportVersion).where(ReportVersion.report_id == bindparam("report_id"))
            .options(lazyload(ReportVersion.report)).order_by(ReportVersion.number))


@lru_cache(maxsize=1)
def _history_statement():
    # Core columns of the tables, not the mapped classes: the page reads five columns of each
    # step, and a row is cheaper than an ORM instance in the session.
    events, users = ReportEvent.__table__.c, User.__table__.c
    return (select(events.at, events.transition, events.from_status, events.to_status, events.comment, users.name)
            .select_from(ReportEvent.__table__).outerjoin(User.__table__, users.id == events.actor_id)
            .where(events.report_id == bindparam("report_id")).order_by(events.at, events.id))


def versions(session: Session, report: Report) -> list[ReportVersion]:
    return list(session.execute(_versions_statement(), {"report_id": report.id}).scalars())


def version(session: Session, report: Report, number: int) -> ReportVersion | None:
    return session.execute(select(ReportVersion).where(ReportVersion.report_id == report.id,
                                                       ReportVersion.number == number)
                           .options(lazyload(ReportVersion.report))).scalar_one_or_none()


def history(session: Session, report: Report) -> list[tuple[Row, str | None]]:
    """The case's steps, oldest first: each a row (``at``, ``transition``, ``from_status``,
    ``to_status``, ``comment``) and the name of who took it (None: the system). Read through the
    connection, without the ORM's autoflush: a step added in this session shows once flushed."""
    rows = session.connection().execute(_history_statement(), {"report_id": report.id}).all()
    return [(row, row.name) for row in rows]


@dataclass
class Page:
    items: list[listing.ListedReport]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _technology_ids(session: Session, codes) -> list[int]:
    """Compartment codes to ids once per request, so list queries filter on an indexed column
    instead of a correlated subquery per row."""
    if not codes:
        return []
    return list(session.execute(select(Technology.id).where(Technology.code.in_(sorted(codes)))).scalars())


def _compartment_ids(session: Session, subject: Subject) -> list[int]:
    if subject.compartment_ids is not None:
        return sorted(subject.compartment_ids)
    return _technology_ids(session, subject.compartments)


def _readable_levels(subject: Subject, *, facility_rule: bool) -> list[str]:
    level = Level.parse(subject.clearance_level or "")
    if level is None:
        return []
    return [l.value for l in Level
            if l <= level and (not facility_rule or subject.org_facility_valid or l < Level.CONFIDENTIAL)]


# A case carries several compartments only after a company moved a returned report to another
# technology and resubmitted (rule 7: the union over its versions). Such cases are few, so the
# list filters keep their single-technology form on the indexed ``technology_id`` and leave out,
# by id, the multi-compartment cases the reader lacks a compartment of (``vis_hidden``); the
# totals read from the tallies subtract the same cases. A partial index finds them.
MULTI_COMPARTMENT_SQL = "reports.compartments LIKE '% %'"


def hidden_cases(session: Session, subject: Subject) -> list:
    """Multi-compartment cases the subject does not hold every compartment of (read once per
    database session and subject: a page asks for its list and its counts)."""
    cache = session.info.setdefault("hidden_cases", {})
    if subject in cache:
        return cache[subject]
    rows = session.execute(
        select(Report.id, Report.organisation_id, Report.status, Report.technology_id, Report.classification,
               Report.compartments, Technology.code)
        .outerjoin(Technology, Technology.id == Report.technology_id)
        .where(text(MULTI_COMPARTMENT_SQL))).all()
    hidden = cache[subject] = [r for r in rows if not compartment_set(r.compartments) <= subject.compartments]
    return hidden


def _hidden_matching(hidden: list, params: dict, *, company: bool) -> list:
    """The hidden cases the tallies counted for these visibility parameters."""
    levels, techs = set(params["vis_levels"]), set(params["vis_techs"])
    if company:
        return [r for r in hidden if r.organisation_id == params["vis_org"] and r.classification in levels
                and (r.technology_id is None or r.technology_id in techs)]
    return [r for r in hidden if r.status != S.DRAFT and r.classification in levels and r.technology_id in techs]


def visible_to_company(t=Report):
    """The SQL form of the policy for a company user's own reports (rules 2, 4, 5), so that
    the list and its total show only what a click would open. ``t`` is ``Report`` or
    ``ReportTally`` (the same labels, counted). The subject's values are bound at execution
    (``company_params``), so a built statement serves every request."""
    no_technology = t.technology_id.is_(None) if t is Report else t.technology_id == 0
    cond = and_(t.organisation_id == bindparam("vis_org"),
                t.classification.in_(bindparam("vis_levels", expanding=True)),
                or_(no_technology, t.technology_id.in_(bindparam("vis_techs", expanding=True))))
    return and_(cond, Report.id.not_in(bindparam("vis_hidden", expanding=True))) if t is Report else cond


def company_params(session: Session, subject: Subject) -> dict:
    params = {"vis_org": subject.org_id, "vis_levels": _readable_levels(subject, facility_rule=True),
              "vis_techs": _compartment_ids(session, subject)}
    params["hidden"] = _hidden_matching(hidden_cases(session, subject), params, company=True)
    params["vis_hidden"] = [r.id for r in params["hidden"]]
    return params


def visible_to_government(t=Report):
    """The SQL form of the policy's content rules for a government case worker: what
    ``decide(subject, REPORT_VIEW, report)`` allows, so lists never show what a click would
    deny (the views still ask the policy for every row they render). ``t`` as above; the
    values come from ``government_params``."""
    cond = and_(t.status != S.DRAFT,
                t.classification.in_(bindparam("vis_levels", expanding=True)),
                t.technology_id.in_(bindparam("vis_techs", expanding=True)))
    return and_(cond, Report.id.not_in(bindparam("vis_hidden", expanding=True))) if t is Report else cond


def government_params(session: Session, subject: Subject) -> dict:
    """The values ``visible_to_government`` binds; ``hidden`` lists the multi-compartment cases
    the tallies count but the subject may not see (for the totals' correction)."""
    params = {"vis_levels": _readable_levels(subject, facility_rule=False),
              "vis_techs": _compartment_ids(session, subject)}
    params["hidden"] = _hidden_matching(hidden_cases(session, subject), params, company=False)
    params["vis_hidden"] = [r.id for r in params["hidden"]]
    return params


@lru_cache(maxsize=1)
def _government_tally():
    return (select(ReportTally.status, func.sum(ReportTally.n)).where(visible_to_government(ReportTally))
            .group_by(ReportTally.status))


def government_counts(session: Session, subject: Subject) -> dict[str, int]:
    """The cases a government case worker may see, per status, from the tallies: the same
    numbers as a count over ``reports``, read from a few rows."""
    params = government_params(session, subject)
    counts = {status: int(n) for status, n in session.connection().execute(_government_tally(), params).all() if n}
    for r in params["hidden"]:
        counts[r.status] -= 1
    return {status: n for status, n in counts.items() if n}


@lru_cache(maxsize=16)
def _company_list(by_status: bool, by_technology: bool, unread: bool):
    """The company list's total and page statements for one combination of filters."""
    cond, tally = [visible_to_company()], [visible_to_company(ReportTally)]
    if by_status:
        cond.append(Report.status == bindparam("f_status"))
        tally.append(ReportTally.status == bindparam("f_status"))
    if by_technology:
        cond.append(Report.technology_id.in_(bindparam("f_techs", expanding=True)))
        tally.append(ReportTally.technology_id.in_(bindparam("f_techs", expanding=True)))
    total = select(func.coalesce(func.sum(ReportTally.n), 0)).where(and_(*tally))
    rows = listing.statement(and_(*cond), (Report.updated_at.desc(), Report.id.desc()), unread=unread)
    return total, rows


def org_reports(session: Session, subject: Subject, *, status: str | None, technology: str | None, page: int,
                per_page: int = 50, unread_channels: tuple[str, ...] | None = None) -> Page:
    params = company_params(session, subject)
    by_status = status in S.STATUS_LABELS
    if by_status:
        params["f_status"] = status
    if technology:
        params["f_techs"] = _technology_ids(session, [technology])
    if unread_channels:
        params.update(unread_user=subject.user_id, unread_channels=list(unread_channels))
    total_stmt, rows_stmt = _company_list(by_status, bool(technology), bool(unread_channels))
    conn = session.connection()
    total = int(conn.execute(total_stmt, params).scalar_one())
    techs = set(params.get("f_techs", ()))
    total -= sum(1 for r in params["hidden"] if (not by_status or r.status == status)
                 and (not technology or r.technology_id in techs))
    page = max(1, min(page, max(1, -(-total // per_page))))
    items = listing.run(conn, rows_stmt, {**params, "limit": per_page, "offset": (page - 1) * per_page})
    return Page(items, total, page, per_page)


@lru_cache(maxsize=16)
def _company_keyset(by_status: bool, by_technology: bool, after: bool):
    """The company list read by position (the API's cursor) rather than by page number: rows
    after (updated_at, id) in the list's own order, so a page costs the same at any depth."""
    cond = [visible_to_company()]
    if by_status:
        cond.append(Report.status == bindparam("f_status"))
    if by_technology:
        cond.append(Report.technology_id.in_(bindparam("f_techs", expanding=True)))
    if after:
        cond.append(or_(Report.updated_at < bindparam("c_at"),
                        and_(Report.updated_at == bindparam("c_at"), Report.id < bindparam("c_id"))))
    return listing.statement(and_(*cond), (Report.updated_at.desc(), Report.id.desc()))


def org_reports_after(session: Session, subject: Subject, *, status: str | None, technology: str | None,
                      after: tuple | None, limit: int = 50) -> tuple[list[listing.ListedReport], bool]:
    """The same reports as ``org_reports`` in the same order, ``limit`` of them after the
    position ``after`` ((updated_at, id) of the last one read); and whether more follow."""
    params = company_params(session, subject)
    by_status = status in S.STATUS_LABELS
    if by_status:
        params["f_status"] = status
    if technology:
        params["f_techs"] = _technology_ids(session, [technology])
    if after is not None:
        params["c_at"], params["c_id"] = after
    stmt = _company_keyset(by_status, bool(technology), after is not None)
    rows = listing.run(session.connection(), stmt, {**params, "limit": limit + 1, "offset": 0})
    return rows[:limit], len(rows) > limit
