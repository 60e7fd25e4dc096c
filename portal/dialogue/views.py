from __future__ import annotations

from datetime import date

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal import db
from portal.auth import principal
from portal.access.policy import Action
from portal.attachments import services as attachments
from portal.attachments import web
from portal.encryption.keyring import current_keyring
from portal.core.guard import by_id, current_subject, guarded
from portal.core.service import ServiceError
from portal.core.timeutil import today_jst
from portal.core.web import client_ip, parse_id, settings
from portal.dialogue import services
from portal.notifications import notify
from portal.reports.models import Report

bp = Blueprint("dialogue", __name__)


def _load_channel(report_id: int, channel: str):
    return services.channel_of(db.session(), by_id(Report, report_id), channel)


def _due(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ServiceError(_("Enter the due date as year-month-day, for example 2027-01-15."), field="due_date",
                           reason="bad_due_date") from None


def _reply_to(value: str) -> int | None:
    if not value.strip():
        return None
    if parse_id(value) is None:
        raise ServiceError(_("The message you are replying to does not exist in this thread."), field="body",
                           reason="bad_reply")
    return int(value)


def _thread_of(channel: services.Channel) -> str:
    return url_for("reports.show", report_id=channel.report.id, _anchor=f"channel-{channel.name}")


@bp.route("/reports/<int:report_id>/messages/<channel>", methods=["POST"])
@guarded(Action.MESSAGE_POST, load=_load_channel, event="message.post", back=_thread_of, body="stream")
def post(obj: services.Channel):
    """The policy has decided on the channel before the body streams in; the service decides
    again on the message's own classification once it is known."""
    report, channel = obj.report, obj.name
    store = attachments.store_for(settings(), db.session)
    received = None
    try:
        received = web.receive(store, settings().max_upload_bytes)
        f = received.form
        msg = services.post(db.session(), report, channel=channel, body=f.get("body", ""),
                            classification=f.get("classification", ""), reply_to=_reply_to(f.get("reply_to", "")),
                            due=_due(f.get("due_date")) if f.get("request") == "1" else None,
                            subject=current_subject(), actor=current_user, today=today_jst(), ip=client_ip(),
                            base_url=settings().base_url)
        if received.sink is not None:
            attachments.store_upload(db.session(), current_keyring(), received.sink, report=report,
                                     filename=received.filename, classification=msg.classification,
                                     subject=current_subject(), actor=current_user, today=today_jst(), ip=client_ip(),
                                     message=msg)
            received.sink.commit()
    except BaseException:
        if received is not None:
            received.abort()
        raise
    flash(_("Your message has been sent."), "success")
    return redirect(_thread_of(obj))


@bp.route("/notifications")
@guarded(Action.ACCOUNT_SELF)
def notifications():
    rows = notify.read_all(db.session(), current_user.id)
    principal.notifications_read()
    return render_template("dialogue/notifications.html", rows=rows)
