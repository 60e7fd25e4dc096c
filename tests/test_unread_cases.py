"""The case workers' unread cases (``portal.dialogue.unread``), kept as messages are written and
read, always name exactly the cases the exact rule finds: someone else's message, in a channel
the reader's role reads, after their read mark, at a level their clearance covers now.

A seeded random walk drives the portal as its people do (posting in both channels at every
level they may write, opening case pages), and in between changes what the kept rows depend on
(a clearance raised or lowered, a role taken away and given back, a case worker created after
the messages). After every step the kept rows are compared with the rule counted afresh.
"""
from __future__ import annotations

import random
import re
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from portal.access.levels import Level
from tests.conftest import csrf_of, sign_in
from tests.reports_helpers import fill_all, new_report, submit

LEVELS = [lvl.value for lvl in Level]


def _exact(conn, user_id: int, role: str, level: str | None) -> set[int]:
    if role not in ("reviewer", "approver") or level is None:
        return set()
    readable = LEVELS[:LEVELS.index(level) + 1]
    rows = conn.execute(sa.text(
        "SELECT DISTINCT m.report_id FROM messages m LEFT JOIN read_marks rm ON rm.user_id = :u "
        "AND rm.report_id = m.report_id AND rm.channel = m.channel "
        "WHERE m.author_id <> :u AND m.id > COALESCE(rm.last_read_id, 0) AND m.classification IN :levels"
    ).bindparams(sa.bindparam("levels", expanding=True)), {"u": user_id, "levels": readable})
    return {r[0] for r in rows}


def _kept(conn, user_id: int, level: str | None) -> set[int]:
    rank = LEVELS.index(level) if level is not None else -1
    rows = conn.execute(sa.text("SELECT report_id FROM unread_cases WHERE user_id = :u AND lowest_rank <= :r"),
                        {"u": user_id, "r": rank})
    return {r[0] for r in rows}


