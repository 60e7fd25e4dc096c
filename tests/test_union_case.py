"""Probes an attacker ran against the one request path (issue 12), kept as regression tests.

Each test asserts the behaviour DESIGN §3 asks for; each of the numbered ones failed when it
was written (lists and counts of a union case, a v2 file labelled T01, the working copy read
by a colleague without its technology, an inform decided without its case, unread badges for
notes above the reader's level, a NUL through a multipart form).

Scenario used by most probes (rule 7's "union" case): a company files a T01 report, METI takes
it, writes T01 material, returns it; the company moves the working copy to T14 (adding a file)
and resubmits. The case is now ``compartments = "T01 T14"``, ``technology_id = T14``.
"""
from __future__ import annotations

import io
import re

import pytest
import sqlalchemy as sa

from tests.conftest import csrf_of, sign_in
from tests.reports_helpers import fill_all, new_report, post_step, submit

PDF = b"%PDF-1.7\n" + b"attack probe file\n" * 40 + b"%%EOF\n"
T14_DESCRIPTION = "T14-ONLY-WORKING-COPY-DESCRIPTION-8c1f"
T14_FILENAME = "t14-spec-for-v2.pdf"


# ---------------------------------------------------------------- small helpers

class People:
    def __init__(self, app, factory):
        self.app = app
        self.engine = app.extensions["db_engine"]
        self.f = factory
        self.users = {}
        self.clients = {}
        self.tokens = {}

    def add(self, name, role, *, org, level="csi", compartments=("T01",)):
        u = self.f.user(role, org=org, level=level, compartments=compartments)
        self.users[name] = u
        c = self.app.test_client()
        sign_in(c, u)
        self.clients[name] = c
        return c

    def token(self, name):
        if name not in self.tokens:
            self.tokens[name] = csrf_of(self.clients[name].get("/account").get_data(as_text=True))
        return self.tokens[name]

    def post(self, name, url, data=None, *, multipart=False):
        body = {"csrf_token": self.token(name), **(data or {})}
        if multipart:
            return self.clients[name].post(url, data=body, content_type="multipart/form-data")
        return self.clients[name].post(url, data=body)

    def get(self, name, url):
        resp = self.clients[name].get(url)
        resp.get_data()
        resp.close()
        return resp

    def scalar(self, sql, **p):
        with self.engine.connect() as c:
            return c.execute(sa.text(sql), p).scalar()

    def status(self, rid):
        return self.scalar("SELECT status FROM reports WHERE id = :r", r=rid)

    def transition(self, who, rid, name, data, expect):
        resp = self.post(who, f"/review/cases/{rid}/{name}", data)
        assert resp.status_code == 302 and self.status(rid) == expect, (name, resp.status_code, self.status(rid))

    def upload(self, who, rid, filename, classification="restricted"):
        resp = self.post(who, f"/reports/{rid}/attachments",
                         {"classification": classification, "file": (io.BytesIO(PDF), filename)}, multipart=True)
        assert resp.status_code == 302, (resp.status_code, resp.get_data(as_text=True)[-800:])
        return self.scalar("SELECT max(id) FROM attachments WHERE report_id = :r", r=rid)

    def message(self, who, rid, channel, body, classification="restricted"):
        resp = self.post(who, f"/reports/{rid}/messages/{channel}", {"body": body, "classification": classification},
                         multipart=True)
        assert resp.status_code == 302, resp.status_code
        return self.scalar("SELECT max(id) FROM messages WHERE report_id = :r", r=rid)


