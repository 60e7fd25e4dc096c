"""Issue 14 item 5: the daily job. A run that crashes between notices is finished by the next
invocation, every reminder and overdue notice is sent exactly once, a run whose lease ran out
sends nothing more, a missed day can be caught up, and servers running it at the same time
send each notice once."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from portal.core.timeutil import today_jst
from tests.conftest import IS_PG

REMINDERS, OVERDUE = 3, 2


@pytest.fixture
def world(app, factory):
    """Three cases awaiting an answer due tomorrow (one reminder each to the company's filer)
    and two running cases long past their review target (one notice each to the assignee)."""
    from portal import db
    from portal.catalogue.models import Technology
    from portal.reports.models import Report

    org = factory.org("株式会社日次", facility=True)
    filer = factory.user("filer", org=org, compartments=("T01",))
    reviewer = factory.user("reviewer", compartments=("T01",), level="csi")
    today = today_jst()
    long_ago = datetime.now(timezone.utc) - timedelta(days=120)
    with app.app_context():
        s = db.session()
        t01 = s.execute(sa.select(Technology.id).where(Technology.code == "T01")).scalar_one()
        common = dict(organisation_id=org.id, created_by_id=filer.id, classification="restricted",
                      technology_id=t01, compartments="T01", destination_country="VN", version_count=1)
        rows = [Report(**common, status="awaiting_response", reference=f"TTR-2026-9{i:05d}", submitted_at=long_ago,
                       awaiting_since=today - timedelta(days=3), response_due=today + timedelta(days=1))
                for i in range(REMINDERS)]
        rows += [Report(**common, status="under_review", reference=f"TTR-2026-8{i:05d}", submitted_at=long_ago,
                        assignee_id=reviewer.id) for i in range(OVERDUE)]
        s.add_all(rows)
        s.commit()
        ids = [r.id for r in rows]
    return {"filer": filer, "reviewer": reviewer, "ids": ids, "today": today}


def _sent(app) -> Counter:
    """(user, report, kind) -> how many notices, and the same count of mails."""
    from portal import db
    from portal.notifications.models import Notification
    from portal.mail.models import OutboxMessage

    with app.app_context():
        s = db.session()
        notes = Counter(s.execute(sa.select(Notification.user_id, Notification.report_id, Notification.kind)).all())
        mails = s.execute(sa.select(sa.func.count()).select_from(OutboxMessage)).scalar_one()
        s.rollback()
    assert mails == sum(notes.values())
    return notes


def _expected(world) -> Counter:
    ids = world["ids"]
    return Counter({**{(world["filer"].id, rid, "reminder"): 1 for rid in ids[:REMINDERS]},
                    **{(world["reviewer"].id, rid, "overdue"): 1 for rid in ids[REMINDERS:]}})


def _run_row(app, day):
    from portal import db
    from portal.review.models import JobItem, JobRun

    with app.app_context():
        s = db.session()
        run = s.execute(sa.select(JobRun).where(JobRun.run_on == day)).scalar_one_or_none()
        items = s.execute(sa.select(sa.func.count()).select_from(JobItem)).scalar_one()
        s.expunge_all()
        s.rollback()
        return run, items


def _run(app, day, **kw):
    from portal import db
    from portal.review.jobs import run_daily

    with app.app_context():
        return run_daily(db.session(), app.config["SETTINGS"], day, **kw)


def _crash_after(monkeypatch, calls: int):
    """The notice sender fails on its call number ``calls + 1`` (a mail server, a bug, a kill)."""
    from portal.notifications import notify as notify_mod

    real = notify_mod.notify
    count = {"n": 0}

    def failing(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise RuntimeError("injected crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(notify_mod, "notify", failing)
    return lambda: monkeypatch.setattr(notify_mod, "notify", real)


def test_a_run_that_crashes_between_notices_is_finished_by_the_next(app, world, monkeypatch):
    from portal.review.jobs import FINISHED, NEW, RESUMED

    today = world["today"]
    restore = _crash_after(monkeypatch, 1)
    with pytest.raises(RuntimeError, match="injected crash"):
        _run(app, today)
    run, items = _run_row(app, today)
    # The day is not marked done, the lease was given back, the one notice sent is recorded.
    assert run.finished_at is None and run.lease_until is None and items == 1
    assert sum(_sent(app).values()) == 1

    restore()
    second = _run(app, today)
    assert second.ran and second.state == RESUMED
    assert (second.reminders, second.overdue) == (REMINDERS - 1, OVERDUE)
    assert _sent(app) == _expected(world)
    run, items = _run_row(app, today)
    assert run.finished_at is not None and items == 0
    assert run.result == f"reminders={REMINDERS} overdue={OVERDUE} attempts=2"

    third = _run(app, today)
    assert not third.ran and third.state == FINISHED
    assert _sent(app) == _expected(world)
    # A fresh day starts afresh.
    tomorrow = _run(app, today + timedelta(days=1), catch_up=False)
    assert tomorrow.ran and tomorrow.state == NEW


def test_a_killed_run_keeps_its_lease_until_it_expires(app, world, monkeypatch):
    """A killed process cannot give its lease back: the day stays its own for the lease's
    length (another server must not start it while it might be alive), then is taken over."""
    from portal import db
    from portal.review.jobs import BUSY, RESUMED
    from portal.review.models import JobRun

    today = world["today"]
    restore = _crash_after(monkeypatch, 2)
    with pytest.raises(RuntimeError):
        _run(app, today)
    restore()
    with app.app_context():  # what a kill leaves: the owner's lease, still running
        db.session().execute(sa.update(JobRun).values(owner="dead-host:1:x",
                                                      lease_until=datetime.now(timezone.utc) + timedelta(minutes=4)))
        db.session().commit()
    busy = _run(app, today)
    assert busy.state == BUSY and not busy.ran and sum(_sent(app).values()) == 2
    with app.app_context():  # five minutes later
        db.session().execute(sa.update(JobRun).values(lease_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
        db.session().commit()
    later = _run(app, today)
    assert later.ran and later.state == RESUMED
    assert _sent(app) == _expected(world)


def test_a_run_that_lost_its_lease_sends_nothing_more(app, world, monkeypatch):
    """A stalls past its lease; B takes the day over (and itself fails after one notice); A
    wakes up and finds the day no longer its own; C finishes. Each notice once."""
    from portal import db
    from portal.review import jobs
    from portal.review.models import JobRun

    today = world["today"]
    settings = app.config["SETTINGS"]
    with app.app_context():
        s = db.session()
        run_a, state = jobs.claim(s, jobs.DAILY, today, "A")
        assert state == jobs.NEW
        s.execute(sa.update(JobRun).values(lease_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
        s.commit()
    restore = _crash_after(monkeypatch, 1)
    with app.app_context():
        with pytest.raises(RuntimeError):
            jobs.run_day(db.session(), settings, today, owner="B")
    restore()
    assert sum(_sent(app).values()) == 1
    with app.app_context():
        out = jobs.Outcome(ran=False)
        with pytest.raises(jobs.LeaseLost):
            jobs._work(db.session(), settings, run_a, "A", out)
        db.session().rollback()
    assert (out.reminders, out.overdue) == (0, 0) and sum(_sent(app).values()) == 1
    with app.app_context():
        c = jobs.run_day(db.session(), settings, today, owner="C")
    assert c.ran and c.state == jobs.RESUMED
    assert _sent(app) == _expected(world)


def test_interrupted_earlier_days_are_finished_and_a_missed_day_caught_up(app, world, monkeypatch):
    from portal.review.jobs import NEW, RESUME_DAYS

    today = world["today"]
    yesterday = today - timedelta(days=1)
    restore = _crash_after(monkeypatch, 1)
    with pytest.raises(RuntimeError):
        _run(app, yesterday, catch_up=False)
    restore()
    # Today's invocation finishes yesterday's run first, then runs today.
    out = _run(app, today)
    assert out.ran and out.state == NEW
    assert [(e.day, e.ran) for e in out.earlier] == [(yesterday, True)]
    assert _run_row(app, yesterday)[0].finished_at is not None
    # A day nobody ran: --date runs it; an interrupted run older than the window is left to --date.
    missed = today - timedelta(days=3)
    assert _run(app, missed, catch_up=False).ran
    old = today - timedelta(days=RESUME_DAYS + 5)
    with pytest.raises(RuntimeError):
        _crash_after(monkeypatch, 0)
        _run(app, old, catch_up=False)
    restore()
    assert _run(app, today).earlier == []
    assert _run(app, old, catch_up=False).ran


@pytest.mark.postgres_only
@pytest.mark.parametrize("crash_first", [False, True])
def test_servers_running_the_job_at_once_send_each_notice_once(app, world, monkeypatch, crash_first):
    from portal import db
    from portal.review.jobs import BUSY, FINISHED, NEW, RESUMED, run_daily

    assert IS_PG
    today = world["today"]
    if crash_first:
        restore = _crash_after(monkeypatch, 2)
        with pytest.raises(RuntimeError):
            _run(app, today)
        restore()
    n = 4
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def server(i: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                results[i] = run_daily(db.session(), app.config["SETTINGS"], today)
            except BaseException as exc:  # noqa: BLE001 - reported below
                results[i] = exc

    threads = [threading.Thread(target=server, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(isinstance(r, BaseException) for r in results), results
    states = Counter(r.state for r in results)
    assert sum(r.ran for r in results) == 1
    assert states[RESUMED if crash_first else NEW] == 1 and states[BUSY] + states[FINISHED] == n - 1
    assert _sent(app) == _expected(world)
    assert sum(r.reminders + r.overdue for r in results) == REMINDERS + OVERDUE - (2 if crash_first else 0)


def test_the_command_refuses_a_future_date_and_runs_a_missed_day_once(app, world):
    """`portal jobs run --date`: a day after today is refused; a missed day run from two
    servers at once is done by one of them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    exe = root / ".venv" / "bin" / "portal"
    if not exe.exists():
        exe = Path(sys.executable).parent / "portal"
    settings = app.config["SETTINGS"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(PORTAL_INSTANCE_PATH=str(settings.instance_path), PORTAL_DATABASE_URL=settings.database_url,
               PORTAL_ENV="production", LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8")
    today = world["today"]
    missed = (today - timedelta(days=1)).isoformat()
    commands = [("--date", (today + timedelta(days=1)).isoformat()), ("--date", missed), ("--date", missed)]
    procs = [subprocess.Popen([str(exe), "jobs", "run", *c], cwd=root, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in commands]
    future, *both = [(p.returncode, *out) for p, out in [(p, p.communicate(timeout=120)) for p in procs]]
    assert future[0] == 2 and "is after today" in future[2]
    assert [rc for rc, _, _ in both] == [0, 0], both
    outs = sorted(out for _, out, _ in both)
    assert sum(f"daily job for {missed}: {REMINDERS} reminders, {OVERDUE} overdue notices" in o for o in outs) == 1
    assert sum("already ran" in o or "running on another server" in o for o in outs) == 1
    assert _sent(app) == _expected(world)
