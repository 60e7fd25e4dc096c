"""The daily job: reminders to companies before a response is due, and to assignees when a
case is past its review target.

Safe to start from cron on every server at once, and safe to kill at any moment:

- A day's ``job_runs`` row is a lease: the server that inserts it (or takes it over) holds it
  for ``LEASE``, renewing it with every notice; the others see a live lease and stop. Only
  ``finished_at`` marks the day done.
- Each notice is committed together with a ``job_items`` row naming it (``reminder:<report>``,
  ``overdue:<report>``), in a transaction that first renews the lease with the owner in its
  WHERE clause. So a run that crashed after some notices is finished by the next invocation,
  which skips what was sent; and a run whose lease ran out while it stalled finds the row no
  longer its own and stops before sending anything more (the unique key would refuse a
  duplicate anyway).
- A run that fails gives its lease back at once; a killed one leaves it to expire.
- Without ``--date`` an invocation first finishes the interrupted runs of the last
  ``RESUME_DAYS`` days, then runs today. ``--date`` runs (or finishes) one missed day.
"""
from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Iterator, Sequence, cast

from sqlalchemy import CursorResult, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.audit.trail import record
from portal.auth.models import User
from portal.config import Settings
from portal.db import utcnow
from portal.notifications import notify
from portal.reports import states as S
from portal.reports.models import Report
from portal.reports import clock
from portal.review.models import JobItem, JobRun

DAILY = "daily"
# Longer than any one notice takes (a few milliseconds) by far; a killed run's day is free
# again this long after its last notice.
LEASE = timedelta(minutes=5)
# How far back an invocation without --date looks for interrupted runs to finish.
RESUME_DAYS = 7

NEW, RESUMED, FINISHED, BUSY = "new", "resumed", "finished", "busy"


class LeaseLost(Exception):
    """Another invocation took the day over (this one stalled past its lease)."""


@dataclass
class Outcome:
    ran: bool                    # this call finished the day's work
    reminders: int = 0           # notices this call sent
    overdue: int = 0
    state: str = NEW             # how the day was found: new, resumed, finished (already done), busy
    day: date | None = None
    earlier: list["Outcome"] = field(default_factory=list)  # interrupted earlier days this call finished


def owner_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim(session: Session, job: str, day: date, owner: str) -> tuple[JobRun | None, str]:
    """Take the day's run: insert its row, or take over one that is unfinished and whose lease
    has run out. Returns the row (None when another holds it or it is done) and how it was found."""
    now = utcnow()
    session.add(JobRun(job=job, run_on=day, started_at=now, owner=owner, lease_until=now + LEASE))
    try:
        session.commit()
        state = NEW
    except IntegrityError:
        session.rollback()
        took = cast(CursorResult, session.execute(
            update(JobRun)
            .where(JobRun.job == job, JobRun.run_on == day, JobRun.finished_at.is_(None),
                   or_(JobRun.lease_until.is_(None), JobRun.lease_until < now))
            .values(owner=owner, lease_until=now + LEASE, attempts=JobRun.attempts + 1)
            .execution_options(synchronize_session=False)))
        session.commit()
        state = RESUMED if took.rowcount == 1 else ""
    run = session.execute(select(JobRun).where(JobRun.job == job, JobRun.run_on == day)
                          .execution_options(populate_existing=True)).scalar_one()
    session.commit()
    if state:
        return run, state
    return None, FINISHED if run.finished_at is not None else BUSY


def _hold(session: Session, run_id: int, owner: str, **values) -> None:
    """Renew the lease (and set ``values``) if the run is still ours and unfinished; on
    PostgreSQL the row stays locked until this transaction ends, so no one takes it over
    in between."""
    got = cast(CursorResult, session.execute(
        update(JobRun).where(JobRun.id == run_id, JobRun.owner == owner, JobRun.finished_at.is_(None))
        .values(lease_until=utcnow() + LEASE, **values).execution_options(synchronize_session=False)))
    if got.rowcount != 1:
        raise LeaseLost()


def _release(session: Session, run_id: int, owner: str) -> None:
    """Give the lease back after a failure, so the next invocation need not wait for it."""
    try:
        session.rollback()
        session.execute(update(JobRun).where(JobRun.id == run_id, JobRun.owner == owner,
                                             JobRun.finished_at.is_(None)).values(lease_until=None))
        session.commit()
    except Exception:  # noqa: BLE001 - the database may be what failed; the lease then expires
        session.rollback()


