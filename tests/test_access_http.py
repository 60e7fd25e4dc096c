"""Every route, every role, every kind of object, over HTTP (issue 12, deliverable 4).

For each rule of ``app.url_map`` (but ``static`` and the declared public routes), each role
variant and each object the route can touch, the HTTP answer and its effect must match an
ORACLE written below from DESIGN §2–§3 and the web layer's contract — never from the code:

* allowed ('ok'): anything but 403, 404 or a server error (and, for a few routes, the effect);
* refused (403/404): exactly that status, NOTHING changed in the database or the blob store,
  and the refusal recorded in the audit trail (``access.denied`` or an event with outcome
  ``denied``).

A refused request carries a complete, valid body (the "attack": what would succeed if the
guard were missing), so a hole shows as a status and as a change. An allowed request carries
a body the service rejects as incomplete (the "probe") where the action would otherwise change
the world; deletes and a few account actions run for real and are put back (``World.heal``).

Besides the matrix: the decision comes before the body (refusals without a CSRF token are
still 403/404, not 400); another organisation's object answers exactly as an id that does not
exist; every route declares the action it performs; csi material stays off the case page of a
reviewer cleared only to confidential; and the rule-7 scenario (a returned T01 case moved to
T14 by the company).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Callable

import pytest

from portal.access.policy import Action
from tests.access_world import (DESCRIPTION, MISSING_ID, NOTE_CSI, NOTE_RESTRICTED, OBJECTS, ORG_FACILITY, PDF,
                                RATIONALE_CONF, RATIONALE_CSI, REASONS, VARIANT, VARIANTS, Obj, Who, World, diff)
from tests.reports_helpers import post_step, submit
from tests.test_routes_guarded import EXPECTED_PUBLIC

# The new action of the contract; referenced by name so the module imports before it exists.
ATTACHMENT_DELETE = getattr(Action, "ATTACHMENT_DELETE", "attachment.delete")

# ============================================================================ the oracle
#
# DESIGN §2 (who does what) and §3 (rules 1–8), as the web layer's contract applies them.

COMPANY = frozenset({"filer", "org_admin"})
WORKERS = frozenset({"reviewer", "approver"})
EVERYONE = COMPANY | WORKERS | {"auditor", "security_officer", "admin"}
RANK = {"public": 0, "restricted": 1, "confidential": 2, "csi": 3}

# action -> (roles that may take it, what it is taken on)
ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "account.self": (EVERYONE, "self"),
    "report.list": (COMPANY | WORKERS, "system"),
    "report.create": (COMPANY, "org"),
    "report.view": (COMPANY | WORKERS, "content"),
    "report.edit": (COMPANY, "content"),
    "report.submit": (COMPANY, "content"),
    "report.withdraw": (COMPANY, "content"),
    "report.delete": (COMPANY, "content"),
    "report.review": (WORKERS, "content"),
    "report.assign": (frozenset({"approver"}), "content"),
    "attachment.upload": (COMPANY, "content"),  # on the report's working copy: the company's files
    "attachment.download": (COMPANY | WORKERS, "content"),
    str(ATTACHMENT_DELETE): (COMPANY, "content"),
    "message.post": (COMPANY | WORKERS, "content"),
    "message.read": (COMPANY | WORKERS, "content"),
    "note.post": (WORKERS, "content"),
    "inform.view": (COMPANY | WORKERS, "content"),
    "inform.draft": (WORKERS, "content"),
    "inform.approve": (frozenset({"approver"}), "content"),
    "inform.revoke": (frozenset({"approver"}), "content"),
    "inform.acknowledge": (COMPANY, "content"),
    "review.queue": (WORKERS, "system"),
    "dashboard.view": (frozenset({"approver"}), "system"),
    "org.members.view": (frozenset({"org_admin"}), "org"),
    "org.members.invite": (frozenset({"org_admin"}), "org"),
    "org.members.disable": (frozenset({"org_admin"}), "user"),
    "users.admin": (frozenset({"admin"}), "system"),
    "user.disable": (frozenset({"admin"}), "user"),
    "user.role.change": (frozenset({"admin"}), "user"),
    "outbox.read": (frozenset({"admin"}), "system"),
    "catalogue.manage": (frozenset({"admin"}), "system"),
    "clearances.admin": (frozenset({"security_officer"}), "system"),
    "clearance.grant": (frozenset({"security_officer"}), "user"),
    "clearance.revoke": (frozenset({"security_officer"}), "user"),
    "facility.manage": (frozenset({"security_officer"}), "org"),
    "audit.read": (frozenset({"auditor"}), "system"),
    "audit.export": (frozenset({"auditor"}), "system"),
}


def expected(route: "Route", who: Who, obj: Obj) -> str | int:
    """'ok', 403 or 404 for ``who`` doing ``route`` on ``obj``. Every variant holds a valid,
    unexpired personal clearance (rule 3), so the level, compartments and facility decide."""
    if route.channel is not None and route.channel not in ("external", "internal"):
        return 404  # a channel that does not exist: nothing to decide on
    roles, kind = ACTIONS[route.action]
    company = who.role in COMPANY
    if kind == "self":
        return "ok"
    if kind == "system":
        if company and obj.org is not None and obj.org != who.org:
            return 404  # rule 5 (a console page decided on the role alone may say 403: see _check)
        return "ok" if who.role in roles else 403
    if kind == "org":
        org = who.org if obj.type == "none" else obj.org  # report.create, org.members.*: one's own
        if company and org != who.org:
            return 404  # rule 5: another organisation is never revealed
        return "ok" if who.role in roles else 403
    if kind == "user":
        is_self = obj.name == "self"
        org = who.org if is_self else obj.org
        if company and org != who.org:
            return 404
        if who.role not in roles:
            return 403
        if is_self:
            return 403  # nobody changes their own roles, clearance or account state
        return "ok"
    # Case content. The object's own labels (rule 7): a version, a file, an inform.
    if route.channel == "internal":
        obj = replace(obj, internal=True)  # the internal channel is METI's
    if company and obj.org != who.org:
        return 404  # rule 5 and no existence leak
    if not company and obj.draft:
        return 404  # a draft is the company's own until it is sent
    if company and obj.internal:
        return 404  # internal notes, their files, unissued informs: METI only
    if who.role not in roles:
        return 403  # rule 1; admin, security_officer, auditor: no case content at all
    if RANK[who.level] < RANK[obj.classification]:
        return 403  # rule 2
    if not obj.compartments <= who.compartments:
        return 403  # rule 4
    if company and RANK[obj.classification] >= RANK["confidential"] and not who.facility:
        return 403  # rule 5: facility clearance
    if route.channel == "external" and route.action == "message.post" and (obj.classification == "csi" or (
            RANK[obj.classification] >= RANK["confidential"] and not ORG_FACILITY[obj.org])):
        return 403  # rule 6 (no write-down): the company reads this channel, so nothing is posted above what it may read
    if route.action == str(ATTACHMENT_DELETE) and (obj.on_message or obj.frozen):
        return 403  # messages are append-only; a file frozen in a submitted version stays
    if route.action == "inform.approve" and obj.drafted_by == who.name:
        return 403  # four eyes (may be answered by a flash and a redirect)
    return "ok"


def four_eyes(route: "Route", who: Who, obj: Obj) -> bool:
    return route.action == "inform.approve" and obj.drafted_by == who.name


def role_only_refusal(route: "Route", who: Who, obj: Obj) -> bool:
    """A console page decided on the role alone (users.admin, clearances.admin) may refuse a
    company user 403 for another organisation's object too, as for every id: the answer then
    reveals nothing (test_no_existence_leak_across_organisations holds it to that)."""
    return (ACTIONS[route.action][1] == "system" and who.role in COMPANY and obj.org is not None
            and obj.org != who.org)


# ============================================================================ the routes

ANY = lambda w, who, o: {}  # noqa: E731
TODAY = date.today()


def rid(w: World, who: Who, o: Obj) -> dict:
    return {"report_id": w.ids[o.name]}


def iid(w: World, who: Who, o: Obj) -> dict:
    return {"inform_id": w.ids[o.name]}


def aid(w: World, who: Who, o: Obj) -> dict:
    return {"attachment_id": w.ids[o.name]}


def uid(w: World, who: Who, o: Obj) -> dict:
    return {"user_id": w.users[who.name].id if o.name == "self" else w.ids[o.name]}


def oid(w: World, who: Who, o: Obj) -> dict:
    return {"org_id": w.ids[o.name]}


def tid(w: World, who: Who, o: Obj) -> dict:
    return {"tech_id": w.ids[o.name]}


INFORM_BODY = {"legal_basis": "ATTACK 外為法第55条の8", "reasons": "ATTACK reasons", "conditions": "",
               "internal_rationale": "ATTACK rationale", "rationale_classification": "restricted"}
TOO_LONG = {"comment": "x" * 20001}  # a DecisionForm the service never sees


def _upload(w, who, o):
    return {"classification": "restricted", "file": (io.BytesIO(PDF), "attack.pdf")}


def _message(w, who, o):
    return {"classification": "restricted", "body": "ATTACK message"}


def _corporate_number() -> str:
    from portal.orgs.corporate_number import check_digit

    base = "987654321098"
    return f"{check_digit(base)}{base}"


# ---------------------------------------------------------------- effects of allowed requests

def _new_draft(w: World, who: Who, o: Obj, before: dict, after: dict) -> list[str]:
    if after["reports"][0] != before["reports"][0] + 1:
        return ["no new report"]
    org, status = w.q("SELECT organisation_id, status FROM reports ORDER BY id DESC LIMIT 1")[0]
    if org != w.org_ids[who.org] or status != "draft":
        return [f"the new report is org {org} status {status}, not a draft of the own organisation"]
    return []


def _deleted(w: World, who: Who, o: Obj, before: dict, after: dict) -> list[str]:
    att = w.ids[o.name]
    cols, rows = w._snap["attachments"]
    key = rows[att][cols.index("blob_key")]
    out = []
    if w.scalar("SELECT count(*) FROM attachments WHERE id = :i", i=att):
        out.append("the attachment is still there")
    if any(p.name == key for p in w.blob_dir.rglob(key)):
        out.append("its blob is still there")
    return out


def _disabled(w: World, who: Who, o: Obj, before: dict, after: dict) -> list[str]:
    active = w.scalar("SELECT active FROM users WHERE id = :i", i=w.ids[o.name])
    return [] if not active else ["the member is still active"]


@dataclass(frozen=True)
class Route:
    endpoint: str
    method: str
    action: str
    objects: tuple[str, ...]
    args: Callable = ANY
    attack: Callable = ANY  # the body of a refused request: complete and valid
    probe: Callable | None = None  # the body of an allowed request (None: the attack's)
    multipart: bool = False
    channel: str | None = None
    effect: Callable | None = None
    api: bool = False  # /api/v1: a bearer token instead of the session, JSON instead of a form

    @property
    def key(self) -> str:
        return f"{self.endpoint} {self.method}" + (f" [{self.channel!r}]" if self.channel else "")


REPORTS = ("report_draft", "report_review", "report_returned", "report_confidential", "report_other_org",
           "report_no_facility_restricted", "report_no_facility_confidential")
SENT_REPORTS = REPORTS[1:]
VERSIONS = tuple("version_" + r[len("report_"):] for r in SENT_REPORTS)
ATTACHMENTS = ("att_draft", "att_frozen", "att_working", "att_meti_external", "att_internal_note", "att_internal_csi",
               "att_other_org", "att_no_facility_confidential")
INFORMS = ("inform_issued", "inform_draft", "inform_csi_rationale", "inform_own_pending", "inform_other_org")
ISSUED = ("inform_issued", "inform_other_org")
USERS = ("member", "member_other_org", "self")
NONE = ("none",)

R = Route
ROUTES: list[Route] = [
    # ---------------------------------------------------------------- reports
    R("reports.index", "GET", "report.list", NONE),
    R("reports.new", "POST", "report.create", NONE, effect=_new_draft),
    R("reports.show", "GET", "report.view", REPORTS, rid),
    R("reports.done", "GET", "report.view", REPORTS, rid),
    R("reports.receipt", "GET", "report.view", SENT_REPORTS, rid),  # a draft has no receipt
    R("reports.show_version", "GET", "report.view", VERSIONS, lambda w, who, o: {
        "report_id": w.ids[o.name], "number": 1}),
    R("reports.edit", "GET", "report.edit", REPORTS, lambda w, who, o: {**rid(w, who, o), "step": "technology"}),
    R("reports.edit", "POST", "report.edit", REPORTS, lambda w, who, o: {**rid(w, who, o), "step": "technology"},
      attack=lambda w, who, o: {"technology": "T14", "description": "ATTACK", "transfer_form": "licensing",
                                "classification": "public"}, probe=ANY),
    R("reports.check", "GET", "report.edit", REPORTS, rid),
    R("reports.check", "POST", "report.submit", REPORTS, rid, attack=lambda w, who, o: {"attest": "y"}, probe=ANY),
    R("reports.withdraw", "POST", "report.withdraw", REPORTS, rid, attack=lambda w, who, o: {"comment": "ATTACK"},
      probe=ANY),
    R("reports.delete", "GET", "report.delete", REPORTS, rid),  # the confirmation page
    # Allowed without the confirmation field: the page again, nothing deleted (tests/test_filing_steps.py deletes).
    R("reports.delete", "POST", "report.delete", REPORTS, rid, attack=lambda w, who, o: {"confirm": "delete"},
      probe=ANY),
    # ---------------------------------------------------------------- attachments
    R("attachments.index", "GET", "report.view", REPORTS, rid),
    R("attachments.upload", "POST", "attachment.upload", REPORTS, rid, attack=_upload,
      probe=lambda w, who, o: {"classification": "restricted"}, multipart=True),
    R("attachments.download", "GET", "attachment.download", ATTACHMENTS, aid),
    R("attachments.delete", "POST", str(ATTACHMENT_DELETE), ATTACHMENTS, aid, effect=_deleted),
    # ---------------------------------------------------------------- dialogue
    *[R("dialogue.post", "POST", "note.post" if ch == "internal" else "message.post",
        REPORTS if ch in ("external", "internal") else ("report_review", "report_other_org", "report_draft"),
        lambda w, who, o, ch=ch: {**rid(w, who, o), "channel": ch}, attack=_message,
        probe=lambda w, who, o: {"classification": "restricted", "body": ""}, multipart=True, channel=ch)
      for ch in ("external", "internal", "INTERNAL", "internal\x00", "foo")],
    R("dialogue.notifications", "GET", "account.self", NONE),
    # ---------------------------------------------------------------- informs
    R("informs.create", "POST", "inform.draft", REPORTS, rid, attack=lambda w, who, o: INFORM_BODY, probe=ANY),
    R("informs.edit", "POST", "inform.draft", INFORMS, iid, attack=lambda w, who, o: INFORM_BODY, probe=ANY),
    R("informs.send", "POST", "inform.draft", INFORMS, iid, probe=lambda w, who, o: TOO_LONG),
    R("informs.approve", "POST", "inform.approve", INFORMS, iid, attack=lambda w, who, o: {"comment": "ATTACK"},
      probe=lambda w, who, o: TOO_LONG),
    R("informs.confirm", "GET", "inform.approve", INFORMS, iid),
    R("informs.preview", "GET", "inform.approve", INFORMS, iid),
    R("informs.reject", "POST", "inform.approve", INFORMS, iid, attack=lambda w, who, o: {"comment": "ATTACK"},
      probe=lambda w, who, o: TOO_LONG),
    R("informs.revoke", "POST", "inform.revoke", INFORMS, iid, attack=lambda w, who, o: {"reason": "ATTACK"}, probe=ANY),
    R("informs.acknowledge", "POST", "inform.acknowledge", INFORMS, iid, attack=lambda w, who, o: {"confirm": "y"},
      probe=ANY),
    R("informs.licence", "POST", "inform.acknowledge", INFORMS, iid,
      attack=lambda w, who, o: {"licence_application_ref": "ATTACK-1"}, probe=ANY),
    R("informs.notice", "GET", "inform.view", ISSUED, iid),  # only an issued inform has a notice
    R("informs.notice_page", "GET", "inform.view", ISSUED, iid),  # its signature status (issue 16)
    # ---------------------------------------------------------------- review
    R("review.queue", "GET", "review.queue", NONE),
    R("review.dashboard", "GET", "dashboard.view", NONE),
    R("review.take", "POST", "report.review", REPORTS, rid),  # every sent case is already under review
    R("review.return_", "POST", "report.review", REPORTS, rid, attack=lambda w, who, o: {"comment": "ATTACK"},
      probe=ANY),
    R("review.close", "POST", "report.review", REPORTS, rid, attack=lambda w, who, o: {"summary": "ATTACK"},
      probe=ANY),
    R("review.assign", "POST", "report.assign", REPORTS, rid,
      attack=lambda w, who, o: {"assignee": str(w.users["drafter"].id)}, probe=ANY),
    # ---------------------------------------------------------------- a company's own administration
    R("orgs.members", "GET", "org.members.view", NONE),
    R("orgs.invite", "POST", "org.members.invite", NONE,
      attack=lambda w, who, o: {"email": "attack-invite@example.jp", "name": "Attack", "role": "filer"}, probe=ANY),
    R("orgs.disable", "POST", "org.members.disable", USERS, uid, effect=_disabled),
    R("orgs.enable", "POST", "org.members.disable", USERS, uid),
    # ---------------------------------------------------------------- system administration
    R("admin.users", "GET", "users.admin", NONE),
    R("admin.user", "GET", "users.admin", USERS, uid),
    R("admin.invite", "POST", "users.admin", NONE, attack=lambda w, who, o: {
        "organisation_id": str(w.org_ids["A"]), "email": "attack-admin@example.jp", "name": "Attack", "role": "filer"},
      probe=ANY),
    R("admin.organisations", "GET", "users.admin", NONE),
    R("admin.organisations", "POST", "users.admin", NONE, attack=lambda w, who, o: {
        "name": "Attack Org", "corporate_number": _corporate_number(), "address": "東京都"}, probe=ANY),
    R("admin.change_role", "POST", "user.role.change", USERS, uid, attack=lambda w, who, o: {"role": "admin"},
      probe=lambda w, who, o: {"role": ""}),
    R("admin.disable", "POST", "user.disable", USERS, uid, effect=_disabled),
    R("admin.enable", "POST", "user.disable", USERS, uid),
    R("admin.outbox_view", "GET", "outbox.read", NONE),
    R("catalogue.index", "GET", "catalogue.manage", NONE),
    R("catalogue.index", "POST", "catalogue.manage", NONE, attack=lambda w, who, o: {
        "code": "T99", "name_ja": "攻撃", "name_en": "Attack", "effective_from": TODAY.isoformat()}, probe=ANY),
    R("catalogue.edit", "GET", "catalogue.manage", ("tech_unused",), tid),
    R("catalogue.edit", "POST", "catalogue.manage", ("tech_unused",), tid,
      attack=lambda w, who, o: {"name_ja": "攻撃", "name_en": "Attack", "effective_until": ""}, probe=ANY),
    R("catalogue.delete", "POST", "catalogue.manage", ("tech_in_use",), tid),  # in use: never actually removed
    # ---------------------------------------------------------------- security officers
    R("access.clearances", "GET", "clearances.admin", NONE),
    R("access.user", "GET", "clearances.admin", USERS, uid),
    R("access.grant", "POST", "clearance.grant", USERS, uid, attack=lambda w, who, o: {
        "level": "csi", "compartments": ["T01", "T14"], "expires_on": (TODAY + timedelta(days=100)).isoformat(),
        "reason": "ATTACK"}, probe=ANY),
    R("access.revoke", "POST", "clearance.revoke", USERS, uid, attack=lambda w, who, o: {"reason": "ATTACK"},
      probe=ANY),
    R("access.facility", "GET", "clearances.admin", ("org_own", "org_no_facility"), oid),
    R("access.facility", "POST", "facility.manage", ("org_own", "org_no_facility"), oid, attack=lambda w, who, o: {
        "valid_from": (TODAY - timedelta(days=5)).isoformat(), "valid_until": (TODAY + timedelta(days=50)).isoformat()},
      probe=lambda w, who, o: {"valid_from": "not a date"}),
    # ---------------------------------------------------------------- auditors
    R("audit.events", "GET", "audit.read", NONE),
    R("audit.event", "GET", "audit.read", NONE, lambda w, who, o: {"seq": w.extra["audit_seq"]}),
    R("audit.export", "GET", "audit.export", NONE),
    R("audit.checkpoints_list", "GET", "audit.read", NONE),
    R("audit.checkpoint_file", "GET", "audit.read", NONE, lambda w, who, o: {"cp_id": w.extra["checkpoint_id"]}),
    R("audit.public_key", "GET", "audit.read", NONE),
    # ---------------------------------------------------------------- one's own account
    R("auth.account", "GET", "account.self", NONE),
    R("auth.change_password", "POST", "account.self", NONE),
    R("auth.disable_2fa", "POST", "account.self", NONE),
    R("auth.new_recovery_codes", "POST", "account.self", NONE),
    # ---------------------------------------------------------------- API tokens (issue 19)
    R("orgs.api_tokens", "GET", "org.members.view", NONE),
    R("orgs.issue_api_token", "POST", "org.members.invite", NONE, attack=lambda w, who, o: {
        "name": "ATTACK", "user_id": str(w.users["member"].id), "scopes": ["reports:read"], "days": "30"}, probe=ANY),
    R("orgs.revoke_api_token", "POST", "org.members.invite", ("token_own", "token_other_org"), lambda w, who, o: {
        "token_id": w.ids[o.name]}),
    # ---------------------------------------------------------------- the API (issue 19): the same policy
    # An allowed request sends a body the API refuses (422): the cell proves the decision, nothing changes.
    R("api.technologies", "GET", "report.list", NONE, api=True),
    R("api.list_reports", "GET", "report.list", NONE, api=True),
    R("api.create_report", "POST", "report.create", NONE, attack=lambda w, who, o: {"description": "ATTACK"},
      probe=lambda w, who, o: {"unknown": 1}, api=True),
    R("api.get_report", "GET", "report.view", REPORTS, rid, api=True),
    R("api.update_report", "PATCH", "report.edit", REPORTS, rid, attack=lambda w, who, o: {"description": "ATTACK"},
      probe=lambda w, who, o: {"unknown": 1}, api=True),
    R("api.submit_report", "POST", "report.submit", REPORTS, rid, attack=lambda w, who, o: {"attest": True},
      probe=lambda w, who, o: {"attest": False}, api=True),
    R("api.withdraw_report", "POST", "report.withdraw", REPORTS, rid, attack=lambda w, who, o: {"comment": "ATTACK"},
      probe=lambda w, who, o: {"comment": ""}, api=True),
    R("api.list_attachments", "GET", "report.view", REPORTS, rid, api=True),
    R("api.upload_attachment", "POST", "attachment.upload", REPORTS, rid, attack=_upload,
      probe=lambda w, who, o: {"classification": "restricted"}, multipart=True, api=True),
    R("api.download_attachment", "GET", "attachment.download", ATTACHMENTS, aid, api=True),
    R("api.list_messages", "GET", "message.read", REPORTS, rid, channel="external", api=True),
    R("api.post_message", "POST", "message.post", REPORTS, rid, channel="external", attack=lambda w, who, o: {
        "body": "ATTACK", "classification": "restricted"}, probe=lambda w, who, o: {"body": "", "classification":
                                                                                    "restricted"}, api=True),
    R("api.list_informs", "GET", "inform.view", REPORTS, rid, api=True),
    R("api.inform_notice", "GET", "inform.view", ISSUED, iid, api=True),
    R("api.acknowledge_inform", "POST", "inform.acknowledge", INFORMS, iid, attack=lambda w, who, o: {"confirm": True},
      probe=lambda w, who, o: {"confirm": False}, api=True),
]


def asks(who: Who, obj: Obj) -> bool:
    return obj.only_for is None or who.name in obj.only_for


CELLS = [(r, who, OBJECTS[o]) for r in ROUTES for who in VARIANTS for o in r.objects if asks(who, OBJECTS[o])]


def _before_body_cells(route: Route) -> list[tuple[Who, Obj]]:
    """The refusals sent without a CSRF token: every one of a streamed route (the contract
    names them: the decision is made before the body is read); for the other routes (and the
    unknown channels), the first cell answered 403 and the first answered 404."""
    out, seen = [], set()
    for who in VARIANTS:
        for name in route.objects:
            obj = OBJECTS[name]
            want = expected(route, who, obj)
            if not asks(who, obj) or want not in (403, 404) or four_eyes(route, who, obj):
                continue
            if (route.multipart and route.channel in (None, "external", "internal")) or want not in seen:
                seen.add(want)
                out.append((who, obj))
    return out


# ============================================================================ running a cell

def _fast_commits(engine):
    """For this module's ~3,000 requests only: commits that do not wait for the disk
    (SQLite WAL with synchronous=NORMAL; PostgreSQL synchronous_commit=off). What each
    transaction sees and writes is unchanged; only durability across a power cut is."""
    import sqlalchemy as sa

    def on_connect(dbapi_conn, _record):
        if engine.dialect.name == "sqlite":
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
        else:
            dbapi_conn.execute("SET synchronous_commit TO off")
            dbapi_conn.commit()

    sa.event.listen(engine, "connect", on_connect)
    engine.dispose()

    def undo():
        sa.event.remove(engine, "connect", on_connect)
        engine.dispose()

    return undo


@pytest.fixture(scope="module")
def world(base_app, tmp_path_factory):
    import sqlalchemy as sa

    from tests.conftest import _clean

    engine = base_app.extensions["db_engine"]
    settings = base_app.config["SETTINGS"]
    saved = (settings.blob_store, settings.blob_dir, settings.https)
    blob_dir = tmp_path_factory.mktemp("access-blobs")
    settings.blob_store, settings.blob_dir, settings.https = "directory", blob_dir, False
    undo = _fast_commits(engine)
    from portal.api.ratelimit import Limiter

    limiter = base_app.extensions["api_limiter"]
    base_app.extensions["api_limiter"] = Limiter(10**9)  # thousands of requests per token in a minute
    techs = None
    _clean(engine)
    try:
        w = World(base_app, blob_dir).build()
        techs = set(w._snap["technologies"][1])
        yield w
    finally:
        _clean(engine)
        if techs is not None:
            with engine.begin() as c:  # a catalogue entry an attack may have added
                for t in c.execute(sa.text("SELECT id FROM technologies")).scalars().all():
                    if t not in techs:
                        c.execute(sa.text("DELETE FROM technologies WHERE id = :i"), {"i": t})
        undo()
        base_app.extensions["api_limiter"] = limiter
        settings.blob_store, settings.blob_dir, settings.https = saved


def url_of(w: World, route: Route, who: Who, obj: Obj) -> str:
    values = route.args(w, who, obj)
    return w.app.url_map.bind("localhost").build(route.endpoint, values, method=route.method)


def request(w: World, route: Route, who: Who, obj: Obj, want, *, csrf: bool = True, address: str = "127.0.0.1"):
    client = w.clients[who.name]
    url = url_of(w, route, who, obj)
    env = {"REMOTE_ADDR": address}
    if route.api:
        refused = want in (403, 404)
        body = dict((route.attack if refused or route.probe is None else route.probe)(w, who, obj))
        return api_request(w, route, who, url, body, env)
    if route.method == "GET":
        return client.get(url, environ_base=env)
    refused = want in (403, 404)
    body = dict((route.attack if refused or route.probe is None else route.probe)(w, who, obj))
    if csrf:
        body["csrf_token"] = w.token(who.name)
    if route.multipart:
        return client.post(url, data=body, content_type="multipart/form-data", environ_base=env)
    return client.post(url, data=body, environ_base=env)


def api_request(w: World, route: Route, who: Who, url: str, body: dict, env: dict):
    """The same request from the variant's own system: its bearer token, no cookie, no CSRF
    token; a JSON body (or multipart for a file), If-Match on a draft update."""
    import json

    from werkzeug.test import Client

    client = Client(w.app)  # no cookie jar: the session is never what decides
    headers = {"Authorization": f"Bearer {w.api_tokens[who.name]}", "If-Match": "*"}
    if route.method == "GET":
        return client.get(url, headers=headers, environ_base=env)
    if route.multipart:
        return client.open(url, method=route.method, data=body, content_type="multipart/form-data", headers=headers,
                           environ_base=env)
    return client.open(url, method=route.method, data=json.dumps(body), content_type="application/json",
                       headers=headers, environ_base=env)


def _check(route: Route, who: Who, obj: Obj, want, status: int) -> list[str]:
    """The status alone: the refusal asked for, or anything but a refusal or an error."""
    if want in (403, 404):
        if four_eyes(route, who, obj):
            return [] if status in (403, 302) else [
                f"{status} (expected the four-eyes refusal: 403, or a flash and a redirect)"]
        if role_only_refusal(route, who, obj) and status == 403:
            return []
        return [] if status == want else [f"{status} (expected {want})"]
    return [f"{status} (expected allowed)"] if status in (403, 404) or status >= 500 else []


def _send(w: World, route: Route, who: Who, obj: Obj, want, csrf: bool, address: str) -> int:
    resp = request(w, route, who, obj, want, csrf=csrf, address=address)
    resp.get_data()  # read a streamed body to its end before the next request
    resp.close()
    return resp.status_code


def _label(route: Route, who: Who, obj: Obj, csrf: bool) -> str:
    return f"{route.key}{'' if csrf else ' (no CSRF token)'} | {who.name} | {obj.name}"


def run_cell(w: World, route: Route, who: Who, obj: Obj, *, csrf: bool = True) -> list[str]:
    """One cell, alone: the status, the fingerprint before and after, the audit event, the
    effect of an allowed action; then whatever changed is put back."""
    want = expected(route, who, obj)
    before = w.baseline
    seq = w.audit_head()
    address = w.next_address()
    status = _send(w, route, who, obj, want, csrf, address)
    after = w.fingerprint()
    problems = _check(route, who, obj, want, status)
    if want in (403, 404):
        if after != before:
            problems.append(f"the refusal changed {diff(before, after)}")
        if address not in w.denied_addresses_since(seq):
            problems.append("no access.denied / outcome=denied event from its address")
    elif not problems and route.effect is not None:
        problems += route.effect(w, who, obj, before, after)
    if after != before:
        w.heal()
    return [f"{_label(route, who, obj, csrf)}: {'; '.join(problems)}"] if problems else []


def run_cells(w: World, cells: list[tuple[Route, Who, Obj, bool]]) -> list[str]:
    """Cells in order. Refusals and reads run in stretches with one fingerprint at the end of
    each stretch (they must change nothing); if a stretch changed something, the world is put
    back and the stretch is run again cell by cell, to name the cell. An allowed POST runs
    alone (it may change the world, and is then put back)."""
    failures: list[str] = []
    stretch: list[tuple[Route, Who, Obj, bool]] = []

    def settle():
        if not stretch:
            return
        before = w.baseline
        start = w.audit_head()
        seen = []
        for route, who, obj, csrf in stretch:
            address = w.next_address()
            status = _send(w, route, who, obj, expected(route, who, obj), csrf, address)
            seen.append((route, who, obj, csrf, status, address))
        if w.fingerprint() != before:
            w.heal()
            for route, who, obj, csrf in stretch:
                failures.extend(run_cell(w, route, who, obj, csrf=csrf))
        else:
            denied = w.denied_addresses_since(start)
            for route, who, obj, csrf, status, address in seen:
                want = expected(route, who, obj)
                problems = _check(route, who, obj, want, status)
                if want in (403, 404) and address not in denied:
                    problems.append("no access.denied / outcome=denied event from its address")
                if problems:
                    failures.append(f"{_label(route, who, obj, csrf)}: {'; '.join(problems)}")
        stretch.clear()

    for cell in cells:
        route, who, obj, csrf = cell
        if route.method == "GET" or expected(route, who, obj) in (403, 404):
            stretch.append(cell)
        else:
            settle()
            failures.extend(run_cell(w, route, who, obj, csrf=csrf))
    settle()
    return failures


# ============================================================================ the tests

# The matrix runs as two test items (not one per route) so that ``pytest -n`` keeps each on one
# worker with one world; the failures are listed per route and cell.

def _run_routes(world, cells_of) -> tuple[list[str], int]:
    failures, n = [], 0
    for route in ROUTES:
        cells = cells_of(route)
        n += len(cells)
        wrong = run_cells(world, cells)
        if wrong:
            failures.append(f"-- {route.key}: {len(wrong)} of {len(cells)} cells wrong")
            failures.extend("   " + f for f in wrong)
    return failures, n


def test_every_route_answers_every_role_on_every_object(world):
    failures, n = _run_routes(world, lambda route: [(route, who, OBJECTS[name], True) for who in VARIANTS
                                                    for name in route.objects if asks(who, OBJECTS[name])])
    assert n == len(CELLS)
    assert not failures, f"{sum(1 for f in failures if f.startswith('   '))} of {n} cells wrong:\n" + "\n".join(failures)


def test_refusal_comes_before_the_body(world):
    """Rule 8: the route decides before it reads the body, so a refused request without a CSRF
    token (or with a streamed body nobody should parse) is still 403/404, not a 400 or a
    redirect from a check of the body; nothing changes and the refusal is recorded."""
    failures, n = _run_routes(world, lambda route: [(route, who, obj, False) for who, obj in _before_body_cells(route)]
                              if route.method == "POST" else [])
    assert n > 100
    assert not failures, f"{sum(1 for f in failures if f.startswith('   '))} of {n} cells wrong:\n" + "\n".join(failures)


ID_ARGS = ("report_id", "inform_id", "attachment_id", "user_id", "org_id", "token_id")


def test_no_existence_leak_across_organisations(world):
    """DESIGN §3: "no existence leak across organisations". For every route that names an
    object, a company user gets for another organisation's object exactly what they get for
    an id that exists nowhere: a refusal, recorded, and the same one."""
    w = world
    before = w.baseline
    start = w.audit_head()
    sent, failures = [], []
    for route in ROUTES:
        for who in (VARIANT["filer"], VARIANT["filer_other_org"]):
            others = [OBJECTS[n] for n in route.objects if OBJECTS[n].org not in (None, who.org)]
            if not others:
                continue
            obj = others[0]
            args = route.args(w, who, obj)
            key = next(k for k in ID_ARGS if k in args)
            answers = []
            for values in (args, {**args, key: MISSING_ID}):
                url = w.app.url_map.bind("localhost").build(route.endpoint, values, method=route.method)
                address = w.next_address()
                env = {"REMOTE_ADDR": address}
                if route.api:
                    resp = api_request(w, route, who, url, dict(route.attack(w, who, obj)), env)
                elif route.method == "GET":
                    resp = w.clients[who.name].get(url, environ_base=env)
                else:
                    body = {**route.attack(w, who, obj), "csrf_token": w.token(who.name)}
                    resp = w.clients[who.name].post(url, data=body, environ_base=env,
                                                    content_type="multipart/form-data" if route.multipart else None)
                resp.get_data()
                resp.close()
                answers.append(resp.status_code)
                sent.append((route, who, obj, values is args, address, resp.status_code))
            if answers[0] != answers[1] or answers[0] not in (403, 404):
                failures.append(f"{route.key} | {who.name}: {answers[0]} for {obj.name} of organisation {obj.org}, "
                                f"{answers[1]} for an id that does not exist")
    after = w.fingerprint()
    if after != before:
        failures.append(f"the refusals changed {diff(before, after)}")
        w.heal()
    denied = w.denied_addresses_since(start)
    for route, who, obj, real, address, status in sent:
        if status in (403, 404) and address not in denied:
            failures.append(f"{route.key} | {who.name} | {obj.name if real else 'an id that does not exist'}: "
                            f"{status} with no access.denied / outcome=denied event from its address")
    assert len(sent) > 60
    assert not failures, "\n".join(failures)


def test_every_route_is_in_the_matrix(base_app):
    have = {(r.endpoint, r.method) for r in ROUTES}
    want = set()
    for rule in base_app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint in EXPECTED_PUBLIC:
            continue
        for m in rule.methods - {"HEAD", "OPTIONS"}:
            want.add((rule.endpoint, m))
    assert not want - have, f"routes with no row in the matrix: {sorted(want - have)}"
    assert not have - want, f"rows for routes that no longer exist: {sorted(have - want)}"


def _declared(marker) -> set[str]:
    found = set()
    if isinstance(marker, Action):
        found.add(str(marker))
    elif isinstance(marker, dict):
        for v in marker.values():
            found |= _declared(v)
    elif isinstance(marker, (tuple, list, set, frozenset)):
        for v in marker:
            found |= _declared(v)
    return found


def test_routes_declare_the_action_they_perform(base_app):
    """Rule 8, read from the route markers: a route is guarded by the action it performs
    (posting asks message.post, deleting a file attachment.delete, approving inform.approve),
    not by a weaker one it happens to need too."""
    contract: dict[str, set[str]] = {}
    for r in ROUTES:
        contract.setdefault(r.endpoint, set()).add(r.action)
    wrong = []
    for rule in base_app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint in EXPECTED_PUBLIC or rule.endpoint not in contract:
            continue
        marker = getattr(base_app.view_functions[rule.endpoint], "_access", None)
        declared = _declared(marker)
        if not declared or not declared <= contract[rule.endpoint]:
            wrong.append(f"{rule.endpoint}: declares {sorted(declared) or marker!r}, "
                         f"the contract says {sorted(contract[rule.endpoint])}")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_the_oracle_is_not_vacuous():
    """The table allows, forbids and conceals, for every role; and it says what DESIGN says in
    the cases the issue names."""
    seen = {"ok": 0, 403: 0, 404: 0}
    by_role: dict[str, set] = {}
    for route, who, obj in CELLS:
        e = expected(route, who, obj)
        seen[e] += 1
        by_role.setdefault(who.role, set()).add(e)
    assert all(n > 100 for n in seen.values()), seen
    assert all(len(v) >= 2 for v in by_role.values()), by_role
    route = {r.key: r for r in ROUTES}
    O = lambda name: Obj(name, "attachment", "A", "restricted")  # noqa: E731
    delete = route["attachments.delete POST"]
    assert expected(delete, VARIANT["filer"], replace(O("x"), on_message=True, uploaded_by="meti")) == 403
    assert expected(delete, VARIANT["filer"], replace(O("x"), on_message=True, internal=True)) == 404
    assert expected(delete, VARIANT["filer"], O("x")) == "ok"
    assert expected(delete, VARIANT["reviewer_csi"], O("x")) == 403
    show = route["reports.show GET"]
    for role in ("admin", "security_officer", "auditor"):
        assert expected(show, VARIANT[role], Obj("r", "report", "A")) == 403
        assert expected(show, VARIANT[role], Obj("r", "report", "A", draft=True)) == 404
    assert expected(show, VARIANT["filer_other_org"], Obj("r", "report", "A")) == 404
    assert expected(show, VARIANT["reviewer_no_T01"], Obj("r", "report", "A")) == 403
    assert expected(show, VARIANT["reviewer_confidential"], Obj("r", "report", "A", "csi")) == 403
    assert expected(show, VARIANT["filer_no_facility"], Obj("r", "report", "N", "confidential")) == 403
    assert expected(show, VARIANT["filer_no_facility"], Obj("r", "report", "N", "restricted")) == "ok"
    internal = route["dialogue.post POST ['internal']"]
    assert expected(internal, VARIANT["filer"], Obj("r", "report", "A")) == 404
    assert expected(internal, VARIANT["reviewer_csi"], Obj("r", "report", "A")) == "ok"
    assert expected(route["dialogue.post POST ['foo']"], VARIANT["reviewer_csi"], Obj("r", "report", "A")) == 404


def test_matrix_size():
    """The size of the matrix, for the record (printed with -s)."""
    print(f"\nHTTP access matrix: {len(ROUTES)} route rows ({len({r.endpoint for r in ROUTES})} endpoints) × "
          f"{len(VARIANTS)} role variants × their objects = {len(CELLS)} cells; "
          f"{sum(len(_before_body_cells(r)) for r in ROUTES if r.method == 'POST')} refusals again without a CSRF token")
    assert len(CELLS) > 1500
    assert all(any(asks(w, o) for w in VARIANTS) for o in OBJECTS.values())


# ---------------------------------------------------------------- what a page may show

def _page(world, who: str, url: str) -> str:
    resp = world.clients[who].get(url)
    assert resp.status_code == 200, (who, url, resp.status_code)
    return resp.get_data(as_text=True)


def test_csi_note_stays_off_the_case_page_of_a_confidential_reviewer(world):
    url = f"/reports/{world.ids['report_review']}"
    cleared = _page(world, "reviewer_csi", url)
    assert NOTE_CSI in cleared and NOTE_RESTRICTED in cleared  # the check can fail
    page = _page(world, "reviewer_confidential", url)
    assert DESCRIPTION in page and NOTE_RESTRICTED in page, "the rest of the case page is shown"
    assert NOTE_CSI not in page, "a csi internal note on the page of a reviewer cleared to confidential"
    assert "csi-assessment.pdf" not in page, "the csi note's file is listed"
    company = _page(world, "filer", url)
    assert DESCRIPTION in company and NOTE_RESTRICTED not in company and NOTE_CSI not in company


def test_csi_rationale_stays_off_the_case_page_of_a_confidential_reviewer(world):
    url = f"/reports/{world.extra['inform_reports']['inform_csi_rationale']}"
    cleared = _page(world, "approver", url)
    assert RATIONALE_CSI in cleared and REASONS in cleared  # the check can fail
    page = _page(world, "reviewer_confidential", url)
    assert REASONS in page, "the inform itself is shown"
    assert RATIONALE_CSI not in page, "a csi internal rationale on the page of a reviewer cleared to confidential"


def test_the_company_never_sees_the_internal_rationale(world):
    url = f"/reports/{world.extra['inform_reports']['inform_issued']}"
    assert RATIONALE_CONF in _page(world, "reviewer_confidential", url)
    page = _page(world, "filer", url)
    assert REASONS in page and RATIONALE_CONF not in page


# ---------------------------------------------------------------- rule 7

def test_a_company_edit_of_a_returned_case_never_moves_meti_material(world):
    """DESIGN §3 rule 7: a filer moves a returned T01 case to T14 on the technology step.
    Until the company resubmits, the case stays T01: a reviewer cleared for T14 only is
    refused the case, its v1 and its internal note's file; the T01 reviewer keeps them. After
    resubmission the case is T01 ∪ T14: the T14-only reviewer still gets none of the T01
    material, and T01 alone no longer opens the case."""
    w = world
    c = w.clients["filer_T01_T14"]  # a filer cleared for both, so the company can make the move
    from tests.reports_helpers import fill_all, new_report

    r7 = new_report(c)
    fill_all(c, r7, {"technology": {"description": DESCRIPTION}})
    assert submit(c, r7).status_code == 302
    w.take(r7)
    _, att = w.message("drafter", r7, "internal", "T01 の内部評価", file="t01-assessment.pdf")
    w.transition("drafter", r7, "return", {"comment": "技術の説明を補足してください。"}, "returned")
    w.snapshot()
    try:
        problems = _rule7(w, c, r7, att)
    finally:
        w.snapshot()  # the matrix's baseline now includes this case
    assert not problems, "\n".join(problems)


def _rule7(w: World, c, r7: int, att: int) -> list[str]:
    urls = {"case": f"/reports/{r7}", "v1": f"/reports/{r7}/versions/1", "note file": f"/attachments/{att}"}

    def answers(who: str, which=urls) -> dict[str, int]:
        out = {}
        for k, u in which.items():
            resp = w.clients[who].get(u)
            resp.get_data()
            resp.close()
            out[k] = resp.status_code
        return out

    problems = []
    got = answers("reviewer_no_T01")
    if got != {"case": 403, "v1": 403, "note file": 403}:
        problems.append(f"before any edit, the T14-only reviewer gets {got}")
    got = answers("reviewer_csi")
    if got != {"case": 200, "v1": 200, "note file": 200}:
        problems.append(f"before any edit, the T01 reviewer gets {got}")

    resp = post_step(c, r7, "technology", {"technology": "T14", "description": DESCRIPTION + " (T14)",
                                           "transfer_form": "licensing", "classification": "restricted"})
    assert resp.status_code == 302, resp.status_code
    seq = w.audit_head()
    got = answers("reviewer_no_T01")
    if got != {"case": 403, "v1": 403, "note file": 403}:
        problems.append(f"after the edit, the T14-only reviewer gets {got}: T01 material moved to T14 readers")
    if len(w.denials_since(seq)) < sum(1 for v in got.values() if v in (403, 404)):
        problems.append("a refusal was not recorded")
    got = answers("reviewer_csi")
    if got != {"case": 200, "v1": 200, "note file": 200}:
        problems.append(f"after the edit, the T01 reviewer gets {got}: they keep the case until it is resubmitted")

    page = c.get(f"/reports/{r7}/check").get_data(as_text=True)
    from tests.conftest import csrf_of

    resp = c.post(f"/reports/{r7}/check", data={"attest": "y", "csrf_token": csrf_of(page)})
    if not (resp.status_code == 302 and w.status(r7) == "submitted"):
        return problems + [f"the company could not resubmit: {resp.status_code}, {w.status(r7)}"]
    # After resubmission the case is T01 ∪ T14 (rule 7: the union over its versions). A
    # sub-object is decided on its own labels *and* its parent: everything of the case, v1 and
    # the T01 note's file included, now needs both compartments. Nobody has gained T01 material
    # by holding T14, and holding T01 alone no longer opens the case or anything in it.
    full = {**urls, "v2": f"/reports/{r7}/versions/2"}
    for who in ("reviewer_no_T01", "reviewer_csi"):
        got = answers(who, full)
        if got != {"case": 403, "v1": 403, "note file": 403, "v2": 403}:
            problems.append(f"after resubmission, {who} gets {got}: the case is now T01 ∪ T14")
    return problems