@pytest.fixture
def union_case(app, factory):
    """A T01 case returned, moved to T14 by the company (with a new file) and resubmitted."""
    org = factory.org("株式会社プローブ", facility=True)
    meti = factory.org("経済産業省（プローブ）", government=True)
    p = People(app, factory)
    p.add("filer_both", "filer", org=org, level="confidential", compartments=("T01", "T14"))
    p.add("filer_t01", "filer", org=org, level="confidential", compartments=("T01",))
    p.add("filer_t14", "filer", org=org, level="confidential", compartments=("T14",))
    p.add("reviewer_both", "reviewer", org=meti, compartments=("T01", "T14"))
    p.add("reviewer_t01", "reviewer", org=meti, compartments=("T01",))
    p.add("reviewer_t14", "reviewer", org=meti, compartments=("T14",))
    p.add("approver_t01", "approver", org=meti, compartments=("T01",))
    p.add("approver_t14", "approver", org=meti, compartments=("T14",))

    c = p.clients["filer_both"]
    rid = new_report(c)
    fill_all(c, rid)
    assert submit(c, rid).status_code == 302
    p.transition("reviewer_both", rid, "take", {}, "under_review")
    # METI's own T01-era inform draft, sent for approval before the return.
    resp = p.post("reviewer_both", f"/reports/{rid}/informs", {
        "legal_basis": "外国為替及び外国貿易法第55条の8", "reasons": "T01 reasons", "conditions": "",
        "internal_rationale": "T01 rationale", "rationale_classification": "restricted"})
    assert resp.status_code == 302
    iid = p.scalar("SELECT max(id) FROM informs WHERE report_id = :r", r=rid)
    assert p.post("reviewer_both", f"/informs/{iid}/send").status_code == 302
    p.transition("reviewer_both", rid, "return", {"comment": "技術の説明を補足してください。"}, "returned")
    # The company moves the working copy to T14 and attaches the T14 specification.
    resp = post_step(c, rid, "technology", {"technology": "T14", "description": T14_DESCRIPTION,
                                            "transfer_form": "licensing", "classification": "restricted"})
    assert resp.status_code == 302, resp.status_code
    att = p.upload("filer_both", rid, T14_FILENAME)
    return dict(p=p, rid=rid, att=att, inform=iid)


def _resubmit(p, rid):
    assert submit(p.clients["filer_both"], rid).status_code == 302
    assert p.status(rid) == "submitted"
    assert p.scalar("SELECT compartments FROM reports WHERE id = :r", r=rid) == "T01 T14"
    assert p.scalar("SELECT t.code FROM reports r JOIN technologies t ON t.id = r.technology_id WHERE r.id = :r",
                    r=rid) == "T14"


def _reference(p, rid):
    return p.scalar("SELECT reference FROM reports WHERE id = :r", r=rid)


# ---------------------------------------------------------------- 1. lists and counts

def test_union_case_is_not_listed_or_counted_for_a_reviewer_without_t01(union_case):
    """Rule 4 / rule 7: the case carries T01 ∪ T14. A reviewer cleared for T14 only may not
    open it (403), so the queue must neither list it (reference, company, destination) nor
    count it. Today the queue filters on ``reports.technology_id`` and the list rows carry the
    current technology only, so the T14-only reviewer sees the case in the queue and in the
    status counts."""
    p, rid = union_case["p"], union_case["rid"]
    _resubmit(p, rid)
    ref = _reference(p, rid)
    assert p.get("reviewer_t14", f"/reports/{rid}").status_code == 403  # the case itself is refused
    page = p.clients["reviewer_t14"].get("/review/queue").get_data(as_text=True)
    problems = []
    if ref in page:
        problems.append(f"{ref} is listed in the T14-only reviewer's queue")
    counts = dict(re.findall(r'status=(\w+)"[^>]*>[^<]*<strong>(\d+)</strong>', page))
    if counts.get("submitted", "0") != "0":
        problems.append(f"the queue counts {counts.get('submitted')} submitted case(s) the reviewer may not open")
    # The same for the approver's dashboard figures and the T14-only company colleague's list.
    dash = p.clients["approver_t14"].get("/review/dashboard").get_data(as_text=True)
    if re.search(r"T14", dash):
        problems.append("the T14-only approver's dashboard counts the case under T14")
    own = p.clients["filer_t14"].get("/reports").get_data(as_text=True)
    if ref in own and p.get("filer_t14", f"/reports/{rid}").status_code != 200:
        problems.append(f"{ref} is listed for a T14-only filer who is refused the case")
    # ...while the reviewer who holds both compartments does see it.
    assert ref in p.clients["reviewer_both"].get("/review/queue").get_data(as_text=True)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- 2. file of v2 labelled T01

