"""The daily job: reminders to companies before a response is due, and to assignees when a
case is past its review target. Safe to start from cron on every server at once: the first
to insert today's ``job_runs`` row does the work, the others see the row and stop."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.audit.trail import record
from portal.auth.models import User
from portal.config import Settings
from portal.db import utcnow
from portal.notifications import notify
from portal.dialogue.models import JobRun
from portal.reports import states as S
from portal.reports.models import Report
from portal.reports import clock

DAILY = "daily"


@dataclass
class Outcome:
    ran: bool
    reminders: int = 0
    overdue: int = 0


def claim(session: Session, job: str, today: date) -> JobRun | None:
    run = JobRun(job=job, run_on=today)
    session.add(run)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return None
    return run


def run_daily(session: Session, settings: Settings, today: date) -> Outcome:
    run = claim(session, DAILY, today)
    if run is None:
        return Outcome(ran=False)
    out = Outcome(ran=True)
    awaiting = session.execute(select(Report).where(Report.status == S.AWAITING,
                                                    Report.response_due.is_not(None))).scalars().all()
    for r in awaiting:
        if clock.reminder_due(r, today, settings.reminder_days):
            out.reminders += notify.notify(session, notify.company_recipients(session, r.organisation_id), r,
                                           "reminder", settings.base_url)
    # Running cases with an assignee that the one clock calls overdue (its SQL form).
    late = session.execute(select(Report).where(Report.status.in_(S.CLOCK_RUNNING), Report.assignee_id.is_not(None),
                                                clock.overdue_condition()).order_by(Report.id),
                           clock.overdue_params(session, today, settings.review_target_days)).scalars().all()
    for r in late:
        out.overdue += notify.notify(session, [session.get(User, r.assignee_id)], r, "overdue", settings.base_url)
    from portal.audit import checkpoints

    checkpoints.make(session, checkpoints.signing_key(str(settings.audit_key_path)), "daily")
    run.finished_at = utcnow()
    run.result = f"reminders={out.reminders} overdue={out.overdue}"
    record(session, "jobs.daily", details={"reminders": out.reminders, "overdue": out.overdue})
    session.commit()
    return out
