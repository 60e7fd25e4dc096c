"""The list and report pages cost a fixed number of SQL queries whatever the number of
reports; references stay unique and gap-free under concurrent submitters."""
from __future__ import annotations

import multiprocessing as mp
from contextlib import contextmanager
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import sign_in
from tests.sql_seen import statements_sent
from tests.reports_helpers import fill_all, new_report, submit


@contextmanager
def count_queries(engine):
    """Every statement the block sends, the request's principal read included (tests.sql_seen)."""
    counter = {"n": 0, "statements": []}

    def _seen(statement, _params, _autocommit):
        counter["n"] += 1
        counter["statements"].append(statement)

    with statements_sent(engine, _seen):
        yield counter


def _bulk_reports(app, org_id: int, user_id: int, n: int, start: int, status="submitted"):
    from portal import db
    from portal.catalogue.models import Technology
    from portal.db import utcnow
    from portal.reports.models import Report

    with app.app_context():
        s = db.session()
        t01 = s.execute(sa.select(Technology).where(Technology.code == "T01")).scalar_one()
        for i in range(n):
            s.add(Report(organisation_id=org_id, created_by_id=user_id, status=status,
                         reference=f"TTR-2099-{start + i:06d}", technology_id=t01.id, classification="restricted",
                         destination_country="VN", planned_transfer_date=date.today() + timedelta(days=60),
                         title=f"Counterparty {i}", submitted_at=utcnow(), version_count=1))
        s.commit()


@pytest.mark.parametrize("role", ["filer", "reviewer", "reviewer_unread"])
def test_list_page_queries_do_not_grow_with_the_number_of_reports(app, factory, role, monkeypatch):
    from portal.catalogue import services as catalogue

    # The filter menu's options are kept a minute per process: one that expires between the
    # two counted requests (a cache an earlier test filled) would add its statement to one.
    monkeypatch.setattr(catalogue, "FILTER_TTL", float("inf"))
    org = factory.org(facility=True)
    filer = factory.user("filer", org=org)
    user = filer if role == "filer" else factory.user("reviewer", compartments=("T01",))
    client = app.test_client()
    sign_in(client, user)
    engine = app.extensions["db_engine"]
    path = {"filer": "/reports?page=1", "reviewer": "/review/queue?page=1",
            "reviewer_unread": "/review/queue?unread=1&page=1"}[role]
    # Warm the process's caches (a clearance grant's compartments) before counting.
    assert client.get(path).status_code == 200
    counts = []
    for n, start in ((3, 1), (60, 100)):
        _bulk_reports(app, org.id, filer.id, n, start)
        with count_queries(engine) as c:
            resp = client.get(path)
        assert resp.status_code == 200
        counts.append(c["n"])
    assert counts[0] == counts[1], c["statements"]
    # Session with user, clearance and notifications; the total; the page with its unread counts.
    # The session with its user, the list's total, its page, the multi-compartment cases the
    # reader may not see (rule 7's union, read once per request), and the queue's tallies.
    assert counts[0] <= (4 if role == "filer" else 5), c["statements"]


def test_report_page_queries_are_fixed(app, factory):
    org = factory.org(facility=True)
    filer = factory.user("filer", org=org)
    client = app.test_client()
    sign_in(client, filer)
    engine = app.extensions["db_engine"]
    counts = []
    for extra in (1, 40):
        _bulk_reports(app, org.id, filer.id, extra, 1000 + extra)
        rid = new_report(client)
        fill_all(client, rid)
        submit(client, rid)
        with count_queries(engine) as c:
            assert client.get(f"/reports/{rid}").status_code == 200
        counts.append(c["n"])
    assert counts[0] == counts[1], counts