class Walk:
    def __init__(self, app, factory):
        self.app, self.factory = app, factory
        self.engine = app.extensions["db_engine"]
        self.meti = factory.org("経済産業省（未読）", government=True)
        self.company = factory.org("株式会社未読", facility=True)
        self.people: dict[str, dict] = {}

    def add(self, name: str, role: str, level: str, *, org=None):
        u = self.factory.user(role, org=org or self.meti, level=level, compartments=("T01",))
        self.people[name] = {"user": u, "role": role, "level": level, "client": self._client(u)}

    def _client(self, u):
        c = self.app.test_client()
        sign_in(c, u)
        return c

    def post(self, name: str, rid: int, channel: str, level: str) -> None:
        c = self.people[name]["client"]
        page = c.get(f"/reports/{rid}").get_data(as_text=True)
        resp = c.post(f"/reports/{rid}/messages/{channel}",
                      data={"csrf_token": csrf_of(page), "body": f"{name} {channel} {level}", "classification": level},
                      content_type="multipart/form-data")
        assert resp.status_code == 302, (name, channel, level, resp.status_code)

    def read(self, name: str, rid: int) -> None:
        assert self.people[name]["client"].get(f"/reports/{rid}").status_code == 200

    def set_level(self, name: str, level: str) -> None:
        """What a security officer's new grant changes: the level in force (read at query time)."""
        with self.engine.begin() as conn:
            conn.execute(sa.text("UPDATE clearances SET level = :l WHERE user_id = :u"),
                         {"l": level, "u": self.people[name]["user"].id})
        self.people[name]["level"] = level

    def change_role(self, name: str, role: str) -> None:
        from portal import db
        from portal.admin.services import change_role
        from portal.auth.models import User

        with self.app.app_context():
            s = db.session()
            change_role(s, target=s.get(User, self.people[name]["user"].id), role=role, actor=None)
            s.commit()
        self.people[name]["role"] = role
        # The change signed them out; signing in again within the same 30 seconds would replay
        # the code the first sign-in used, which the portal refuses.
        with self.engine.begin() as conn:
            conn.execute(sa.text("UPDATE users SET totp_last_counter = NULL WHERE id = :u"),
                         {"u": self.people[name]["user"].id})
        self.people[name]["client"] = self._client(self.people[name]["user"])

    def create_case_worker(self, name: str, level: str) -> None:
        """Through the administrators' service, after messages exist: everything is unread for them."""
        from portal import db
        from portal.access.models import Clearance
        from portal.admin.services import create_user
        from portal.catalogue.models import Technology
        from portal.orgs.models import Organisation

        with self.app.app_context():
            s = db.session()
            u = create_user(s, self.app.config["SETTINGS"], email=f"{name}@meti.example.jp", name=name,
                            role="reviewer", org=s.get(Organisation, self.meti.id), password=None, actor=None)
            s.add(Clearance(user_id=u.id, level=level, expires_on=date.today() + timedelta(days=365), reason="test",
                            compartments=list(s.execute(sa.select(Technology).where(Technology.code == "T01")).scalars())))
            s.commit()
            uid = u.id
        self.people[name] = {"user": type("U", (), {"id": uid})(), "role": "reviewer", "level": level, "client": None}

    def take(self, name: str, rid: int) -> None:
        c = self.people[name]["client"]
        page = c.get(f"/reports/{rid}").get_data(as_text=True)
        assert c.post(f"/review/cases/{rid}/take", data={"csrf_token": csrf_of(page)}).status_code == 302

    def check(self, step: str) -> None:
        with self.engine.connect() as conn:
            tallies = {tuple(r[:5]): r[5] for r in conn.execute(sa.text(
                "SELECT user_id, status, classification, technology_id, lowest_rank, n FROM unread_tallies")) if r[5]}
            counted = {tuple(r[:5]): r[5] for r in conn.execute(sa.text(
                "SELECT user_id, status, classification, COALESCE(technology_id, 0), lowest_rank, count(*) "
                "FROM unread_cases GROUP BY user_id, status, classification, COALESCE(technology_id, 0), lowest_rank"))}
            assert tallies == counted, f"after {step}: tallies {tallies}, rows {counted}"
            copied = conn.execute(sa.text(
                "SELECT u.status, u.classification, u.technology_id, u.submitted_at, r.status, r.classification, "
                "r.technology_id, r.submitted_at FROM unread_cases u JOIN reports r ON r.id = u.report_id")).all()
            assert all(tuple(row[:4]) == tuple(row[4:]) for row in copied), f"after {step}: labels not copied: {copied}"
            for name, p in self.people.items():
                if p["user"].id is None or p["role"] == "filer":
                    continue
                exact, kept = _exact(conn, p["user"].id, p["role"], p["level"]), _kept(conn, p["user"].id, p["level"])
                assert kept == exact, f"after {step}: {name} ({p['role']}, {p['level']}) kept {sorted(kept)}, rule {sorted(exact)}"


def _listed(html: str) -> tuple[set[str], str]:
    """The references a queue page lists, and its total."""
    import re

    refs = set(re.findall(r'<a href="/reports/\d+">(TTR-[^<]+)</a>', html))
    total = re.search(r'<p class="small">([^<]*)</p>', html)
    assert total, "not a queue page"
    return refs, total.group(1)


def _case(walk: Walk) -> int:
    fc = walk.people["filer"]["client"]
    rid = new_report(fc)
    fill_all(fc, rid)
    assert submit(fc, rid).status_code == 302
    return rid


@pytest.fixture
def walk(app, factory):
    w = Walk(app, factory)
    w.add("filer", "filer", "confidential", org=w.company)
    w.add("reviewer_csi", "reviewer", "csi")
    w.add("reviewer_conf", "reviewer", "confidential")
    w.add("approver", "approver", "restricted")
    return w


