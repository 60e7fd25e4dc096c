"""The auditor's console: the trail, filtered, newest first, paged by sequence number
(keyset, so page 10,000 costs what page 1 costs). Events never carry case content."""
from __future__ import annotations

from datetime import datetime, time, timedelta

import json

from flask import Blueprint, Response, abort, redirect, render_template, request, stream_with_context, url_for
from flask_login import current_user
from sqlalchemy import select

from portal import db
from portal.access.policy import Action
from portal.audit.export import parse_day
from portal.audit.forms import AuditFilterForm
from portal.audit.models import AuditEvent
from portal.core.guard import audit, by_id, guarded
from portal.core.web import parse_id
from portal.core.timeutil import JST

bp = Blueprint("audit", __name__, url_prefix="/audit")

PAGE = 100


@bp.app_template_filter("audit_utc")
def _audit_utc(value) -> str:
    """An event's time exactly as exports write it (UTC, ISO 8601, Z)."""
    from datetime import timezone

    from portal.audit.trail import format_time

    return format_time(value if value.tzinfo else value.replace(tzinfo=timezone.utc)) if value else ""


@bp.route("/")
@guarded(Action.AUDIT_READ)
def events():
    a = request.args
    f = {k: (a.get(k) or "").strip()[:100] for k in ("action", "actor", "outcome", "case_ref", "from", "to", "org")}
    form = AuditFilterForm(request.args)
    if not form.validate():
        # Nothing is read, so nothing is audited: the auditor corrects the filter first.
        return render_template("audit/events.html", rows=[], f=f, more=False, form=form, error_forms=[form],
                               older_args={}, next_before=None, org_names={})
    stmt = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(PAGE + 1)
    if f["action"]:
        stmt = stmt.where(AuditEvent.action.startswith(f["action"]))
    if f["actor"]:
        stmt = stmt.where(AuditEvent.actor_email == f["actor"].lower())
    if f["outcome"] in {"success", "denied", "failure"}:
        stmt = stmt.where(AuditEvent.outcome == f["outcome"])
    if f["case_ref"]:
        stmt = stmt.where(AuditEvent.case_ref == f["case_ref"])
    if parse_id(f["org"]) is not None:
        stmt = stmt.where(AuditEvent.org_id == parse_id(f["org"]))
    d_from, d_to = parse_day(f["from"]), parse_day(f["to"])
    if d_from:
        stmt = stmt.where(AuditEvent.occurred_at >= datetime.combine(d_from, time(), JST))
    if d_to:
        stmt = stmt.where(AuditEvent.occurred_at < datetime.combine(d_to + timedelta(days=1), time(), JST))
    before = parse_id(a.get("before"), limit=2**63 - 1)
    if before:
        stmt = stmt.where(AuditEvent.seq < before)
    rows = list(db.session().execute(stmt).scalars())
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    audit("audit.read", details={k: v for k, v in f.items() if v})
    return render_template("audit/events.html", rows=rows, f=f, more=more, form=form,
                           org_names=_org_names({e.org_id for e in rows}),
                           older_args={k: v for k, v in f.items() if v},
                           next_before=rows[-1].seq if rows and more else None)


@bp.route("/<int:seq>")
@guarded(Action.AUDIT_READ)
def event(seq: int):
    e = by_id(AuditEvent, seq, limit=2**63 - 1)
    if e is None:
        abort(404)
    return render_template("audit/event.html", e=e, org_names=_org_names({e.org_id}))


def _org_names(ids: set[int | None]) -> dict[int, str]:
    """Organisations by name (who did what is the trail's metadata, never case content)."""
    from portal.orgs.models import Organisation

    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = db.session().execute(select(Organisation.id, Organisation.name).where(Organisation.id.in_(wanted)))
    return {i: name for i, name in rows}


def _key():
    from portal.audit.checkpoints import signing_key
    from portal.core.web import settings

    return signing_key(str(settings().audit_key_path))


@bp.route("/export")
@guarded(Action.AUDIT_EXPORT)
def export():
    """Stream an export; it is itself an audited event, and a checkpoint is signed for it."""
    from portal.audit import checkpoints
    from portal.audit.export import FORMATS, Filter, stream

    a = request.args
    fmt = a.get("format", "csv")
    if fmt not in FORMATS:
        abort(404)
    if not AuditFilterForm(a).validate():  # the console shows what is wrong with the filter
        return redirect(url_for("audit.events", **{k: v for k, v in a.items() if k != "format"}))
    f = Filter(date_from=(a.get("from") or "")[:10], date_to=(a.get("to") or "")[:10],
               actor=(a.get("actor") or "")[:254], org=(a.get("org") or "")[:12],
               action=(a.get("action") or "")[:64], case_ref=(a.get("case_ref") or "")[:32],
               outcome=(a.get("outcome") or "")[:16])
    key = _key()
    # The checkpoint signs the chain as it stands before this export; the export's own event
    # is committed with it, once, by the request path.
    cp = checkpoints.make(db.session(), key, "export")
    audit("audit.export", details={"format": fmt, **f.active()})
    doc = checkpoints.document(cp, key.public_key_pem())["payload"]
    body = stream(db.engine(), f, fmt, key=key, exporter=current_user.email, checkpoint=doc)
    resp = Response(stream_with_context(body), mimetype="text/csv" if fmt == "csv" else "application/x-ndjson")
    resp.headers["Content-Disposition"] = f'attachment; filename="audit-export-{cp.seq}.{fmt}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.route("/checkpoints")
@guarded(Action.AUDIT_READ)
def checkpoints_list():
    from portal.audit.models import AuditCheckpoint
    from sqlalchemy import select

    rows = list(db.session().execute(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(200)).scalars())
    return render_template("audit/checkpoints.html", rows=rows, key_id=_key().key_id)


@bp.route("/checkpoints/<int:cp_id>.json")
@guarded(Action.AUDIT_READ)
def checkpoint_file(cp_id: int):
    from portal.audit import checkpoints
    from portal.audit.models import AuditCheckpoint

    cp = by_id(AuditCheckpoint, cp_id)
    if cp is None:
        abort(404)
    audit("audit.checkpoint.download", target_type="checkpoint", target_id=cp.id)
    body = json.dumps(checkpoints.document(cp, _key().public_key_pem()), ensure_ascii=False, indent=2)
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="audit-checkpoint-{cp.seq}.json"',
                             "Cache-Control": "no-store"})


@bp.route("/public-key.pem")
@guarded(Action.AUDIT_READ)
def public_key():
    return Response(_key().public_key_pem(), mimetype="application/x-pem-file",
                    headers={"Content-Disposition": 'attachment; filename="audit-public-key.pem"'})