def _submit_many(url: str, keyring_path: str, report_ids: list[int], user_id: int, barrier) -> list[str]:
    from sqlalchemy.orm import sessionmaker

    from flask import Flask

    from portal.access.subject import subject_for
    from portal.auth.models import User
    from portal.db import make_engine
    from portal.reports import services
    from portal.reports.models import Report

    import portal.models  # noqa: F401  (every mapper, as the app would have)
    from portal.encryption import sealed
    from portal.encryption.opener import keyring_for

    sealed.configure(keyring_for(keyring_path), url)
    engine = make_engine(url)
    Session = sessionmaker(engine, expire_on_commit=False)
    app = Flask("worker")  # gettext needs an app context for messages
    refs = []
    barrier.wait()
    with app.app_context():
        from flask_babel import Babel

        Babel(app)
        for rid in report_ids:
            with Session() as s:
                r = s.get(Report, rid)
                user = s.get(User, user_id)
                subject = subject_for(s, user, date.today())
                services.transition(s, r, "submit", subject=subject, actor=user, today=date.today(), ip=None)
                s.commit()
                refs.append(r.reference)
    engine.dispose()
    return refs


@pytest.mark.postgres_only
def test_parallel_submitters_get_unique_gap_free_references(app, factory, database_url):
    org = factory.org(facility=True)
    filer = factory.user("filer", org=org)
    client = app.test_client()
    sign_in(client, filer)
    ids = []
    for _ in range(2):
        rid = new_report(client)
        fill_all(client, rid)
        ids.append(rid)
    # Copy the completed draft into many more drafts directly.
    from portal import db
    from portal.reports.models import Report

    with app.app_context():
        s = db.session()
        template = s.get(Report, ids[0])
        for _ in range(38):
            r = Report(organisation_id=org.id, created_by_id=filer.id, status="draft", draft=template.draft,
                       technology_id=template.technology_id, classification=template.classification)
            s.add(r)
            s.flush()
            ids.append(r.id)
        s.commit()
    ctx = mp.get_context("spawn")
    workers = 4
    barrier = ctx.Manager().Barrier(workers)
    chunks = [ids[i::workers] for i in range(workers)]
    with ctx.Pool(workers) as pool:
        results = pool.starmap(_submit_many, [(database_url, str(app.config["SETTINGS"].keyring_path), c, filer.id, barrier)
                                              for c in chunks])
    refs = sorted(r for part in results for r in part)
    year = date.today().year
    assert refs == [f"TTR-{year}-{n:06d}" for n in range(1, 41)]


def test_case_page_queries_do_not_grow_with_messages(app, factory):
    from portal import db
    from portal.dialogue.models import Message

    org = factory.org(facility=True)
    filer = factory.user("filer", org=org)
    reviewer = factory.user("reviewer", compartments=("T01",))
    fc = app.test_client()
    sign_in(fc, filer)
    rid = new_report(fc)
    fill_all(fc, rid)
    submit(fc, rid)
    rc = app.test_client()
    sign_in(rc, reviewer)
    engine = app.extensions["db_engine"]
    counts = []
    for n in (2, 40):
        with app.app_context():
            s = db.session()
            for i in range(n):
                s.add(Message(report_id=rid, channel="external" if i % 2 else "internal",
                              author_id=reviewer.id if i % 3 else filer.id if i % 2 else reviewer.id,
                              body=f"message {i}", classification="restricted"))
            s.commit()
        with count_queries(engine) as c:
            assert rc.get(f"/reports/{rid}").status_code == 200
        counts.append(c["n"])
    assert counts[0] == counts[1], counts
    # Both channels' messages, their files and how far the reader had read each in one
    # statement (issue 20: was 16, then 14), and, as new messages were read, the marks moved
    # and the reader's unread case settled once.
    assert counts[0] <= 12, counts
    with count_queries(engine) as c:
        assert rc.get(f"/reports/{rid}").status_code == 200
    # Nothing new read, nothing written: the session, the case, the threads with the read
    # marks, the informs, the versions, the history and the audit record (7 on PostgreSQL).
    assert c["n"] <= 8, ("nothing new read, nothing to settle", c["n"], counts)
