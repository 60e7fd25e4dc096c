"""A world of people and case objects for the HTTP access matrix (tests/test_access_http.py).

Built once per module through the pages, as the people themselves would (filing, uploading,
taking, writing notes, drafting and issuing informs), then described by small label records
(``Who`` for a person, ``Obj`` for an object) that the matrix's oracle reads. Nothing here
asks the policy: the labels are what the objects were made with.

Also here: a cheap fingerprint of the database and the blob store (to prove a refusal changed
nothing), and ``heal()``, which puts back what an allowed (or wrongly allowed) request changed,
so that one hole does not cascade into every later cell.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa

from tests.conftest import Factory, csrf_of, sign_in
from tests.reports_helpers import fill_all, new_report, submit

PDF = b"%PDF-1.7\n" + b"access matrix test file\n" * 40 + b"%%EOF\n"

# Text that must (or must not) reach a page, by who reads it.
DESCRIPTION = "ACCESS-MATRIX-DESCRIPTION-5d1c"
NOTE_RESTRICTED = "NOTE-RESTRICTED-4b1e-内部メモ"
NOTE_CSI = "NOTE-CSI-9f27-重要経済安保情報"
RATIONALE_CONF = "RATIONALE-CONFIDENTIAL-1a8e"
RATIONALE_CSI = "RATIONALE-CSI-77ad-重要経済安保"
REASONS = "REASONS-THE-COMPANY-READS-3c2a"

LEVELS = ("public", "restricted", "confidential", "csi")


@dataclass(frozen=True)
class Who:
    """A role variant: what the oracle knows of the person asking."""

    name: str
    role: str
    org: str  # "A" (the own organisation), "B" (another company), "N" (no facility clearance), "G" (METI)
    level: str
    compartments: frozenset[str]
    facility: bool  # the organisation's facility clearance is valid (companies only)


@dataclass(frozen=True)
class Obj:
    """An object a route touches, with the labels it was created with."""

    name: str
    type: str  # none | report | version | attachment | inform | user | org | tech
    org: str | None = None
    classification: str = "restricted"
    compartments: frozenset[str] = frozenset({"T01"})
    status: str | None = None
    draft: bool = False  # the (parent) report is the company's unsent draft
    internal: bool = False  # METI-only: an internal note's file, an unissued inform
    on_message: bool = False  # a file of a message or note (append-only)
    frozen: bool = False  # a report file frozen into a submitted version
    drafted_by: str | None = None  # informs: the variant who drafted it
    uploaded_by: str | None = None  # attachments: "company" or "meti"
    # Objects made for one variant's organisation (the company without a facility clearance):
    # asked by its own filer and by one case worker; for everyone else they are the same kind
    # as an object of organisation A or B, which the matrix already asks about.
    only_for: frozenset[str] | None = None


VARIANTS = [
    Who("filer", "filer", "A", "confidential", frozenset({"T01"}), True),
    Who("filer_no_facility", "filer", "N", "confidential", frozenset({"T01"}), False),
    Who("filer_other_org", "filer", "B", "confidential", frozenset({"T01"}), True),
    Who("org_admin", "org_admin", "A", "confidential", frozenset({"T01"}), True),
    Who("reviewer_confidential", "reviewer", "G", "confidential", frozenset({"T01"}), False),
    Who("reviewer_csi", "reviewer", "G", "csi", frozenset({"T01"}), False),
    Who("reviewer_no_T01", "reviewer", "G", "csi", frozenset({"T14"}), False),
    Who("approver", "approver", "G", "csi", frozenset({"T01"}), False),
    Who("auditor", "auditor", "G", "csi", frozenset({"T01", "T14"}), False),
    Who("security_officer", "security_officer", "G", "csi", frozenset({"T01", "T14"}), False),
    Who("admin", "admin", "G", "csi", frozenset({"T01", "T14"}), False),
]
VARIANT = {w.name: w for w in VARIANTS}

# People the world needs who are not variants: METI staff who work the cases (so no variant's
# own actions shape the objects), and company members who are targets of administration.
HELPERS = {
    "drafter": ("reviewer", "G", "csi", ("T01",)),
    "approver2": ("approver", "G", "csi", ("T01",)),
    "member": ("filer", "A", "confidential", ("T01",)),
    "member_other_org": ("filer", "B", "confidential", ("T01",)),
    "filer_T01_T14": ("filer", "A", "confidential", ("T01", "T14")),  # moves a case to T14 (rule 7)
}

# Which organisations hold a valid facility clearance (rule 5) once the world is built.
ORG_FACILITY = {"A": True, "B": True, "N": False, "G": False}
# An id no object has (ids are 32-bit on PostgreSQL; this one fits).
MISSING_ID = 2_000_000_000

_T01 = frozenset({"T01"})
_NO_FACILITY_ASKERS = frozenset({"filer_no_facility", "reviewer_csi"})


def _objects() -> dict[str, Obj]:
    """Every object of the world, with the labels it is created with."""
    out: dict[str, Obj] = {}
    reports = dict(draft=("A", "restricted", "draft"), review=("A", "restricted", "under_review"),
                   returned=("A", "restricted", "returned"), confidential=("A", "confidential", "under_review"),
                   other_org=("B", "restricted", "under_review"),
                   no_facility_restricted=("N", "restricted", "under_review"),
                   no_facility_confidential=("N", "confidential", "under_review"))
    for name, (org, cls, status) in reports.items():
        only = _NO_FACILITY_ASKERS if org == "N" else None
        out[f"report_{name}"] = Obj(f"report_{name}", "report", org, cls, _T01, status, draft=status == "draft",
                                    only_for=only)
        if status != "draft":  # version 1, as submitted
            out[f"version_{name}"] = Obj(f"version_{name}", "version", org, cls, _T01, "submitted", only_for=only)
    for name, org, cls, kw in [
        ("att_draft", "A", "restricted", dict(draft=True, uploaded_by="company")),  # the draft's working copy
        ("att_frozen", "A", "restricted", dict(frozen=True, uploaded_by="company")),  # in v1 of the returned case
        ("att_working", "A", "restricted", dict(uploaded_by="company")),  # added after the return
        ("att_meti_external", "A", "restricted", dict(on_message=True, uploaded_by="meti")),
        ("att_internal_note", "A", "restricted", dict(on_message=True, internal=True, uploaded_by="meti")),
        ("att_internal_csi", "A", "csi", dict(on_message=True, internal=True, uploaded_by="meti")),
        ("att_other_org", "B", "restricted", dict(frozen=True, uploaded_by="company")),
        ("att_no_facility_confidential", "N", "confidential",
         dict(frozen=True, uploaded_by="company", only_for=_NO_FACILITY_ASKERS)),
    ]:
        out[name] = Obj(name, "attachment", org, cls, _T01, **kw)
    for name, org, status, by in [("inform_issued", "A", "issued", "drafter"),
                                  ("inform_draft", "A", "draft", "drafter"),
                                  ("inform_csi_rationale", "A", "pending_approval", "drafter"),
                                  ("inform_own_pending", "A", "pending_approval", "approver"),
                                  ("inform_other_org", "B", "issued", "drafter")]:
        out[name] = Obj(name, "inform", org, "restricted", _T01, status, internal=status not in ("issued", "revoked"),
                        drafted_by=by)
    out["member"] = Obj("member", "user", "A")
    out["member_other_org"] = Obj("member_other_org", "user", "B")
    out["self"] = Obj("self", "user")  # the person asking
    out["org_own"] = Obj("org_own", "org", "A")
    # API tokens (issue 19), revoked by an org_admin of their own organisation only.
    out["token_own"] = Obj("token_own", "org", "A")
    out["token_other_org"] = Obj("token_other_org", "org", "B")
    out["org_no_facility"] = Obj("org_no_facility", "org", "N")
    out["tech_unused"] = Obj("tech_unused", "tech")  # T19: nothing refers to it
    out["tech_in_use"] = Obj("tech_in_use", "tech")  # T01: can never be deleted
    out["none"] = Obj("none", "none")
    return out


OBJECTS = _objects()

# Tables whose rows a refusal must leave alone, read whole (a new column is covered too).
FINGERPRINT_TABLES = ["organisations", "technologies", "reports", "report_versions", "messages", "attachments",
                      "informs", "clearances", "invitations", "api_tokens"]
USER_COLUMNS = "id, email, name, role, organisation_id, password_hash, active, disabled_at, totp_enabled_at"


def _norm(v):
    if isinstance(v, memoryview):
        return bytes(v)
    return v


class World:
    def __init__(self, app, blob_dir: Path):
        self.app = app
        self.engine = app.extensions["db_engine"]
        self.blob_dir = Path(blob_dir)
        self.factory = Factory(app)
        self.users: dict[str, object] = {}
        self.clients: dict[str, object] = {}
        self._tokens: dict[str, str] = {}
        self.objs: dict[str, Obj] = {}
        self.ids: dict[str, int] = {}  # object name -> id (reports: report id; versions: report id)
        self.org_ids: dict[str, int] = {}
        self.extra: dict[str, object] = {}

    # ------------------------------------------------------------------ small helpers

    def q(self, sql: str, **params):
        with self.engine.connect() as c:
            return c.execute(sa.text(sql), params).all()

    def scalar(self, sql: str, **params):
        with self.engine.connect() as c:
            return c.execute(sa.text(sql), params).scalar()

    def token(self, name: str) -> str:
        """The session's CSRF token, from a page every signed-in person may open."""
        if name not in self._tokens:
            resp = self.clients[name].get("/account")
            assert resp.status_code == 200, (name, resp.status_code)
            self._tokens[name] = csrf_of(resp.get_data(as_text=True))
        return self._tokens[name]

    def post(self, name: str, url: str, data: dict | None = None, *, multipart: bool = False):
        body = {"csrf_token": self.token(name), **(data or {})}
        if multipart:
            return self.clients[name].post(url, data=body, content_type="multipart/form-data")
        return self.clients[name].post(url, data=body)

    def status(self, rid: int) -> str:
        return self.scalar("SELECT status FROM reports WHERE id = :r", r=rid)

    # ------------------------------------------------------------------ building

    def build(self) -> "World":
        f = self.factory
        orgs = {
            "A": f.org("株式会社アクセス甲", facility=True),
            "B": f.org("株式会社アクセス乙", facility=True),
            "N": f.org("株式会社アクセス丙", facility=True),  # its facility clearance lapses below
            "G": f.org("経済産業省（試験）", government=True),
        }
        self.org_ids = {k: o.id for k, o in orgs.items()}
        for w in VARIANTS:
            self.users[w.name] = f.user(w.role, org=orgs[w.org], level=w.level, compartments=tuple(sorted(w.compartments)))
        for name, (role, org, level, comps) in HELPERS.items():
            self.users[name] = f.user(role, org=orgs[org], level=level, compartments=comps)
        for name in [w.name for w in VARIANTS] + ["drafter", "approver2", "filer_T01_T14"]:
            self.clients[name] = self.app.test_client()
            sign_in(self.clients[name], self.users[name])

        R = {}

        def filed(who: str, *, classification="restricted", files=(), send=True, take=True) -> tuple[int, list[int]]:
            c = self.clients[who]
            rid = new_report(c)
            fill_all(c, rid, {"technology": {"classification": classification, "description": DESCRIPTION}})
            atts = [self.upload(who, rid, name, cls) for name, cls in files]
            if send:
                resp = submit(c, rid)
                assert resp.status_code == 302 and self.status(rid) == "submitted", resp.status_code
            if send and take:
                self.take(rid)
            return rid, atts

        # Organisation A, the own organisation of filer and org_admin.
        R["draft"], (att_draft,) = filed("filer", files=[("working-draft.pdf", "restricted")], send=False)
        R["review"], _ = filed("filer")
        self.message("filer", R["review"], "external", "会社からの連絡")
        self.message("drafter", R["review"], "internal", NOTE_RESTRICTED)
        _, att_internal_csi = self.message("drafter", R["review"], "internal", NOTE_CSI, classification="csi",
                                           file="csi-assessment.pdf")
        R["returned"], (att_frozen,) = filed("filer", files=[("frozen-v1.pdf", "restricted")])
        _, att_meti = self.message("drafter", R["returned"], "external", "METIからの質問", file="meti-question.pdf")
        _, att_internal = self.message("drafter", R["returned"], "internal", "内部メモ（添付あり）", file="internal-note.pdf")
        self.transition("drafter", R["returned"], "return", {"comment": "相手方の所在地を記載してください。"}, "returned")
        att_working = self.upload("filer", R["returned"], "working-after-return.pdf", "restricted")
        R["confidential"], _ = filed("filer", classification="confidential")
        # Another company's case and file.
        R["other_org"], (att_other,) = filed("filer_other_org", files=[("other-org.pdf", "restricted")])
        # A company whose facility clearance has lapsed: its own restricted case carries a
        # confidential file; its confidential case it may no longer read.
        R["no_facility_restricted"], (att_nofac,) = filed("filer_no_facility", files=[("nofac-conf.pdf", "confidential")])
        R["no_facility_confidential"], _ = filed("filer_no_facility", classification="confidential")
        # Informs, each on its own case.
        inf_issued_rid, _ = filed("filer")
        inf_issued = self.inform("drafter", inf_issued_rid, RATIONALE_CONF, "confidential", send=True)
        self.approve("approver2", inf_issued)
        inf_draft_rid, _ = filed("filer")
        inf_draft = self.inform("drafter", inf_draft_rid, "草案の内部理由", "restricted", send=False)
        inf_csi_rid, _ = filed("filer")
        inf_csi = self.inform("drafter", inf_csi_rid, RATIONALE_CSI, "csi", send=True)
        inf_own_rid, _ = filed("filer")
        inf_own = self.inform("approver", inf_own_rid, "決裁者自身の起案", "restricted", send=True)
        inf_other_rid, _ = filed("filer_other_org")
        inf_other = self.inform("drafter", inf_other_rid, "他社の内部理由", "restricted", send=True)
        self.approve("approver2", inf_other)
        self.extra.update(inform_reports={"inform_issued": inf_issued_rid, "inform_draft": inf_draft_rid,
                                          "inform_csi_rationale": inf_csi_rid, "inform_own_pending": inf_own_rid,
                                          "inform_other_org": inf_other_rid})

        with self.engine.begin() as c:
            c.execute(sa.text("UPDATE organisations SET facility_clearance_until = :d WHERE id = :o"),
                      {"d": date.today() - timedelta(days=2), "o": self.org_ids["N"]})

        # ---------------------------------------------------------------- ids of the objects
        ids = {f"report_{k}": v for k, v in R.items()}
        ids.update({f"version_{k}": v for k, v in R.items() if k != "draft"})
        ids.update(att_draft=att_draft, att_frozen=att_frozen, att_working=att_working, att_meti_external=att_meti,
                   att_internal_note=att_internal, att_internal_csi=att_internal_csi, att_other_org=att_other,
                   att_no_facility_confidential=att_nofac, inform_issued=inf_issued, inform_draft=inf_draft,
                   inform_csi_rationale=inf_csi, inform_own_pending=inf_own, inform_other_org=inf_other,
                   member=self.users["member"].id, member_other_org=self.users["member_other_org"].id, self=0,
                   org_own=self.org_ids["A"], org_no_facility=self.org_ids["N"], none=0)
        tech = dict(self.q("SELECT code, id FROM technologies WHERE code IN ('T01', 'T19')"))
        ids.update(tech_unused=tech["T19"], tech_in_use=tech["T01"])
        ids.update(self._api_tokens())
        assert set(ids) == set(OBJECTS), set(ids) ^ set(OBJECTS)
        self.ids = ids
        self.objs = OBJECTS
        # The world is what the descriptors say it is.
        for name, o in OBJECTS.items():
            if o.type == "report":
                assert self.status(ids[name]) == o.status, (name, self.status(ids[name]))
                org, cls = self.q("SELECT organisation_id, classification FROM reports WHERE id = :i", i=ids[name])[0]
                assert (org, cls) == (self.org_ids[o.org], o.classification), name
            elif o.type == "attachment":
                cls, rep = self.q("SELECT classification, report_id FROM attachments WHERE id = :i", i=ids[name])[0]
                assert cls == o.classification, (name, cls)
                assert self.scalar("SELECT organisation_id FROM reports WHERE id = :r", r=rep) == self.org_ids[o.org]
            elif o.type == "inform":
                got = self.scalar("SELECT status FROM informs WHERE id = :i", i=ids[name])
                assert got == o.status, (name, got)
        assert self.scalar("SELECT drafted_by_id FROM informs WHERE id = :i", i=inf_own) == self.users["approver"].id

        # Something for the auditor's pages to show: an event and a signed checkpoint.
        from portal import db
        from portal.audit import checkpoints

        with self.app.app_context():
            s = db.session()
            cp = checkpoints.make(s, checkpoints.signing_key(str(self.app.config["SETTINGS"].audit_key_path)), "manual")
            s.commit()
            self.extra["checkpoint_id"] = cp.id
        self.extra["audit_seq"] = self.scalar("SELECT min(seq) FROM audit_events")
        self.snapshot()
        return self

    def upload(self, who: str, rid: int, filename: str, classification: str) -> int:
        before = self.scalar("SELECT count(*) FROM attachments WHERE report_id = :r", r=rid)
        resp = self.post(who, f"/reports/{rid}/attachments",
                         {"classification": classification, "file": (io.BytesIO(PDF), filename)}, multipart=True)
        assert resp.status_code == 302, (who, filename, resp.status_code, resp.get_data(as_text=True)[-1500:])
        assert self.scalar("SELECT count(*) FROM attachments WHERE report_id = :r", r=rid) == before + 1
        return self.scalar("SELECT max(id) FROM attachments WHERE report_id = :r", r=rid)

    def message(self, who: str, rid: int, channel: str, body: str, *, classification="restricted",
                file: str | None = None) -> tuple[int, int | None]:
        data = {"body": body, "classification": classification}
        if file:
            data["file"] = (io.BytesIO(PDF), file)
        before = self.scalar("SELECT count(*) FROM messages WHERE report_id = :r", r=rid)
        resp = self.post(who, f"/reports/{rid}/messages/{channel}", data, multipart=True)
        assert resp.status_code == 302, (who, channel, resp.status_code)
        assert self.scalar("SELECT count(*) FROM messages WHERE report_id = :r", r=rid) == before + 1, (who, channel)
        mid = self.scalar("SELECT max(id) FROM messages WHERE report_id = :r", r=rid)
        aid = self.scalar("SELECT max(id) FROM attachments WHERE message_id = :m", m=mid) if file else None
        assert (aid is not None) == bool(file)
        return mid, aid

    def take(self, rid: int) -> None:
        self.transition("drafter", rid, "take", {}, "under_review")

    def transition(self, who: str, rid: int, name: str, data: dict, expect: str) -> None:
        resp = self.post(who, f"/review/cases/{rid}/{name}", data)
        assert resp.status_code == 302 and self.status(rid) == expect, (name, resp.status_code, self.status(rid))

    def inform(self, who: str, rid: int, rationale: str, rationale_classification: str, *, send: bool) -> int:
        resp = self.post(who, f"/reports/{rid}/informs", {
            "legal_basis": "外国為替及び外国貿易法第55条の8", "reasons": REASONS, "conditions": "",
            "internal_rationale": rationale, "rationale_classification": rationale_classification})
        assert resp.status_code == 302, resp.status_code
        iid = self.scalar("SELECT max(id) FROM informs WHERE report_id = :r", r=rid)
        assert iid is not None, "the inform was not drafted"
        if send:
            resp = self.post(who, f"/informs/{iid}/send")
            assert resp.status_code == 302
            assert self.scalar("SELECT status FROM informs WHERE id = :i", i=iid) == "pending_approval"
        return iid

    def approve(self, who: str, iid: int) -> None:
        from tests.inform_helpers import approve_form

        form = approve_form(self.clients[who], iid, {"comment": "承認"})  # from the confirmation page
        assert form is not None, "no confirmation page"
        resp = self.clients[who].post(f"/informs/{iid}/approve", data=form)
        assert resp.status_code == 302
        assert self.scalar("SELECT status FROM informs WHERE id = :i", i=iid) == "issued"

    def _api_tokens(self) -> dict[str, int]:
        """A bearer token for every variant, the government's and the administrators' too
        (written straight to the table: the admin page issues them for company members only),
        so the matrix shows the API's answers come from the policy, not from who holds a token;
        and one token of each company organisation for the revocation route."""
        from portal import db
        from portal.auth.tokens import SCOPES, ApiToken, PREFIX, digest
        from portal.db import utcnow

        self.api_tokens = {}
        rows = {}
        with self.app.app_context():
            s = db.session()
            for name in [w.name for w in VARIANTS] + ["member", "member_other_org"]:
                u = self.users[name]
                value = f"{PREFIX}matrix-{name}-{u.id}"
                row = ApiToken(organisation_id=u.organisation_id, user_id=u.id, name=name, token_hash=digest(value),
                               hint=value[:10], scopes=" ".join(SCOPES), source_addresses="",
                               expires_at=utcnow() + timedelta(days=30), created_by_id=u.id)
                s.add(row)
                s.flush()
                self.api_tokens[name] = value
                rows[name] = row.id
            s.commit()
        return {"token_own": rows["member"], "token_other_org": rows["member_other_org"]}

    # ------------------------------------------------------------------ fingerprint and heal

    def blobs(self) -> dict[str, str]:
        out = {}
        for p in sorted(self.blob_dir.rglob("*")):
            if p.is_file() and p.parent.name != "tmp":
                out[str(p.relative_to(self.blob_dir))] = p.stat().st_size
        return out

    def _rows(self, conn, table: str):
        if table == "users":
            return conn.execute(sa.text(f"SELECT {USER_COLUMNS} FROM users ORDER BY id")).all()
        if table == "clearance_compartments":
            return conn.execute(sa.text("SELECT * FROM clearance_compartments ORDER BY 1, 2")).all()
        return conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id")).all()

    def fingerprint(self) -> dict[str, tuple[int, str]]:
        """Row count and a hash of every row, per table; the blob files present."""
        out = {}
        with self.engine.connect() as c:
            for t in FINGERPRINT_TABLES + ["users", "clearance_compartments"]:
                rows = self._rows(c, t)
                h = hashlib.sha256(repr([tuple(_norm(v) for v in r) for r in rows]).encode()).hexdigest()[:16]
                out[t] = (len(rows), h)
        b = self.blobs()
        out["blob files"] = (len(b), hashlib.sha256(repr(sorted(b.items())).encode()).hexdigest()[:16])
        return out

    def audit_head(self) -> int:
        return self.scalar("SELECT coalesce(max(seq), 0) FROM audit_events")

    def denials_since(self, seq: int) -> list[tuple]:
        return self.q("SELECT action, outcome, reason FROM audit_events WHERE seq > :s AND "
                      "(action = 'access.denied' OR outcome = 'denied') ORDER BY seq", s=seq)

    def denied_addresses_since(self, seq: int) -> set[str]:
        """The source addresses of the refusals recorded since ``seq`` (DESIGN §8: every event
        names its source address; each cell of the matrix comes from its own)."""
        return {r[0] for r in self.q("SELECT source_ip FROM audit_events WHERE seq > :s AND "
                                     "(action = 'access.denied' OR outcome = 'denied')", s=seq)}

    def next_address(self) -> str:
        self._address = getattr(self, "_address", 0) + 1
        n = self._address
        return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"

    def snapshot(self) -> None:
        """What ``heal`` puts back: the rows of the tables an allowed or wrongly allowed request
        may change (raw values, so sealed columns are copied as stored), and the blob files."""
        self._snap = {}
        with self.engine.connect() as c:
            for t in ("attachments", "users", "reports", "informs", "organisations", "technologies"):
                res = c.execute(sa.text(f"SELECT * FROM {t} ORDER BY id"))
                self._snap[t] = (list(res.keys()), {r[0]: tuple(_norm(v) for v in r) for r in res.all()})
        self._blob_snap = {}
        for p in self.blob_dir.rglob("*"):
            if p.is_file() and p.parent.name != "tmp":
                self._blob_snap[p.relative_to(self.blob_dir)] = p.read_bytes()
        self.baseline = self.fingerprint()

    def heal(self) -> None:
        with self.engine.begin() as c:
            for t, (cols, rows) in self._snap.items():
                now = {r[0]: tuple(_norm(v) for v in r) for r in c.execute(sa.text(f"SELECT * FROM {t} ORDER BY id")).all()}
                sets = ", ".join(f"{col} = :{col}" for col in cols[1:])
                for rid, row in rows.items():
                    if rid not in now:
                        if t == "attachments":
                            c.execute(sa.text(f"INSERT INTO {t} ({', '.join(cols)}) VALUES ({', '.join(':' + x for x in cols)})"),
                                      dict(zip(cols, row)))
                    elif now[rid] != row:
                        c.execute(sa.text(f"UPDATE {t} SET {sets} WHERE {cols[0]} = :{cols[0]}"), dict(zip(cols, row)))
                if t == "attachments":
                    for rid in set(now) - set(rows):
                        c.execute(sa.text("DELETE FROM attachments WHERE id = :i"), {"i": rid})
        for rel, data in self._blob_snap.items():
            p = self.blob_dir / rel
            if not p.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
        for p in list(self.blob_dir.rglob("*")):
            if p.is_file() and p.parent.name != "tmp" and p.relative_to(self.blob_dir) not in self._blob_snap:
                p.unlink()
        self.baseline = self.fingerprint()


def diff(before: dict, after: dict) -> str:
    parts = []
    for k, was in before.items():
        if was != after.get(k):
            nb, na = was[0], after.get(k, (None,))[0]
            parts.append(f"{k}: {nb}→{na} rows" if nb != na else f"{k}: rows changed")
    return "; ".join(parts)