def _items(session: Session, settings: Settings, day: date) -> Iterator[tuple[str, str, Report]]:
    """The day's notices: the key that makes each once-only, its kind and its case."""
    awaiting = session.execute(select(Report).where(Report.status == S.AWAITING, Report.response_due.is_not(None))
                               .order_by(Report.id)).scalars().all()
    for r in awaiting:
        if clock.reminder_due(r, day, settings.reminder_days):
            yield f"reminder:{r.id}", "reminder", r
    # Running cases with an assignee that the one clock calls overdue (its SQL form).
    late = session.execute(select(Report).where(Report.status.in_(S.CLOCK_RUNNING), Report.assignee_id.is_not(None),
                                                clock.overdue_condition()).order_by(Report.id),
                           clock.overdue_params(session, day, settings.review_target_days)).scalars().all()
    for r in late:
        yield f"overdue:{r.id}", "overdue", r


def _send(session: Session, settings: Settings, kind: str, r: Report) -> int:
    to: Sequence[User | None]
    if kind == "reminder":
        to = notify.company_recipients(session, r.organisation_id)
    else:
        to = [session.get(User, r.assignee_id)]
    return notify.notify(session, to, r, kind, settings.base_url)


def _sent(session: Session, run_id: int, prefix: str) -> int:
    return session.execute(select(func.count()).select_from(JobItem).where(
        JobItem.run_id == run_id, JobItem.key.startswith(prefix))).scalar_one()


def _work(session: Session, settings: Settings, run: JobRun, owner: str, out: Outcome) -> None:
    done = set(session.execute(select(JobItem.key).where(JobItem.run_id == run.id)).scalars())
    session.rollback()
    for key, kind, report in list(_items(session, settings, run.run_on)):
        if key in done:
            continue
        _hold(session, run.id, owner)
        session.add(JobItem(run_id=run.id, key=key))
        try:
            session.flush()
        except IntegrityError:  # sent by a run that held the day before us
            session.rollback()
            continue
        n = _send(session, settings, kind, report)
        session.commit()
        if kind == "reminder":
            out.reminders += n
        else:
            out.overdue += n
    reminders = _sent(session, run.id, "reminder:")
    overdue = _sent(session, run.id, "overdue:")
    result = f"reminders={reminders} overdue={overdue} attempts={run.attempts}"
    _hold(session, run.id, owner, finished_at=utcnow(), result=result)
    # A finished day is never run again: its once-only keys have done their work.
    session.execute(delete(JobItem).where(JobItem.run_id == run.id))
    from portal.audit import checkpoints

    checkpoints.make(session, checkpoints.signing_key(str(settings.audit_key_path)), "daily")
    record(session, "jobs.daily", details={"run_on": run.run_on.isoformat(), "reminders": reminders,
                                           "overdue": overdue, "attempts": run.attempts})
    session.commit()
    out.ran = True


def run_day(session: Session, settings: Settings, day: date, *, owner: str | None = None) -> Outcome:
    """Run (or finish) the daily job for ``day`` unless it is done or another server runs it."""
    owner = owner or owner_id()
    run, state = claim(session, DAILY, day, owner)
    out = Outcome(ran=False, state=state, day=day)
    if run is None:
        return out
    try:
        _work(session, settings, run, owner, out)
    except LeaseLost:
        session.rollback()
        out.state = BUSY
    except BaseException:
        _release(session, run.id, owner)
        raise
    return out


def run_daily(session: Session, settings: Settings, today: date, *, catch_up: bool = True) -> Outcome:
    """Today's run; with ``catch_up``, first the interrupted runs of the last ``RESUME_DAYS``
    days (``portal jobs run``). Without it, that one day only (``portal jobs run --date``)."""
    owner = owner_id()
    earlier: list[Outcome] = []
    if catch_up:
        unfinished = session.execute(select(JobRun.run_on).where(
            JobRun.job == DAILY, JobRun.finished_at.is_(None), JobRun.run_on < today,
            JobRun.run_on >= today - timedelta(days=RESUME_DAYS)).order_by(JobRun.run_on)).scalars().all()
        session.rollback()
        earlier = [o for o in (run_day(session, settings, d, owner=owner) for d in unfinished) if o.ran]
    out = run_day(session, settings, today, owner=owner)
    out.earlier = earlier
    return out
