"""The auditor's console: the trail, filtered, newest first, paged by sequence number
(keyset, so page 10,000 costs what page 1 costs). Events never carry case content."""
from __future__ import annotations

from datetime import datetime, time, timedelta

from flask import Blueprint, abort, render_template, request
from sqlalchemy import select

from portal import db
from portal.access.policy import Action
from portal.audit.models import AuditEvent
from portal.core.guard import audit, guarded
from portal.core.timeutil import JST

bp = Blueprint("audit", __name__, url_prefix="/audit")

PAGE = 100


def _date(value: str | None):
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        return None


@bp.route("/")
@guarded(Action.AUDIT_READ)
def events():
    a = request.args
    f = {k: (a.get(k) or "").strip()[:100] for k in ("action", "actor", "outcome", "case_ref", "from", "to", "org")}
    stmt = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(PAGE + 1)
    if f["action"]:
        stmt = stmt.where(AuditEvent.action.startswith(f["action"]))
    if f["actor"]:
        stmt = stmt.where(AuditEvent.actor_email == f["actor"].lower())
    if f["outcome"] in {"success", "denied", "failure"}:
        stmt = stmt.where(AuditEvent.outcome == f["outcome"])
    if f["case_ref"]:
        stmt = stmt.where(AuditEvent.case_ref == f["case_ref"])
    if f["org"].isdigit():
        stmt = stmt.where(AuditEvent.org_id == int(f["org"]))
    d_from, d_to = _date(f["from"]), _date(f["to"])
    if d_from:
        stmt = stmt.where(AuditEvent.occurred_at >= datetime.combine(d_from, time(), JST))
    if d_to:
        stmt = stmt.where(AuditEvent.occurred_at < datetime.combine(d_to + timedelta(days=1), time(), JST))
    before = a.get("before", type=int)
    if before:
        stmt = stmt.where(AuditEvent.seq < before)
    rows = list(db.session().execute(stmt).scalars())
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    audit("audit.read", details={k: v for k, v in f.items() if v})
    db.commit()
    return render_template("audit/events.html", rows=rows, f=f, more=more,
                           older_args={k: v for k, v in f.items() if v},
                           next_before=rows[-1].seq if rows and more else None)


@bp.route("/<int:seq>")
@guarded(Action.AUDIT_READ)
def event(seq: int):
    e = db.session().get(AuditEvent, seq)
    if e is None:
        abort(404)
    return render_template("audit/event.html", e=e)