def test_a_file_filed_with_the_t14_version_is_not_readable_by_a_t01_only_reviewer(union_case):
    """Rule 7: labels are fixed when material is written, and the file the company attached
    to its T14 working copy is part of version 2 (T14). Today a report-level file takes the
    case's compartments *at upload* (T01, the case was returned and still T01) and keeps them
    when it is frozen into v2, so a reviewer cleared for T01 only — who may open neither the
    case nor v2 — downloads the T14 specification by its id."""
    p, rid, att = union_case["p"], union_case["rid"], union_case["att"]
    _resubmit(p, rid)
    assert p.scalar("SELECT version FROM attachments WHERE id = :a", a=att) == 2
    assert p.get("reviewer_t01", f"/reports/{rid}/versions/2").status_code == 403  # v2 is T14
    resp = p.get("reviewer_t01", f"/attachments/{att}")
    labels = p.scalar("SELECT compartments FROM attachments WHERE id = :a", a=att)
    assert resp.status_code in (403, 404), (
        f"a T01-only reviewer downloads {T14_FILENAME} of v2 (T14): {resp.status_code}; the file is labelled {labels!r}")


# ---------------------------------------------------------------- 3. working copy read-up

def test_the_t14_working_copy_is_not_shown_to_a_colleague_without_t14(union_case):
    """Rule 4 holds for company users too (the technology step refuses a technology the writer
    is not cleared for). While the case is returned its labels stay T01, but the working copy
    now holds T14 material; a colleague cleared for T01 only opens the editor and the
    check page and reads the T14 description (and could resubmit it)."""
    p, rid = union_case["p"], union_case["rid"]
    problems = []
    for url in (f"/reports/{rid}/edit/technology", f"/reports/{rid}/check"):
        resp = p.clients["filer_t01"].get(url)
        if T14_DESCRIPTION in resp.get_data(as_text=True):
            problems.append(f"GET {url} shows the T14 working copy to a T01-only filer ({resp.status_code})")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- 4. inform decided without its case

def test_a_pending_inform_of_a_case_the_approver_cannot_open_is_not_rejectable(union_case):
    """Rule 7: a sub-object is decided on its own labels *and its own parent*. The T01-era
    inform draft keeps T01 labels; after resubmission the case is T01 ∪ T14. An approver cleared
    for T01 only cannot open the case (403), and cannot approve (the issue transition asks the
    case) — but ``/informs/<id>/reject`` decides on the inform's labels alone and the service
    never asks about the case, so the rejection goes through."""
    p, rid, iid = union_case["p"], union_case["rid"], union_case["inform"]
    _resubmit(p, rid)
    p.transition("reviewer_both", rid, "take", {}, "under_review")
    assert p.get("approver_t01", f"/reports/{rid}").status_code == 403
    resp = p.post("approver_t01", f"/informs/{iid}/reject", {"comment": "却下（ケースを読めない決裁者）"})
    status = p.scalar("SELECT status FROM informs WHERE id = :i", i=iid)
    assert resp.status_code in (403, 404) and status == "pending_approval", (
        f"reject answered {resp.status_code}; the inform is now {status!r}")


# ---------------------------------------------------------------- 5. unread count of csi notes

def test_the_queue_never_counts_notes_the_reader_may_not_read(app, factory):
    """A reviewer cleared to confidential opens the case page (everything they may read is now
    read); the csi internal note written after stays hidden on the page — but the queue's
    unread badge counts it, for ever, telling the reader that material above their level exists."""
    org = factory.org("株式会社バッジ", facility=True)
    meti = factory.org("経済産業省（バッジ）", government=True)
    p = People(app, factory)
    p.add("filer", "filer", org=org, level="confidential")
    p.add("drafter", "reviewer", org=meti, level="csi")
    p.add("reviewer_conf", "reviewer", org=meti, level="confidential")
    rid = new_report(p.clients["filer"])
    fill_all(p.clients["filer"], rid)
    assert submit(p.clients["filer"], rid).status_code == 302
    p.transition("drafter", rid, "take", {}, "under_review")
    p.message("drafter", rid, "internal", "CSI-NOTE-BADGE-PROBE", classification="csi")
    page = p.clients["reviewer_conf"].get(f"/reports/{rid}").get_data(as_text=True)
    assert "CSI-NOTE-BADGE-PROBE" not in page
    queue = p.clients["reviewer_conf"].get("/review/queue").get_data(as_text=True)
    assert 'data-test="unread"' not in queue, "the queue shows an unread badge for a csi note the reader cannot read"
    queue = p.clients["reviewer_conf"].get("/review/queue?unread=1").get_data(as_text=True)
    ref = _reference(p, rid)
    assert ref not in queue, "the 'unread only' filter lists the case because of a csi note"