def test_kept_unread_cases_follow_the_exact_rule_through_a_random_walk(walk):
    rng = random.Random(20)
    cases = [_case(walk), _case(walk)]
    writers = {"filer": ("external",), "reviewer_csi": ("external", "internal"),
               "reviewer_conf": ("external", "internal"), "approver": ("external", "internal")}
    walk.check("filing")
    for i in range(48):
        rid = rng.choice(cases)
        move = rng.random()
        if i == 10:
            walk.take("reviewer_csi", cases[0])
            step = "the case taken (its status copied into the rows)"
        elif i == 20:
            walk.create_case_worker("late_reviewer", "confidential")
            step = "a reviewer created after the messages"
        elif i == 30:
            walk.change_role("approver", "auditor")
            step = "the approver made an auditor"
        elif i == 38:
            walk.change_role("approver", "approver")
            step = "the auditor made an approver again"
        elif move < 0.1:
            name = rng.choice(["reviewer_conf", "approver"])
            level = rng.choice(LEVELS[1:3])  # the cases are restricted: everyone still opens them
            walk.set_level(name, level)
            step = f"{name}'s clearance now {level}"
        elif move < 0.55:
            name = rng.choice([n for n in writers if walk.people[n]["role"] != "auditor"])
            channel = rng.choice(writers[name])
            top = LEVELS.index(walk.people[name]["level"])
            if channel == "external":
                top = min(top, LEVELS.index("confidential"))  # the company may read no higher
            level = LEVELS[rng.randint(0, top)]
            walk.post(name, rid, channel, level)
            step = f"{name} posted {level} in {channel} of {rid}"
        else:
            name = rng.choice([n for n, p in walk.people.items() if p["client"] is not None and p["role"] != "auditor"])
            walk.read(name, rid)
            step = f"{name} read {rid}"
        walk.check(step)
    # The queue's ways to the same answer: by order of submission (the kept rows alone), by
    # reference and by transfer date (the cases joined with the kept rows, the total from the
    # tallies), with and without a status; on one page, the total is what the page lists.
    listed = 0
    for name in ("reviewer_csi", "reviewer_conf", "approver"):
        client = walk.people[name]["client"]
        for status in ("", "&status=under_review", "&status=submitted"):
            fast, joined, by_transfer = (
                _listed(client.get(f"/review/queue?unread=1{status}{sort}").get_data(as_text=True))
                for sort in ("", "&sort=reference", "&sort=transfer"))
            assert fast == joined == by_transfer, (name, status, fast, joined, by_transfer)
            assert int(re.search(r"\d+", joined[1]).group()) == len(joined[0]), (name, status, joined)
            listed += len(fast[0])
    assert listed    # At least one case ended unread for someone, and one read: the walk tested both ways.
    with walk.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM unread_cases")).scalar_one() > 0


def test_the_unread_only_queue_lists_what_the_rows_say(walk):
    """End to end: the filter on the page, before and after the reviewer reads the case."""
    rid, other = _case(walk), _case(walk)
    walk.post("filer", rid, "external", "restricted")
    walk.read("reviewer_conf", other)
    rc = walk.people["reviewer_conf"]["client"]
    with walk.engine.connect() as conn:
        ref, other_ref = (conn.execute(sa.text("SELECT reference FROM reports WHERE id = :r"), {"r": r}).scalar_one()
                          for r in (rid, other))
    page = rc.get("/review/queue?unread=1").get_data(as_text=True)
    assert ref in page and other_ref not in page
    walk.read("reviewer_conf", rid)
    page = rc.get("/review/queue?unread=1").get_data(as_text=True)
    assert ref not in page
    # A confidential note from a colleague: unread for the reviewer cleared to confidential, not
    # for one whose clearance is lowered to restricted.
    walk.post("reviewer_csi", rid, "internal", "confidential")
    assert ref in rc.get("/review/queue?unread=1").get_data(as_text=True)
    walk.set_level("reviewer_conf", "restricted")
    assert ref not in rc.get("/review/queue?unread=1").get_data(as_text=True)
    walk.check("end to end")


def test_recount_rebuilds_the_rows_a_bulk_load_left_out(app, walk):
    """``portal db recount`` after messages written around the services."""
    rid = _case(walk)
    walk.post("filer", rid, "external", "restricted")
    with walk.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM unread_cases"))
    from click.testing import CliRunner

    from portal.cli import main

    with app.app_context():
        result = CliRunner().invoke(main.commands["db"], ["recount"], catch_exceptions=True)
    assert result.exit_code == 0, result.output
    assert "unread cases rebuilt" in result.output
    walk.check("recount")
    with walk.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM unread_cases")).scalar_one() == 3
