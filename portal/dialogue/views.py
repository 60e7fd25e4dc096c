from __future__ import annotations

from datetime import date

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select, update

from portal import db
from portal.auth import principal
from portal.access.policy import Action
from portal.attachments import services as attachments
from portal.attachments import web
from portal.attachments.keys import current_keyring
from portal.core.guard import audit, current_subject, guarded
from portal.core.security import csrf
from portal.core.service import ServiceError
from portal.core.timeutil import today_jst
from portal.core.web import client_ip, settings
from portal.db import utcnow
from portal.dialogue import services
from portal.dialogue.models import Notification
from portal.reports import services as reports
from portal.reports.models import Report

bp = Blueprint("dialogue", __name__)


def _load(report_id: int, **_):
    return db.session().get(Report, report_id)


def _due(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ServiceError(_("Enter the due date as year-month-day, for example 2027-01-15."), field="due_date",
                           reason="bad_due_date") from None


@bp.route("/reports/<int:report_id>/messages/<channel>", methods=["POST"])
@csrf.exempt  # checked after the streamed body is parsed (attachments.web)
@guarded(Action.REPORT_VIEW, load=_load)
def post(obj: Report):
    channel = request.view_args["channel"]
    if channel not in services.CHANNELS:
        abort(404)
    store = attachments.store_for(settings(), db.session)
    received = None
    try:
        received = web.receive(store, settings().max_upload_bytes)
        f = received.form
        reply_to = f.get("reply_to", "")
        msg = services.post(db.session(), obj, channel=channel, body=f.get("body", ""),
                            classification=f.get("classification", ""),
                            reply_to=int(reply_to) if reply_to.isdigit() else None,
                            due=_due(f.get("due_date")) if f.get("request") == "1" else None,
                            subject=current_subject(), actor=current_user, today=today_jst(), ip=client_ip(),
                            base_url=settings().base_url)
        if received.sink is not None:
            attachments.store_upload(db.session(), current_keyring(), received.sink, report=obj,
                                     filename=received.filename, classification=msg.classification,
                                     subject=current_subject(), actor=current_user, today=today_jst(), ip=client_ip(),
                                     message=msg)
            received.sink.commit()
        db.commit()
    except reports.Refused as e:
        if received is not None:
            received.abort()
        db.rollback()
        audit("message.post", outcome="denied", reason=e.reason, target_type="report", target_id=obj.id,
              case_ref=obj.reference, details={"channel": channel})
        db.commit()
        abort(404 if e.conceal else 403)
    except ServiceError as e:
        if received is not None:
            received.abort()
        db.rollback()
        audit("message.post", outcome="failure", reason=e.reason, target_type="report", target_id=obj.id,
              case_ref=obj.reference, details={"channel": channel})
        db.commit()
        flash(e.message, "error")
        return redirect(url_for("reports.show", report_id=obj.id, _anchor=f"channel-{channel}"))
    except Exception:
        if received is not None:
            received.abort()
        raise
    flash(_("Your message has been sent."), "success")
    return redirect(url_for("reports.show", report_id=obj.id, _anchor=f"channel-{channel}"))


@bp.route("/notifications")
@guarded(Action.ACCOUNT_SELF)
def notifications():
    s = db.session()
    rows = list(s.execute(select(Notification).where(Notification.user_id == current_user.id)
                          .order_by(Notification.id.desc()).limit(100)).scalars())
    s.execute(update(Notification).where(Notification.user_id == current_user.id, Notification.read_at.is_(None))
              .values(read_at=utcnow()))
    db.commit()
    principal.notifications_read()
    return render_template("dialogue/notifications.html", rows=rows)