# ---------------------------------------------------------------- passing guards worth pinning

def test_refused_upload_on_a_submitted_report_leaves_no_blob_and_no_row(union_case, app):
    """A company upload after submission is refused by the service (not editable) only once the
    body has streamed; nothing may be left behind: no row, no blob file, no temporary."""
    p, rid = union_case["p"], union_case["rid"]
    _resubmit(p, rid)
    blob_dir = app.config["SETTINGS"].blob_dir
    before_files = sorted(x.name for x in blob_dir.rglob("*") if x.is_file())
    before_rows = p.scalar("SELECT count(*) FROM attachments")
    resp = p.post("filer_both", f"/reports/{rid}/attachments",
                  {"classification": "restricted", "file": (io.BytesIO(PDF), "late.pdf")}, multipart=True)
    assert resp.status_code == 400
    assert p.scalar("SELECT count(*) FROM attachments") == before_rows
    assert sorted(x.name for x in blob_dir.rglob("*") if x.is_file()) == before_files


def test_notifications_of_a_union_case_reach_only_readers(union_case):
    """After the case became T01 ∪ T14, a METI message's notice and e-mail reach only the
    company colleagues who may read it (not the T01-only or T14-only filer), and the T01-only
    reviewer can no longer take the case."""
    p, rid = union_case["p"], union_case["rid"]
    _resubmit(p, rid)
    assert p.post("reviewer_t01", f"/review/cases/{rid}/take").status_code == 403
    p.transition("reviewer_both", rid, "take", {}, "under_review")
    n0 = p.scalar("SELECT coalesce(max(id), 0) FROM notifications")
    o0 = p.scalar("SELECT coalesce(max(id), 0) FROM outbox")
    p.message("reviewer_both", rid, "external", "質問です")
    with p.engine.connect() as conn:
        told = {r[0] for r in conn.execute(sa.text(
            "SELECT u.email FROM notifications n JOIN users u ON u.id = n.user_id WHERE n.id > :n"), {"n": n0})}
        mailed = {r[0] for r in conn.execute(sa.text("SELECT to_addr FROM outbox WHERE id > :o"), {"o": o0})}
    assert told == mailed == {p.users["filer_both"].email}, (told, mailed)


# ---------------------------------------------------------------- 6. NUL through a multipart form

def test_a_nul_in_a_multipart_form_field_is_a_400_not_a_500(app, factory):
    """The request path refuses a NUL in an urlencoded form (PostgreSQL cannot store it), but
    only for ``application/x-www-form-urlencoded``: the same fields sent as multipart/form-data
    (which every browser may send, and WTForms reads alike) reach plain text columns
    (``reports.title`` from the counterparty's name, ``report_events.comment`` from a return)."""
    org = factory.org("株式会社ヌル", facility=True)
    meti = factory.org("経済産業省（ヌル）", government=True)
    p = People(app, factory)
    p.add("filer", "filer", org=org, level="confidential")
    p.add("reviewer", "reviewer", org=meti)
    rid = new_report(p.clients["filer"])
    from tests.reports_helpers import good_values

    resp = p.post("filer", f"/reports/{rid}/edit/counterparty",
                  {**good_values("counterparty"), "counterparty_name": "ABC\x00Ltd"}, multipart=True)
    problems = [] if resp.status_code == 400 else [f"edit with a NUL (multipart): {resp.status_code}"]
    fill_all(p.clients["filer"], rid)
    assert submit(p.clients["filer"], rid).status_code == 302
    p.transition("reviewer", rid, "take", {}, "under_review")
    resp = p.post("reviewer", f"/review/cases/{rid}/return", {"comment": "直して\x00ください"}, multipart=True)
    if resp.status_code != 400 or p.status(rid) != "under_review":
        problems.append(f"return with a NUL (multipart): {resp.status_code}, case now {p.status(rid)}")
    assert not problems, "\n".join(problems)
