"""The report tallies (kept by database triggers) always equal a count over the reports, and
the pages that show totals read them (both databases)."""
from __future__ import annotations

import random

import sqlalchemy as sa

from tests.conftest import sign_in
from tests.reports_helpers import fill_all, new_report, submit

LABELS = ("organisation_id", "status", "technology_id", "classification")


def _counted(conn) -> dict[tuple, int]:
    rows = conn.execute(sa.text(
        "SELECT organisation_id, status, COALESCE(technology_id, 0), classification, count(*) FROM reports "
        "GROUP BY organisation_id, status, COALESCE(technology_id, 0), classification")).all()
    return {tuple(r[:4]): r[4] for r in rows}


def _tallied(conn) -> dict[tuple, int]:
    rows = conn.execute(sa.text(f"SELECT {', '.join(LABELS)}, n FROM report_tallies WHERE n <> 0")).all()
    return {tuple(r[:4]): r[4] for r in rows}


def test_tallies_follow_every_kind_of_write(app, factory):
    """Inserts, label changes (one or several at once), changes of other columns, deletes and
    a rolled-back transaction, in a random order: the tallies equal a fresh count after each."""
    orgs = [factory.org(facility=True) for _ in range(2)]
    users = [factory.user("filer", org=o) for o in orgs]
    engine = app.extensions["db_engine"]
    with engine.connect() as conn:
        tech_ids = list(conn.execute(sa.text("SELECT id FROM technologies ORDER BY id LIMIT 3")).scalars())
    rnd = random.Random(8)
    statuses = ("draft", "submitted", "under_review", "closed")
    classes = ("public", "restricted", "confidential")
    ids: list[int] = []
    for step in range(120):
        op = rnd.choice(("insert", "insert", "label", "labels", "other", "delete", "rollback"))
        with engine.begin() as conn:
            if op == "insert" or not ids:
                o = rnd.randrange(2)
                ids.append(conn.execute(sa.text(
                    "INSERT INTO reports (organisation_id, created_by_id, status, technology_id, classification, title, "
                    "draft, created_at, updated_at, version_count, paused_days) VALUES (:o, :u, :s, :t, :c, '', :d, "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0, 0) RETURNING id"),
                    {"o": orgs[o].id, "u": users[o].id, "s": rnd.choice(statuses), "c": rnd.choice(classes),
                     "t": rnd.choice(tech_ids + [None]), "d": b"\x00"}).scalar_one())
            elif op == "label":
                col, value = rnd.choice([("status", rnd.choice(statuses)), ("classification", rnd.choice(classes)),
                                         ("technology_id", rnd.choice(tech_ids + [None]))])
                conn.execute(sa.text(f"UPDATE reports SET {col} = :v WHERE id = :id"), {"v": value, "id": rnd.choice(ids)})
            elif op == "labels":
                conn.execute(sa.text("UPDATE reports SET status = :s, classification = :c, technology_id = :t "
                                     "WHERE id IN (:a, :b)"),
                             {"s": rnd.choice(statuses), "c": rnd.choice(classes), "t": rnd.choice(tech_ids),
                              "a": rnd.choice(ids), "b": rnd.choice(ids)})
            elif op == "other":
                # The same labels written again, and unrelated columns: no change in the tallies.
                conn.execute(sa.text("UPDATE reports SET title = 'x', status = status WHERE id = :id"),
                             {"id": rnd.choice(ids)})
            elif op == "delete":
                conn.execute(sa.text("DELETE FROM reports WHERE id = :id"), {"id": ids.pop(rnd.randrange(len(ids)))})
        if op == "rollback":
            with engine.connect() as conn:
                trans = conn.begin()
                conn.execute(sa.text("UPDATE reports SET status = 'closed' WHERE id = :id"), {"id": rnd.choice(ids)})
                trans.rollback()
        with engine.connect() as conn:
            assert _tallied(conn) == _counted(conn), f"after step {step} ({op})"


def test_the_list_total_and_the_queue_counts_come_from_the_tallies(app, factory):
    """A filer files through the pages; the list's total and the reviewer's counts move with
    each submission, and equal a count over the reports."""
    org = factory.org(facility=True)
    filer = factory.user("filer", org=org)
    reviewer = factory.user("reviewer", compartments=("T01",))
    client = app.test_client()
    sign_in(client, filer)
    for n in range(1, 4):
        rid = new_report(client)
        fill_all(client, rid)
        assert submit(client, rid).status_code == 302
        html = client.get("/reports").get_data(as_text=True)
        assert f'<p class="small">{n}件</p>' in html
    new_report(client)  # a draft without a technology: counted for the company, not for METI
    assert '<p class="small">4件</p>' in client.get("/reports").get_data(as_text=True)
    rev = app.test_client()
    sign_in(rev, reviewer)
    html = rev.get("/review/queue").get_data(as_text=True)
    assert '<p class="small">3件</p>' in html
    with app.extensions["db_engine"].connect() as conn:
        assert _tallied(conn) == _counted(conn)


def test_opposite_moves_in_parallel_do_not_deadlock(app, factory):
    """Cases moving under review -> awaiting response and back at the same time, from several
    connections (PostgreSQL): every transaction commits and the tallies stay exact."""
    import threading

    import pytest

    from tests.conftest import IS_PG

    if not IS_PG:
        pytest.skip("SQLite runs one writer at a time")
    org = factory.org(facility=True)
    filer = factory.user("filer", org=org)
    engine = app.extensions["db_engine"]
    with engine.begin() as conn:
        tech = conn.execute(sa.text("SELECT id FROM technologies WHERE code = 'T01'")).scalar_one()
        ids = [conn.execute(sa.text(
            "INSERT INTO reports (organisation_id, created_by_id, status, technology_id, classification, title, draft, "
            "created_at, updated_at, version_count, paused_days) VALUES (:o, :u, :s, :t, 'restricted', '', :d, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1, 0) RETURNING id"),
            {"o": org.id, "u": filer.id, "t": tech, "d": b"\x00", "s": "under_review" if i % 2 else "awaiting_response"}
        ).scalar_one() for i in range(8)]
    errors: list[BaseException] = []

    def mover(report_id: int) -> None:
        try:
            for _ in range(150):
                with engine.begin() as conn:
                    conn.execute(sa.text(
                        "UPDATE reports SET status = CASE status WHEN 'under_review' THEN 'awaiting_response' "
                        "ELSE 'under_review' END WHERE id = :id"), {"id": report_id})
        except BaseException as e:  # noqa: BLE001 - a deadlock surfaces here as an OperationalError
            errors.append(e)

    threads = [threading.Thread(target=mover, args=(rid,)) for rid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    with engine.connect() as conn:
        assert _tallied(conn) == _counted(conn)
